package main

import (
	"errors"
	"fmt"

	"github.com/cgpol/cgpol/bpf"
	"github.com/cgpol/cgpol/pkg/cgroup"
	"github.com/cgpol/cgpol/pkg/compile"
	"github.com/cgpol/cgpol/pkg/enforce"
	"github.com/cgpol/cgpol/pkg/nodeconfig"
	"github.com/cgpol/cgpol/pkg/policy"
)

// plan is what createRuntime (or prestart) enforces on one container:
// decided from the state and the node configuration before anything in the
// kernel changes.
type plan struct {
	policy policy.Policy
	source nodeconfig.Source
	label  enforce.Label
}

// decide returns the container's plan, or nil if the container is left
// alone. An invalid annotation is an error.
func decide(s *state, cfg *nodeconfig.Config) (*plan, error) {
	ctr := s.container()
	scoped, err := policy.ForContainer(s.Annotations, ctr.Name)
	if err != nil {
		return nil, err
	}
	p, source, err := cfg.PolicyFor(scoped, ctr)
	if err != nil {
		return nil, err
	}
	if source == nodeconfig.Unrestricted {
		return nil, nil
	}
	return &plan{policy: p, source: source, label: enforce.Label{
		Name:      ctr.String(),
		Container: containerKey(s.ID),
		Manager:   "hook",
	}}, nil
}

// containerKey is the container id as the attachment records it: cut to the
// size of the record's field, so that poststop finds it again.
func containerKey(id string) string {
	if n := len(bpf.Attachment{}.Container) - 1; len(id) > n {
		return id[:n]
	}
	return id
}

// containerCgroup resolves the cgroup v2 of the container's init process.
// enforce refuses one that the runtime shares with the host; explainShared
// says why that happens.
func containerCgroup(s *state) (cgroup.Cgroup, error) {
	if s.Pid <= 0 {
		return cgroup.Cgroup{}, fmt.Errorf("the OCI state has no pid (status %q): run cgpol-hook at createRuntime or prestart, when the container's process exists", s.Status)
	}
	mount, err := cgroup.Mount()
	if err != nil {
		return cgroup.Cgroup{}, err
	}
	return cgroup.OfPID(mount, s.Pid)
}

// explainShared adds the likely cause to a refusal of the container's
// cgroup (a *cgroup.RefusedError): in hybrid cgroup mode, a runtime that
// manages only the v1 hierarchies leaves the container in its own cgroup
// v2, or in the root. Other errors pass through.
func explainShared(err error) error {
	var refusal *cgroup.RefusedError
	if !errors.As(err, &refusal) {
		return err
	}
	return fmt.Errorf("%w. The runtime created no cgroup v2 for this container, as happens in hybrid cgroup mode "+
		"when a runtime manages only the v1 controllers: give each container its own cgroup v2 (runc does, hybrid mode included), "+
		"or run the host on cgroup v2 alone (systemd.unified_cgroup_hierarchy=1)", refusal)
}

// attach enforces the plan on the container's cgroup, installing cgpol's
// programs on first use.
func (p *plan) attach(cg cgroup.Cgroup, root string) error {
	objs, err := enforce.Install(root)
	if err != nil {
		return err
	}
	defer objs.Close()
	return objs.Attach(cg, compile.Compile(p.policy), p.label)
}

// create is the createRuntime and prestart stage: parse, then apply.
func create(s *state, cfg *nodeconfig.Config, root string) error {
	p, err := decide(s, cfg)
	if err != nil || p == nil {
		return err
	}
	if !hostRoot() {
		return fmt.Errorf("cannot enforce %s (%s): cgpol-hook must run as root in the host's user namespace to attach BPF programs, and rootless containers cannot be restricted", p.policy, p.source)
	}
	cg, err := containerCgroup(s)
	if err != nil {
		return err
	}
	if err := p.attach(cg, root); err != nil {
		return fmt.Errorf("enforce %s (%s): %w", p.policy, p.source, explainShared(err))
	}
	return nil
}
