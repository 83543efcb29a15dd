package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"path/filepath"
	"runtime/debug"
	"sync"

	"github.com/containerd/nri/pkg/api"
	"github.com/containerd/nri/pkg/stub"

	"github.com/cgpol/cgpol/pkg/cgroup"
	"github.com/cgpol/cgpol/pkg/compile"
	"github.com/cgpol/cgpol/pkg/enforce"
	"github.com/cgpol/cgpol/pkg/nodeconfig"
	"github.com/cgpol/cgpol/pkg/policy"
)

// manager labels the attachments that this plugin owns; Synchronize removes
// only those.
const manager = "nri"

// plugin handles the NRI events that cgpol needs:
//   - CreateContainer decides the container's policy and fails the
//     container if it is invalid;
//   - StartContainer attaches it: the cgroup exists and holds the
//     container's first process, which has not run anything yet;
//   - StopContainer and RemoveContainer detach it;
//   - Synchronize, on every (re)connection, repairs what happened while the
//     plugin was away.
//
// The plugin keeps no state of its own: each event decides again from the
// pod's annotations and the node configuration, and the pinned attachments
// in bpffs are the record of what is enforced. A restarted plugin picks up
// where the last one stopped.
type plugin struct {
	stub stub.Stub
	log  *slog.Logger
	logs *logOutput

	mu        sync.Mutex
	opts      options // flags, then the runtime's configuration
	configErr error   // the runtime's configuration is invalid
	objs      *enforce.Objects
	root      string // the bpffs root that objs were opened from
	mount     string // the cgroup2 mount

	metricsOnce sync.Once       // the metrics server starts once
	ctx         context.Context // the plugin's lifetime, for the metrics server
}

func newPlugin(opts options, logs *logOutput) *plugin {
	return &plugin{opts: opts, logs: logs, log: logs.logger, ctx: context.Background()}
}

// startMetrics serves metrics on addr, once per plugin process, whether the
// address came from a flag or from the runtime's configuration.
func (p *plugin) startMetrics(addr string) {
	if addr == "" {
		return
	}
	p.metricsOnce.Do(func() { go p.serveMetrics(p.ctx, addr, p.log) })
}

// Configure takes the runtime's configuration for this plugin. An invalid
// one does not stop the plugin from registering: every container then
// fails with the error, instead of starting without its policy.
func (p *plugin) Configure(ctx context.Context, config, runtime, version string) (stub.EventMask, error) {
	p.log.Info("connected", "runtime", runtime, "runtime_version", version)
	fc, err := parseFileConfig(config)
	p.mu.Lock()
	defer p.mu.Unlock()
	p.configErr = err
	if err != nil {
		p.log.Error("invalid configuration; every container will fail until it is fixed", "err", err)
		return 0, nil
	}
	p.opts = fc.apply(p.opts)
	if err := p.logs.configure(p.opts.logLevel, p.opts.logFile); err != nil {
		p.log.Error("cannot log as configured", "err", err)
	}
	p.startMetrics(p.opts.metricsAddr)
	return 0, nil
}

// nodeConfig reads cgpol's node configuration. It is read for every
// decision, so that a change applies to the next container without a
// restart; a broken file fails containers rather than leave them open.
func (p *plugin) nodeConfig() (*nodeconfig.Config, error) {
	p.mu.Lock()
	path, cfgErr := p.opts.nodeConfig, p.configErr
	p.mu.Unlock()
	if cfgErr != nil {
		return nil, cfgErr
	}
	return nodeconfig.Load(path)
}

// objects returns cgpol's pinned objects under the node configuration's
// bpffs root, installing them if install is set. ok is false if they are
// not installed and install is not set.
func (p *plugin) objects(cfg *nodeconfig.Config, install bool) (objs *enforce.Objects, ok bool, err error) {
	root := cfg.BPFFS
	if root == "" {
		root = enforce.DefaultRoot
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.objs != nil && p.root == root {
		return p.objs, true, nil
	}
	if install {
		objs, err = enforce.Install(root)
	} else {
		objs, err = enforce.Open(root)
		if errors.Is(err, enforce.ErrNotInstalled) {
			return nil, false, nil
		}
	}
	if err != nil {
		return nil, false, err
	}
	// Objects opened before stay open: a handler may still use them.
	p.objs, p.root = objs, root
	return objs, true, nil
}

// forget drops objects that turned out to be stale, e.g. after cgpol
// uninstall and a new install, so that the next call opens them again.
func (p *plugin) forget(objs *enforce.Objects) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.objs == objs {
		p.objs = nil
	}
}

// cgroupMount returns the cgroup2 mount point, found once.
func (p *plugin) cgroupMount() (string, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.mount == "" {
		m, err := cgroup.Mount()
		if err != nil {
			return "", err
		}
		p.mount = m
	}
	return p.mount, nil
}

// CreateContainer fails a container whose policy is invalid, with a
// one-line reason that the kubelet shows in the pod's events.
func (p *plugin) CreateContainer(ctx context.Context, pod *api.PodSandbox, ctr *api.Container) (_ *api.ContainerAdjustment, _ []*api.ContainerUpdate, err error) {
	defer p.survive("CreateContainer", &err)
	log := withContainer(p.log, pod, ctr)
	cfg, err := p.nodeConfig()
	if err != nil {
		log.Error("refusing the container", "err", err)
		return nil, nil, fmt.Errorf("cgpol: %w", err)
	}
	pol, source, err := effectivePolicy(cfg, pod, ctr)
	if err != nil {
		log.Error("refusing the container", "err", err)
		return nil, nil, fmt.Errorf("cgpol: %w", err)
	}
	log.Debug("policy decided", "policy", pol.String(), "source", source)
	return nil, nil, nil
}

// StartContainer attaches the container's policy. The runtime has created
// the container's process in its cgroup but not let it run yet, so the
// policy holds from the entrypoint's first instruction. Returning an error
// fails the start: containerd kills the process and reports the error.
func (p *plugin) StartContainer(ctx context.Context, pod *api.PodSandbox, ctr *api.Container) (err error) {
	defer p.survive("StartContainer", &err)
	log := withContainer(p.log, pod, ctr)
	cfg, err := p.nodeConfig()
	if err != nil {
		log.Error("refusing to start the container", "err", err)
		return fmt.Errorf("cgpol: %w", err)
	}
	pol, source, err := effectivePolicy(cfg, pod, ctr)
	if err != nil {
		log.Error("refusing to start the container", "err", err)
		return fmt.Errorf("cgpol: %w", err)
	}
	if source == nodeconfig.Unrestricted {
		log.Debug("no policy")
		return nil
	}
	cg, err := p.attach(cfg, pod, ctr, pol)
	if err != nil {
		log.Error("refusing to start the container: cannot enforce its policy", "policy", pol.String(), "err", err)
		return fmt.Errorf("cgpol: enforce %s: %w", pol, err)
	}
	log.Info("policy attached", "policy", pol.String(), "source", source, "cgroup", cg.Path, "cgroup_id", cg.ID)
	return nil
}

// attach enforces pol on the container's cgroup (see containerCgroup).
func (p *plugin) attach(cfg *nodeconfig.Config, pod *api.PodSandbox, ctr *api.Container, pol policy.Policy) (cgroup.Cgroup, error) {
	mount, err := p.cgroupMount()
	if err != nil {
		return cgroup.Cgroup{}, err
	}
	cg, err := containerCgroup(mount, ctr.GetPid(), ctr.GetId())
	if err != nil {
		return cgroup.Cgroup{}, err
	}
	label := enforce.Label{Name: labelName(pod, ctr), Container: ctr.GetId(), Manager: manager}
	for retry := 0; ; retry++ {
		objs, _, err := p.objects(cfg, true)
		if err != nil {
			return cgroup.Cgroup{}, err
		}
		err = objs.Attach(cg, compile.Compile(pol), label)
		if retry == 0 && errors.Is(err, enforce.ErrNotInstalled) {
			p.forget(objs) // uninstalled since they were opened: install again
			continue
		}
		return cg, err
	}
}

// StopContainer detaches the policy of a container that has stopped, once
// no process is left in its cgroup. If one is, RemoveContainer detaches it.
func (p *plugin) StopContainer(ctx context.Context, pod *api.PodSandbox, ctr *api.Container) ([]*api.ContainerUpdate, error) {
	defer p.survive("StopContainer", nil)
	p.release(pod, ctr, false)
	return nil, nil
}

// RemoveContainer detaches the policy of a removed container. It never
// fails the removal: Synchronize and cgpol gc reclaim what is left.
func (p *plugin) RemoveContainer(ctx context.Context, pod *api.PodSandbox, ctr *api.Container) error {
	defer p.survive("RemoveContainer", nil)
	p.release(pod, ctr, true)
	return nil
}

// release detaches the policy that this plugin attached to a container, if
// any. Unless removed is set, it leaves a cgroup that still has processes.
func (p *plugin) release(pod *api.PodSandbox, ctr *api.Container, removed bool) {
	log := withContainer(p.log, pod, ctr)
	cfg, err := p.nodeConfig()
	if err != nil {
		log.Warn("cannot detach: no node configuration; the next synchronization will", "err", err)
		return
	}
	objs, ok, err := p.objects(cfg, false)
	if err != nil || !ok {
		if err != nil {
			log.Warn("cannot detach", "err", err)
		}
		return
	}
	id, found, err := objs.FindContainer(ctr.GetId())
	if err != nil || !found {
		if err != nil {
			log.Warn("cannot detach", "err", err)
		}
		return
	}
	st, err := objs.StatusOf(id)
	if err != nil || st.Manager != manager {
		return
	}
	if !removed && st.Cgroup != "" {
		mount, err := p.cgroupMount()
		if err != nil {
			log.Warn("cannot detach", "err", err)
			return
		}
		if busy, err := populated(filepath.Join(mount, st.Cgroup)); busy || err != nil {
			log.Debug("processes are left in the cgroup; detaching on removal", "cgroup", st.Cgroup, "err", err)
			return
		}
	}
	if err := objs.Detach(id); err != nil && !errors.Is(err, enforce.ErrNotAttached) {
		log.Warn("cannot detach", "cgroup_id", id, "err", err)
		return
	}
	log.Info("policy detached", "cgroup_id", id)
}

// survive turns a panic in a handler into an error, if the handler returns
// one: a bug then fails one container, instead of taking the plugin down
// and letting the next containers start without their policy.
func (p *plugin) survive(event string, err *error) {
	r := recover()
	if r == nil {
		return
	}
	p.log.Error("internal error", "event", event, "panic", fmt.Sprint(r), "stack", string(debug.Stack()))
	if err != nil {
		*err = fmt.Errorf("cgpol: internal error in %s: %v", event, r)
	}
}

// close releases the pinned objects' file descriptors; the pins stay.
func (p *plugin) close() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.objs != nil {
		p.objs.Close()
		p.objs = nil
	}
}

// Shutdown is the runtime shutting down; the policies stay pinned.
func (p *plugin) Shutdown(ctx context.Context) {
	p.log.Info("the runtime is shutting down")
}
