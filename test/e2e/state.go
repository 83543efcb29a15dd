// Package e2e holds the end-to-end tests of cgpol's runtime integrations
// with real runtimes (runc, Podman), and the helpers they share with the
// hook's own tests.
package e2e

import (
	"errors"
	"os"
	"path/filepath"
	"testing"

	"github.com/cilium/ebpf"

	"github.com/cgpol/cgpol/pkg/enforce"
	"github.com/cgpol/cgpol/test/testenv"
)

// AssertNoAttachments checks that the install under root holds no pins of
// attached cgroups, no claimed slot, no rule map and no record: what
// remains once every container is deleted. A free slot may keep its policy
// map for reuse ("warm"), but then it must be offered for reuse. A root with
// nothing installed is clean.
func AssertNoAttachments(t testing.TB, root string) {
	t.Helper()
	objs, err := enforce.Open(root)
	if errors.Is(err, enforce.ErrNotInstalled) {
		return
	}
	if err != nil {
		t.Fatal(err)
	}
	defer objs.Close()
	entries, err := os.ReadDir(filepath.Join(objs.Dir, "cgroup"))
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		t.Errorf("pins left under %s: %s", filepath.Join(objs.Dir, "cgroup"), e.Name())
	}
	for _, m := range []struct {
		name string
		m    *ebpf.Map
	}{{"policy slots claimed", objs.Slots}, {"attachment records", objs.Attachments},
		{"IPv4 rule maps", objs.CIDR4}, {"IPv6 rule maps", objs.CIDR6}, {"port set maps", objs.PortSets}, {"redirect maps", objs.Redirects}} {
		if n := testenv.CountEntries(t, m.m); n != 0 {
			t.Errorf("%d %s left", n, m.name)
		}
	}
	for slot := range objs.Policies.MaxEntries() {
		var id uint32
		var one uint8
		if objs.Policies.Lookup(slot, &id) == nil && objs.Warm.Lookup(slot, &one) != nil {
			t.Errorf("slot %d holds a policy map but is neither claimed nor offered for reuse", slot)
		}
	}
}
