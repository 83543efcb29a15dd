package enforce

import (
	cryptorand "crypto/rand"
	"encoding/binary"
	"errors"
	"fmt"
	"math/rand/v2"
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

// Label says what an attachment is for. It shows in status and events, and
// lets a runtime integration find its attachments again.
type Label struct {
	Name      string // a human name: the container's or the unit's
	Container string // the runtime's container id, if any
	Manager   string // what attached it: "cli", "hook", "nri"
}

// Attach enforces the compiled policy e on cg, replacing the policy that cg
// had, if any.
//
// A cgroup's first attach runs these steps, ordered so that a cgpol killed
// at any instant never leaves cg less restricted than the policy asked for:
//  1. claim a free slot (create-only, so no two cgroups ever share one),
//     write the policy's rule maps under the slot's first generation, and
//     fill the slot with the policy, owned by cg;
//  2. link the hooks that the policy needs to cg. The kernel creates cg's
//     storage zeroed, which names no slot and so denies everything: a hook
//     that is linked but not yet pointed at the slot denies;
//  3. point cg's storage at the slot.
//
// A later attach writes the new rule maps under the generation that the
// current policy does not use, links any hook that the new policy needs and
// the old one did not, then replaces the slot's policy in one update, so
// every call is judged by the old policy and its rules or by the new ones,
// never a mix. gc releases a slot whose attach was killed before step 3.
func (o *Objects) Attach(cg cgroup.Cgroup, e *compile.Entries, label Label) error {
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

	policy := e.Policy
	policy.CgroupId = cg.ID
	ref, linked, err := o.ref(cg.ID)
	if err != nil {
		return fmt.Errorf("attach %s: %w", cg, err)
	}
	if linked && ref.Slot != 0 && o.slotOwner(ref.Slot-1) == cg.ID {
		return o.replace(cg, dir, ref.Slot-1, &policy, e, label)
	}

	slot, err := o.claimSlot(cg.ID)
	if err != nil {
		return fmt.Errorf("attach %s: %w", cg, err)
	}
	policy.Rules = slot * 2
	if err := o.fillRules(policy.Rules, e); err != nil {
		o.releaseSlot(slot)
		return fmt.Errorf("attach %s: %w", cg, err)
	}
	if err := o.writeSlot(slot, &policy); err != nil {
		o.releaseSlot(slot)
		return fmt.Errorf("attach %s: %w", cg, err)
	}
	if err := o.record(cg.ID, slot, label); err != nil {
		o.releaseSlot(slot)
		return err
	}
	if err := o.linkHooks(cg, dir, policy.Flags); err != nil {
		o.releaseSlot(slot)
		if !linked {
			o.unlinkHooks(cg.ID) // leave cg as it was
			o.Attachments.Delete(cg.ID)
		}
		return err
	}
	if err := o.Refs.Update(cg.ID, bpf.Ref{Slot: slot + 1, CgroupId: cg.ID}, ebpf.UpdateExist); err != nil {
		return fmt.Errorf("attach %s: point the cgroup at its policy: %w", cg, err)
	}
	return nil
}

// replace puts a new policy into the slot of a cgroup that has one.
func (o *Objects) replace(cg cgroup.Cgroup, dir string, slot uint32, policy *bpf.Policy, e *compile.Entries, label Label) error {
	current := slot * 2
	if old, err := o.slotPolicy(slot); err == nil && old.CgroupId == cg.ID && old.Rules/2 == slot {
		current = old.Rules
	}
	policy.Rules = current ^ 1 // the other generation
	if err := o.fillRules(policy.Rules, e); err != nil {
		return fmt.Errorf("attach %s: %w", cg, err)
	}
	if err := o.linkHooks(cg, dir, policy.Flags); err != nil {
		return err
	}
	if err := o.fillSlot(slot, policy); err != nil {
		return fmt.Errorf("attach %s: %w", cg, err)
	}
	o.clearRules(current)
	return o.record(cg.ID, slot, label)
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
		return bpf.Ref{}, false, fmt.Errorf("read the policy slot of cgroup %d: %w", id, err)
	}
	return ref, true, nil
}

// claimSlot claims a free slot for a cgroup, a warm one if there is one. A
// claim is create-only, so two cgpol processes never get the same slot.
func (o *Objects) claimSlot(owner uint64) (uint32, error) {
	var warm uint32
	var one uint8
	for iter, tries := o.Warm.Iterate(), 0; tries < 8 && iter.Next(&warm, &one); tries++ {
		err := o.Slots.Update(warm, owner, ebpf.UpdateNoExist)
		_ = o.Warm.Delete(warm) // claimed now, by us or by another cgpol
		if err == nil {
			return warm, nil
		}
	}
	n := o.Policies.MaxEntries()
	start := rand.Uint32N(n)
	for i := range n {
		slot := (start + i) % n
		err := o.Slots.Update(slot, owner, ebpf.UpdateNoExist)
		if err == nil {
			return slot, nil
		}
		if !errors.Is(err, ebpf.ErrKeyExist) {
			return 0, fmt.Errorf("claim a policy slot: %w", err)
		}
	}
	return 0, fmt.Errorf("all %d policy slots are in use: cgpol enforces on at most %d cgroups at once (cgpol gc frees the slots of cgroups that are gone)", n, n)
}

// slotOwner returns the cgroup that claimed a slot, or 0.
func (o *Objects) slotOwner(slot uint32) uint64 {
	var owner uint64
	if o.Slots.Lookup(slot, &owner) != nil {
		return 0
	}
	return owner
}

// releaseSlot drops a slot's rule maps and its claim. Its policy map stays,
// for the next attach to write in place: the policy in it names its old
// owner, so no other cgroup's storage can use it.
func (o *Objects) releaseSlot(slot uint32) {
	o.clearRules(slot * 2)
	o.clearRules(slot*2 + 1)
	_ = o.Slots.Delete(slot)
	// Offered for reuse only once unclaimed: a claimer that found it
	// still claimed would drop it from the index.
	var inner ebpf.MapID
	if o.Policies.Lookup(slot, &inner) == nil && inner != 0 {
		_ = o.Warm.Put(slot, uint8(1))
	}
}

// writeSlot puts the policy of a cgroup's first attach into its newly
// claimed slot. A warm slot's policy map is written in place: no cgroup
// points at the slot yet, and stale storages are turned away by the owner
// check. A cold slot gets a new map, which costs an RCU grace period once.
func (o *Objects) writeSlot(slot uint32, p *bpf.Policy) error {
	var innerID ebpf.MapID
	if err := o.Policies.Lookup(slot, &innerID); err != nil || innerID == 0 {
		return o.fillSlot(slot, p)
	}
	m, err := ebpf.NewMapFromID(innerID)
	if err != nil {
		return o.fillSlot(slot, p)
	}
	defer m.Close()
	epoch, err := randomEpoch()
	if err != nil {
		return err
	}
	p.Epoch = epoch
	if err := m.Update(uint32(0), p, ebpf.UpdateExist); err != nil {
		return fmt.Errorf("write policy in slot %d: %w", slot, err)
	}
	return nil
}

// slotPolicy reads the policy in a slot.
func (o *Objects) slotPolicy(slot uint32) (bpf.Policy, error) {
	var p bpf.Policy
	var innerID ebpf.MapID
	if err := o.Policies.Lookup(slot, &innerID); err != nil || innerID == 0 {
		return p, fmt.Errorf("policy slot %d is empty", slot)
	}
	m, err := ebpf.NewMapFromID(innerID)
	if err != nil {
		return p, fmt.Errorf("open the policy in slot %d: %w", slot, err)
	}
	defer m.Close()
	if err := m.Lookup(uint32(0), &p); err != nil {
		return p, fmt.Errorf("read the policy in slot %d: %w", slot, err)
	}
	return p, nil
}

// fillSlot puts a policy into a slot, replacing what it held in one update:
// the way to change a live cgroup's policy. It gives the policy a fresh
// epoch, so that no socket's memo of an earlier policy ever applies to it.
func (o *Objects) fillSlot(slot uint32, p *bpf.Policy) error {
	epoch, err := randomEpoch()
	if err != nil {
		return err
	}
	p.Epoch = epoch
	m, err := ebpf.NewMap(policyMapSpec)
	if err != nil {
		return fmt.Errorf("create policy map: %w", err)
	}
	defer m.Close() // cgpol_policies holds it from here on
	if err := m.Update(uint32(0), p, ebpf.UpdateAny); err != nil {
		return fmt.Errorf("write policy: %w", err)
	}
	if err := o.Policies.Update(slot, m, ebpf.UpdateAny); err != nil {
		return fmt.Errorf("publish policy in slot %d: %w", slot, err)
	}
	return nil
}

// record notes the slot, label and time of an attachment, for status,
// detach and gc.
func (o *Objects) record(id uint64, slot uint32, label Label) error {
	meta := bpf.Attachment{AttachedUnixNs: uint64(time.Now().UnixNano()), Slot: slot + 1}
	putCString(meta.Name[:], label.Name)
	putCString(meta.Container[:], label.Container)
	putCString(meta.Manager[:], label.Manager)
	if err := o.Attachments.Put(id, meta); err != nil {
		return fmt.Errorf("attach cgroup %d: record it: %w", id, err)
	}
	return nil
}

// linkHooks links the programs of the hooks that a policy with these flags
// needs to cg, and pins the links in dir. Links that are pinned already and
// still right are kept, needed or not.
func (o *Objects) linkHooks(cg cgroup.Cgroup, dir string, flags uint32) error {
	f, err := cg.Open()
	if err != nil {
		return fmt.Errorf("attach %s: %w", cg, err)
	}
	defer f.Close()
	for _, h := range bpf.Hooks {
		if !h.Needed(flags) {
			continue // a link pinned for an earlier policy stays, and allows
		}
		prog, progID, err := o.program(h)
		if err != nil {
			return err
		}
		pin := filepath.Join(dir, h.Name)
		if o.linkCurrent(pin, cg.ID, progID) {
			continue
		}
		l, err := link.AttachRawLink(link.RawLinkOptions{
			Target:  int(f.Fd()),
			Program: prog,
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

// linkCurrent reports whether pin holds a link of the program progID to
// cgroup id. A pin that holds anything else is removed.
func (o *Objects) linkCurrent(pin string, id uint64, progID ebpf.ProgramID) bool {
	l, err := link.LoadPinnedLink(pin, nil)
	if errors.Is(err, os.ErrNotExist) {
		return false
	}
	if err != nil {
		os.Remove(pin)
		return false
	}
	defer l.Close()
	info, err := l.Info()
	if err == nil && info.Program == progID {
		if cg := info.Cgroup(); cg != nil && cg.CgroupId == id {
			return true
		}
	}
	dropLink(l)
	return false
}

// dropLink detaches a link at once (BPF_LINK_DETACH), whoever else holds
// it, and removes its pin. Unpinning alone would leave the kernel to detach
// it later, from a workqueue.
func dropLink(l link.Link) error {
	err := l.Detach()
	if errors.Is(err, ebpf.ErrNotSupported) {
		err = nil // Linux < 5.9: the unpin below detaches it, a little later
	}
	return errors.Join(err, l.Unpin())
}

// unlinkHooks detaches and unpins the links of a cgroup. When it returns,
// the kernel runs none of the cgroup's cgpol programs any more.
func (o *Objects) unlinkHooks(id uint64) error {
	var errs []error
	for _, h := range bpf.Hooks {
		pin := filepath.Join(o.cgroupDir(id), h.Name)
		l, err := link.LoadPinnedLink(pin, nil)
		if errors.Is(err, os.ErrNotExist) {
			continue
		}
		if err != nil { // not a link we can open: at least unpin it
			if err := os.Remove(pin); err != nil && !os.IsNotExist(err) {
				errs = append(errs, err)
			}
			continue
		}
		errs = append(errs, dropLink(l))
		l.Close()
	}
	return errors.Join(errs...)
}

// putCString copies s into a NUL-terminated C char array, cut to fit.
func putCString(dst []int8, s string) {
	for i := range min(len(s), len(dst)-1) {
		dst[i] = int8(s[i])
	}
}

// randomEpoch returns a random, non-zero policy epoch.
func randomEpoch() (uint64, error) {
	var b [8]byte
	for {
		if _, err := cryptorand.Read(b[:]); err != nil {
			return 0, fmt.Errorf("policy epoch: %w", err)
		}
		if e := binary.NativeEndian.Uint64(b[:]); e != 0 {
			return e, nil
		}
	}
}
