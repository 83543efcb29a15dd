package enforce

import (
	"crypto/rand"
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"time"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/link"

	"github.com/cgpol/cgpol/bpf"
	"github.com/cgpol/cgpol/pkg/bpffs"
	"github.com/cgpol/cgpol/pkg/cgroup"
	"github.com/cgpol/cgpol/pkg/compile"
)

// ErrNotAttached means that cgpol has no policy on a cgroup.
var ErrNotAttached = errors.New("no cgpol policy is attached")

// Attach enforces the compiled policy e on cg, replacing the policy that cg
// had, if any. name labels the attachment in status and events.
//
// The steps are ordered so that a cgpol killed at any instant never leaves
// cg less restricted than the policy it had and the one asked for:
//  1. the new policy's port map is filled and published under a fresh id;
//  2. every hook is linked to cg. The kernel creates cg's storage zeroed, and
//     a zeroed storage denies everything, so a hook that is linked but not
//     yet pointed at a policy denies;
//  3. cg's storage is pointed at the new policy, in one atomic update;
//  4. the old policy is dropped.
//
// gc reclaims a policy published in step 1 that step 3 never pointed at.
func (o *Objects) Attach(cg cgroup.Cgroup, e compile.Entries, name string) error {
	if err := cgroup.CheckAttachable(cg); err != nil {
		return err
	}
	installLock, err := o.lock(false)
	if err != nil {
		return err
	}
	defer installLock.Unlock()
	dir := o.cgroupDir(cg.ID)
	if err := os.Mkdir(dir, 0o700); err != nil && !os.IsExist(err) {
		return fmt.Errorf("attach %s: %w", cg, err)
	}
	cgLock, err := bpffs.LockDir(dir, true)
	if err != nil {
		return fmt.Errorf("attach %s: %w (another cgpol detached it meanwhile; run again)", cg, err)
	}
	defer cgLock.Unlock()

	old, wasAttached, err := o.ref(cg.ID)
	if err != nil {
		return fmt.Errorf("attach %s: %w", cg, err)
	}
	policyID, err := o.storePolicy(e)
	if err != nil {
		return fmt.Errorf("attach %s: %w", cg, err)
	}
	if err := o.linkHooks(cg, dir); err != nil {
		o.dropPolicy(policyID)
		if !wasAttached {
			o.unlinkHooks(cg.ID) // leave cg as it was
		}
		return err
	}
	ref := bpf.Ref{PolicyId: policyID, CgroupId: cg.ID, Flags: e.Flags}
	if err := o.Refs.Update(cg.ID, ref, ebpf.UpdateExist); err != nil {
		o.dropPolicy(policyID)
		return fmt.Errorf("attach %s: set policy: %w", cg, err)
	}
	var meta bpf.Attachment
	meta.AttachedUnixNs = uint64(time.Now().UnixNano())
	copyName(&meta, name)
	if err := o.Attachments.Put(cg.ID, meta); err != nil {
		return fmt.Errorf("attach %s: record name: %w", cg, err)
	}
	if wasAttached && old.PolicyId != policyID {
		o.dropPolicy(old.PolicyId)
	}
	return nil
}

// cgroupDir is where the links of one cgroup are pinned.
func (o *Objects) cgroupDir(id uint64) string {
	return filepath.Join(o.Dir, cgroupDir, strconv.FormatUint(id, 10))
}

// ref reads a cgroup's storage. ok is false if no hook is linked to it.
func (o *Objects) ref(id uint64) (ref bpf.Ref, ok bool, err error) {
	err = o.Refs.Lookup(id, &ref)
	if errors.Is(err, ebpf.ErrKeyNotExist) {
		return bpf.Ref{}, false, nil
	}
	if err != nil {
		return bpf.Ref{}, false, fmt.Errorf("read policy of cgroup %d: %w", id, err)
	}
	return ref, true, nil
}

// portMapSpec describes a policy's port map; it must match the inner map of
// cgpol_ports in everything but size.
func portMapSpec(entries int) *ebpf.MapSpec {
	return &ebpf.MapSpec{
		Name:       "cgpol_portset",
		Type:       ebpf.Hash,
		KeySize:    uint32(binary.Size(bpf.PortKey{})),
		ValueSize:  uint32(binary.Size(bpf.PortChunk{})),
		MaxEntries: uint32(max(1, entries)),
	}
}

// storePolicy publishes a policy's maps under a fresh, random id.
func (o *Objects) storePolicy(e compile.Entries) (uint64, error) {
	ports, err := ebpf.NewMap(portMapSpec(len(e.Ports)))
	if err != nil {
		return 0, fmt.Errorf("create port map: %w", err)
	}
	defer ports.Close() // cgpol_ports holds it from here on
	if len(e.Ports) > 0 {
		keys := make([]bpf.PortKey, 0, len(e.Ports))
		values := make([]bpf.PortChunk, 0, len(e.Ports))
		for k, v := range e.Ports {
			keys = append(keys, k)
			values = append(values, v)
		}
		if _, err := ports.BatchUpdate(keys, values, nil); err != nil {
			return 0, fmt.Errorf("fill port map: %w", err)
		}
	}
	for {
		id, err := newPolicyID()
		if err != nil {
			return 0, err
		}
		err = o.Ports.Update(id, ports, ebpf.UpdateNoExist)
		if errors.Is(err, ebpf.ErrKeyExist) {
			continue
		}
		if err != nil {
			return 0, fmt.Errorf("publish port map: %w", err)
		}
		return id, nil
	}
}

// dropPolicy removes a policy's maps. The kernel frees them.
func (o *Objects) dropPolicy(id uint64) {
	_ = o.Ports.Delete(id)
}

func newPolicyID() (uint64, error) {
	var b [8]byte
	for {
		if _, err := rand.Read(b[:]); err != nil {
			return 0, fmt.Errorf("policy id: %w", err)
		}
		if id := binary.NativeEndian.Uint64(b[:]); id != 0 {
			return id, nil
		}
	}
}

// linkHooks links every hook's program to cg and pins the links in dir.
// Links that are pinned already and still right are kept.
func (o *Objects) linkHooks(cg cgroup.Cgroup, dir string) error {
	f, err := cg.Open()
	if err != nil {
		return fmt.Errorf("attach %s: %w", cg, err)
	}
	defer f.Close()
	for _, h := range bpf.Hooks {
		pin := filepath.Join(dir, h.Name)
		if o.linkCurrent(pin, cg.ID, h) {
			continue
		}
		l, err := link.AttachRawLink(link.RawLinkOptions{
			Target:  int(f.Fd()),
			Program: o.Programs[h.Name],
			Attach:  h.Attach,
		})
		if err != nil {
			return fmt.Errorf("attach %s to %s: %w", h.Name, cg, explainLinkError(err))
		}
		err = l.Pin(pin)
		l.Close() // the pin holds the link; without a pin this detaches it
		if err != nil {
			return fmt.Errorf("attach %s to %s: pin link: %w", h.Name, cg, err)
		}
	}
	return nil
}

// linkCurrent reports whether pin holds a link of hook h's current program
// to cgroup id. A pin that holds anything else is removed.
func (o *Objects) linkCurrent(pin string, id uint64, h bpf.Hook) bool {
	l, err := link.LoadPinnedLink(pin, nil)
	if err != nil {
		os.Remove(pin)
		return false
	}
	defer l.Close()
	info, err := l.Info()
	if err == nil && info.Program == o.programIDs[h.Name] {
		if cg := info.Cgroup(); cg != nil && cg.CgroupId == id {
			return true
		}
	}
	l.Unpin()
	return false
}

// unlinkHooks removes the links of a cgroup, which detaches its programs.
func (o *Objects) unlinkHooks(id uint64) error {
	var errs []error
	for _, h := range bpf.Hooks {
		if err := os.Remove(filepath.Join(o.cgroupDir(id), h.Name)); err != nil && !os.IsNotExist(err) {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

func copyName(meta *bpf.Attachment, name string) {
	n := min(len(name), len(meta.Name)-1)
	for i := range n {
		meta.Name[i] = int8(name[i])
	}
}
