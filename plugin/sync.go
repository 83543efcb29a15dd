package main

import (
	"context"
	"errors"
	"path/filepath"
	"time"

	"github.com/containerd/nri/pkg/api"

	"github.com/cgpol/cgpol/pkg/enforce"
	"github.com/cgpol/cgpol/pkg/nodeconfig"
)

// syncMargin is how long before the runtime's deadline Synchronize answers.
// A late answer makes the runtime drop the plugin; the repair goes on.
const syncMargin = 250 * time.Millisecond

// Synchronize runs when the plugin (re)connects, with every pod and
// container that the runtime has. It repairs what happened while no plugin
// was connected: containers that started without their policy get it, and
// the attachments of containers that are gone are removed.
//
// It does not change the policy of a container that has one: a node's
// default policy that changed applies to new containers.
func (p *plugin) Synchronize(ctx context.Context, pods []*api.PodSandbox, ctrs []*api.Container) ([]*api.ContainerUpdate, error) {
	done := make(chan struct{})
	go func() {
		defer close(done)
		defer p.survive("Synchronize", nil)
		p.reconcile(pods, ctrs)
	}()
	if deadline, ok := ctx.Deadline(); ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithDeadline(ctx, deadline.Add(-syncMargin))
		defer cancel()
	}
	select {
	case <-done:
	case <-ctx.Done():
		p.log.Warn("synchronization takes longer than the runtime waits; it goes on in the background")
	}
	return nil, nil
}

// reconcile makes the attachments match the runtime's containers; see
// Synchronize.
func (p *plugin) reconcile(pods []*api.PodSandbox, ctrs []*api.Container) {
	var added, removed, failed int
	cfg, err := p.nodeConfig()
	if err != nil {
		p.log.Error("cannot synchronize", "err", err)
		return
	}
	objs, installed, err := p.objects(cfg, needsPolicy(cfg, pods, ctrs))
	if err != nil {
		p.log.Error("cannot synchronize", "err", err)
		return
	}
	if !installed {
		p.log.Info("synchronized", "pods", len(pods), "containers", len(ctrs), "enforcing", "nothing")
		return
	}
	statuses, err := objs.List()
	if err != nil {
		p.log.Error("cannot synchronize", "err", err)
		return
	}
	attached := map[string]enforce.Status{}
	for _, st := range statuses {
		if st.Container != "" {
			attached[st.Container] = st
		}
	}

	podByID := map[string]*api.PodSandbox{}
	for _, pod := range pods {
		podByID[pod.GetId()] = pod
	}
	known := map[string]*api.Container{}
	for _, ctr := range ctrs {
		known[ctr.GetId()] = ctr
		if !running(ctr) {
			continue
		}
		pod := podByID[ctr.GetPodSandboxId()]
		log := withContainer(p.log, pod, ctr)
		pol, source, err := effectivePolicy(cfg, pod, ctr)
		if err != nil {
			// CreateContainer refused this already; only a changed
			// node configuration gets here.
			log.Error("running container has an invalid policy; it keeps the one it has", "err", err)
			failed++
			continue
		}
		if source == nodeconfig.Unrestricted {
			continue
		}
		if st, ok := attached[ctr.GetId()]; ok && st.Problem == "" {
			continue
		}
		cg, err := p.attach(cfg, pod, ctr, pol)
		if err != nil {
			log.Error("running container has no policy and cannot get it", "policy", pol.String(), "err", err)
			failed++
			continue
		}
		log.Warn("policy attached to a container that started without it", "policy", pol.String(),
			"source", source, "cgroup", cg.Path, "cgroup_id", cg.ID)
		added++
	}

	for _, st := range statuses {
		if st.Manager != manager {
			continue
		}
		ctr, ok := known[st.Container]
		if ok && (running(ctr) || st.Cgroup != "") {
			continue // RemoveContainer detaches a stopped container
		}
		if !ok && st.Cgroup != "" {
			mount, err := p.cgroupMount()
			busy := err != nil
			if err == nil {
				busy, err = populated(filepath.Join(mount, st.Cgroup))
			}
			if busy || err != nil {
				p.log.Warn("the runtime does not know this container, but its cgroup has processes; its policy stays",
					"name", st.Name, "container_id", st.Container, "cgroup", st.Cgroup, "err", err)
				continue
			}
		}
		err := objs.Detach(st.CgroupID)
		if err != nil && !errors.Is(err, enforce.ErrNotAttached) {
			p.log.Warn("cannot remove the policy of a container that is gone", "name", st.Name,
				"container_id", st.Container, "cgroup_id", st.CgroupID, "err", err)
			failed++
			continue
		}
		p.log.Info("policy removed: its container is gone", "name", st.Name,
			"container_id", st.Container, "cgroup_id", st.CgroupID)
		removed++
	}
	p.log.Info("synchronized", "pods", len(pods), "containers", len(ctrs),
		"attached", added, "detached", removed, "failed", failed)
}

// running reports whether a container's processes may run.
func running(ctr *api.Container) bool {
	switch ctr.GetState() {
	case api.ContainerState_CONTAINER_RUNNING, api.ContainerState_CONTAINER_PAUSED:
		return true
	}
	return false
}

// needsPolicy reports whether any running container should have a policy,
// so that synchronizing must install cgpol's objects if they are missing.
func needsPolicy(cfg *nodeconfig.Config, pods []*api.PodSandbox, ctrs []*api.Container) bool {
	podByID := map[string]*api.PodSandbox{}
	for _, pod := range pods {
		podByID[pod.GetId()] = pod
	}
	for _, ctr := range ctrs {
		if !running(ctr) {
			continue
		}
		if _, source, err := effectivePolicy(cfg, podByID[ctr.GetPodSandboxId()], ctr); err == nil && source != nodeconfig.Unrestricted {
			return true
		}
	}
	return false
}
