package enforce

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"github.com/cgpol/cgpol/bpf"
)

// ErrStillAttached means that uninstall was asked to leave attached cgroups alone.
var ErrStillAttached = errors.New("cgroups are still attached")

// Uninstall removes the install under root. With cgroups still attached it
// refuses, unless force is set: then it detaches them first, which leaves
// them unrestricted.
func Uninstall(root string, force bool) error {
	o, err := Open(root)
	if err != nil && force && !errors.Is(err, ErrNotInstalled) {
		// An incomplete or incompatible install: remove its pins wholesale.
		// Unpinning a link detaches it.
		if rmErr := os.RemoveAll(filepath.Join(root, bpf.ABI)); rmErr != nil {
			return fmt.Errorf("uninstall: %w", rmErr)
		}
		removeAbandonedInstalls(root)
		os.Remove(root)
		return nil
	}
	if err != nil {
		return err
	}
	defer o.Close()
	installLock, err := o.lock(true)
	if err != nil {
		return err
	}
	defer installLock.Unlock()
	ids, err := o.attachedIDs()
	if err != nil {
		return err
	}
	if len(ids) > 0 && !force {
		return fmt.Errorf("%w: %d cgroups have a policy; detach them, or uninstall --force to detach all", ErrStillAttached, len(ids))
	}
	for _, id := range ids {
		if err := o.detachLocked(id); err != nil && !errors.Is(err, ErrNotAttached) {
			return err
		}
	}
	if err := os.RemoveAll(o.Dir); err != nil {
		return fmt.Errorf("uninstall: %w", err)
	}
	removeAbandonedInstalls(root)
	os.Remove(root) // only if empty: other ABIs may still be installed
	return nil
}
