package enforce

import (
	"errors"
	"fmt"
	"os"

	"github.com/cgpol/cgpol/pkg/bpffs"
)

// Detach removes cgpol's policy from the cgroup with this id: its links,
// which detaches the programs, then its policy maps and its record. It works
// on cgroups that are gone too. ErrNotAttached if there is nothing to remove.
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
		// Nothing pinned; still drop a record that a crash may have left.
		_ = o.Attachments.Delete(id)
		return fmt.Errorf("cgroup %d: %w", id, ErrNotAttached)
	}
	if err != nil {
		return fmt.Errorf("detach cgroup %d: %w", id, err)
	}
	defer cgLock.Unlock()

	ref, linked, err := o.ref(id)
	if err != nil {
		return fmt.Errorf("detach cgroup %d: %w", id, err)
	}
	if err := o.unlinkHooks(id); err != nil {
		return fmt.Errorf("detach cgroup %d: %w", id, err)
	}
	if linked {
		o.dropPolicy(ref.PolicyId)
	}
	_ = o.Attachments.Delete(id)
	if err := os.Remove(dir); err != nil && !os.IsNotExist(err) {
		return fmt.Errorf("detach cgroup %d: %w", id, err)
	}
	return nil
}
