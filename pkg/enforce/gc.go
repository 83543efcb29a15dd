package enforce

import (
	"errors"
	"os"
	"path/filepath"
	"strings"

	"github.com/cgpol/cgpol/bpf"
	"github.com/cgpol/cgpol/pkg/bpffs"
	"github.com/cgpol/cgpol/pkg/cgroup"
)

// GCReport counts what GC removed.
type GCReport struct {
	Detached    []uint64 `json:"detached"`    // cgroups that are gone, or that a killed attach left with no hook linked
	Slots       int      `json:"slots"`       // policy slots that no attached cgroup names
	Attachments int      `json:"attachments"` // records of cgroups with no links
	Installs    int      `json:"installs"`    // unfinished installs left by a killed cgpol
}

// GC removes what crashes and removed cgroups leave behind. It holds the
// install's lock exclusively, so no attach or detach runs meanwhile.
func (o *Objects) GC() (GCReport, error) {
	var report GCReport
	mount, err := cgroup.Mount()
	if err != nil {
		return report, err
	}
	installLock, err := o.lock(true)
	if err != nil {
		return report, err
	}
	defer installLock.Unlock()

	ids, err := o.attachedIDs()
	if err != nil {
		return report, err
	}
	attached := map[uint64]bool{}
	for _, id := range ids {
		// A cgroup that still exists keeps its links, even if a killed attach
		// left them denying everything: removing them would open it.
		_, err := cgroup.ByID(mount, id)
		_, linked, _ := o.ref(id)
		if errors.Is(err, cgroup.ErrGone) || !linked {
			if err := o.detachLocked(id); err != nil && !errors.Is(err, ErrNotAttached) {
				return report, err
			}
			report.Detached = append(report.Detached, id)
			continue
		}
		attached[id] = true
	}

	// Slots claimed by an attach that was killed before it pointed the
	// cgroup at them.
	var slot uint32
	var owner uint64
	var stale []uint32
	for iter := o.Slots.Iterate(); iter.Next(&slot, &owner); {
		ref, ok, _ := o.ref(owner)
		if !attached[owner] || !ok || ref.Slot != slot+1 {
			stale = append(stale, slot)
		}
	}
	for _, slot := range stale {
		o.releaseSlot(slot)
		report.Slots++
	}
	// Rule maps of a generation that the slot's policy no longer uses, left
	// by an attach killed after it swapped the policy.
	for iter := o.Slots.Iterate(); iter.Next(&slot, &owner); {
		if p, err := o.slotPolicy(slot); err == nil && p.Rules/2 == slot {
			o.clearRules(p.Rules ^ 1)
		}
	}

	// Records of cgroups with no links.
	var cgID uint64
	var meta bpf.Attachment
	var orphans []uint64
	for iter := o.Attachments.Iterate(); iter.Next(&cgID, &meta); {
		if !attached[cgID] {
			orphans = append(orphans, cgID)
		}
	}
	for _, id := range orphans {
		if o.Attachments.Delete(id) == nil {
			report.Attachments++
		}
	}

	report.Installs = removeAbandonedInstalls(o.Root)
	return report, nil
}

// removeAbandonedInstalls removes temporary install directories whose
// installer is gone: nobody holds their lock.
func removeAbandonedInstalls(root string) int {
	entries, _ := os.ReadDir(root)
	n := 0
	for _, e := range entries {
		if !e.IsDir() || !strings.HasPrefix(e.Name(), tmpPrefix) {
			continue
		}
		dir := filepath.Join(root, e.Name())
		lock, err := bpffs.TryLockDir(dir)
		if err != nil {
			continue // an install is running
		}
		if os.RemoveAll(dir) == nil {
			n++
		}
		lock.Unlock()
	}
	return n
}
