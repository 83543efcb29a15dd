package enforce

import (
	"errors"
	"fmt"
	"os"

	"github.com/cgpol/cgpol/bpf"
	"github.com/cgpol/cgpol/pkg/bpffs"
)

// Detach removes cgpol's policy from the cgroup with this id: its links,
// which detaches the programs, then its slot and its record. It works on
// cgroups that are gone too. ErrNotAttached if there is nothing to remove.
func (o *Objects) Detach(id uint64) error {
	installLock, err := o.lock(false)
	if err != nil {
		return err
	}
	defer installLock.Unlock()
	return o.detachLocked(id)
}

// detachLocked is Detach for a caller that holds the install's lock.
func (o *Objects) detachLocked(id uint64) error {
	dir := o.cgroupDir(id)
	cgLock, err := bpffs.LockDir(dir, true)
	if errors.Is(err, os.ErrNotExist) || errors.Is(err, bpffs.ErrMoved) {
		return fmt.Errorf("cgroup %d: %w", id, ErrNotAttached)
	}
	if err != nil {
		return fmt.Errorf("detach cgroup %d: %w", id, err)
	}
	defer cgLock.Unlock()

	// The slots to release: the one the storage names and the one recorded
	// (they differ only after a killed attach), if this cgroup owns them.
	var slots []uint32
	if ref, ok, _ := o.ref(id); ok && ref.Slot != 0 {
		slots = append(slots, ref.Slot-1)
	}
	var meta bpf.Attachment
	if o.Attachments.Lookup(id, &meta) == nil && meta.Slot != 0 {
		slots = append(slots, meta.Slot-1)
	}
	if err := o.unlinkHooks(id); err != nil {
		return fmt.Errorf("detach cgroup %d: %w", id, err)
	}
	for _, slot := range slots {
		if o.slotOwner(slot) == id {
			o.releaseSlot(slot)
		}
	}
	_ = o.Attachments.Delete(id)
	if err := os.Remove(dir); err != nil && !os.IsNotExist(err) {
		return fmt.Errorf("detach cgroup %d: %w", id, err)
	}
	return nil
}
