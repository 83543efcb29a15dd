package enforce

import (
	"cmp"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"time"

	"github.com/cilium/ebpf/link"

	"github.com/cgpol/cgpol/bpf"
	"github.com/cgpol/cgpol/pkg/cgroup"
	"github.com/cgpol/cgpol/pkg/compile"
)

// Status is what the kernel holds for one attached cgroup.
type Status struct {
	CgroupID  uint64       `json:"cgroup_id"`
	Cgroup    string       `json:"cgroup"` // path in the hierarchy; empty if the cgroup is gone
	Name      string       `json:"name,omitempty"`
	Container string       `json:"container,omitempty"` // the runtime's container id
	Manager   string       `json:"manager,omitempty"`   // what attached it: cli, hook, nri
	Attached  time.Time    `json:"attached,omitzero"`
	Slot      uint32       `json:"slot"`
	Policy    string       `json:"policy"` // what the kernel enforces, read back from the maps
	Problem   string       `json:"problem,omitempty"`
	Hooks     []HookStatus `json:"hooks"`
}

// HookStatus is one hook of an attached cgroup and its counters, summed over CPUs.
type HookStatus struct {
	Hook       string `json:"hook"`
	Linked     bool   `json:"linked"`
	Allowed    uint64 `json:"allowed"`
	Denied     uint64 `json:"denied"`
	Audited    uint64 `json:"audited"`
	Redirected uint64 `json:"redirected"`
}

// List reports every cgroup that has links pinned, sorted by cgroup path,
// with the policy read back from the kernel.
func (o *Objects) List() ([]Status, error) {
	return o.list(true)
}

// Counts is List without reading the policies back: labels and counters
// only, cheap enough for every metrics scrape. Problem is still set for a
// cgroup whose policy cannot be read.
func (o *Objects) Counts() ([]Status, error) {
	return o.list(false)
}

func (o *Objects) list(withPolicy bool) ([]Status, error) {
	mount, err := cgroup.Mount()
	if err != nil {
		return nil, err
	}
	ids, err := o.attachedIDs()
	if err != nil {
		return nil, err
	}
	out := make([]Status, 0, len(ids))
	for _, id := range ids {
		out = append(out, o.status(mount, id, withPolicy))
	}
	slices.SortFunc(out, func(a, b Status) int {
		return cmp.Or(cmp.Compare(a.Cgroup, b.Cgroup), cmp.Compare(a.CgroupID, b.CgroupID))
	})
	return out, nil
}

// StatusOf reports one cgroup.
func (o *Objects) StatusOf(id uint64) (Status, error) {
	if _, err := os.Stat(o.cgroupDir(id)); err != nil {
		return Status{}, fmt.Errorf("cgroup %d: %w", id, ErrNotAttached)
	}
	mount, err := cgroup.Mount()
	if err != nil {
		return Status{}, err
	}
	return o.status(mount, id, true), nil
}

// Attachment returns what was recorded about an attached cgroup: its
// name, container id, manager and attach time (no counters, no policy).
func (o *Objects) Attachment(id uint64) (Status, error) {
	var meta bpf.Attachment
	if err := o.Attachments.Lookup(id, &meta); err != nil {
		return Status{}, fmt.Errorf("cgroup %d: %w", id, ErrNotAttached)
	}
	return Status{CgroupID: id, Name: bpf.CString(meta.Name[:]), Container: bpf.CString(meta.Container[:]),
		Manager: bpf.CString(meta.Manager[:]), Attached: time.Unix(0, int64(meta.AttachedUnixNs))}, nil
}

// FindContainer returns the cgroup id of the attachment recorded for a
// runtime's container id. ok is false if there is none.
func (o *Objects) FindContainer(container string) (id uint64, ok bool, err error) {
	if container == "" {
		return 0, false, nil
	}
	var cgID uint64
	var meta bpf.Attachment
	iter := o.Attachments.Iterate()
	for iter.Next(&cgID, &meta) {
		if bpf.CString(meta.Container[:]) == container {
			return cgID, true, nil
		}
	}
	if err := iter.Err(); err != nil {
		return 0, false, fmt.Errorf("find container %s: %w", container, err)
	}
	return 0, false, nil
}

// attachedIDs lists the cgroups that have a directory of pinned links.
func (o *Objects) attachedIDs() ([]uint64, error) {
	entries, err := os.ReadDir(filepath.Join(o.Dir, cgroupDir))
	if err != nil {
		return nil, fmt.Errorf("list attached cgroups: %w", err)
	}
	var ids []uint64
	for _, e := range entries {
		if id, err := strconv.ParseUint(e.Name(), 10, 64); err == nil {
			ids = append(ids, id)
		}
	}
	return ids, nil
}

func (o *Objects) status(mount string, id uint64, withPolicy bool) Status {
	s := Status{CgroupID: id}
	if cg, err := cgroup.ByID(mount, id); err == nil {
		s.Cgroup = cg.Path
	}
	var meta bpf.Attachment
	if o.Attachments.Lookup(id, &meta) == nil {
		s.Name = bpf.CString(meta.Name[:])
		s.Container = bpf.CString(meta.Container[:])
		s.Manager = bpf.CString(meta.Manager[:])
		s.Attached = time.Unix(0, int64(meta.AttachedUnixNs))
	}
	for _, h := range bpf.Hooks {
		hs := HookStatus{Hook: h.Name, Linked: o.linkLive(filepath.Join(o.cgroupDir(id), h.Name), id)}
		var perCPU []bpf.HookCounters
		if err := o.Counters.Lookup(bpf.CounterKey{CgroupInodeId: id, AttachType: uint32(h.Attach)}, &perCPU); err == nil {
			for _, c := range perCPU {
				hs.Allowed += c.Allowed
				hs.Denied += c.Denied
				hs.Audited += c.Audited
				hs.Redirected += c.Redirected
			}
		}
		s.Hooks = append(s.Hooks, hs)
	}
	ref, linked, err := o.ref(id)
	switch {
	case err != nil:
		s.Problem = err.Error()
	case !linked:
		s.Problem = "no hook is linked: the cgroup is gone or the attach did not finish (cgpol gc reclaims it)"
	case ref.Slot == 0:
		s.Policy = "deny all"
		s.Problem = "the attach did not finish, so every call is denied; attach again or detach"
	case !withPolicy:
		s.Slot = ref.Slot - 1
		if p, err := o.slotPolicy(s.Slot); err != nil || p.CgroupId != id {
			s.Problem = fmt.Sprintf("policy slot %d does not hold this cgroup's policy, so every call is denied", s.Slot)
		}
	default:
		s.Slot = ref.Slot - 1
		p, err := o.readPolicy(ref)
		if err != nil {
			s.Policy = "deny all"
			s.Problem = err.Error() + ", so every call is denied"
		} else {
			s.Policy = p
		}
	}
	return s
}

// linkLive reports whether pin holds a link that is still attached to id.
func (o *Objects) linkLive(pin string, id uint64) bool {
	l, err := link.LoadPinnedLink(pin, nil)
	if err != nil {
		return false
	}
	defer l.Close()
	info, err := l.Info()
	if err != nil {
		return false
	}
	cg := info.Cgroup()
	return cg != nil && cg.CgroupId == id
}

// readPolicy reads back the policy that the kernel enforces for a ref.
func (o *Objects) readPolicy(ref bpf.Ref) (string, error) {
	slot := ref.Slot - 1
	p, err := o.slotPolicy(slot)
	if err != nil {
		return "", err
	}
	if p.CgroupId != ref.CgroupId {
		return "", fmt.Errorf("policy slot %d belongs to cgroup %d", slot, p.CgroupId)
	}
	e := compile.NewEntries()
	e.Policy = p
	if err := o.readRules(p.Rules, e); err != nil {
		return "", err
	}
	decompiled, err := compile.Decompile(e)
	if err != nil {
		return "", err
	}
	return decompiled.String(), nil
}
