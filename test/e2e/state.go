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
)

// AssertNoAttachments checks that the install under root holds no pins of
// attached cgroups and no slot, policy or record: what remains once every
// container is deleted. A root with nothing installed is clean.
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
	}{{"policy slots claimed", objs.Slots}, {"policies", objs.Policies}, {"attachment records", objs.Attachments}} {
		if n := countEntries(t, m.m); n != 0 {
			t.Errorf("%d %s left", n, m.name)
		}
	}
}

// countEntries counts the entries of a hash map, or the filled slots of an
// array of maps.
func countEntries(t testing.TB, m *ebpf.Map) int {
	t.Helper()
	n := 0
	if m.Type() == ebpf.ArrayOfMaps {
		for slot := range m.MaxEntries() {
			var id uint32
			if m.Lookup(slot, &id) == nil {
				n++
			}
		}
		return n
	}
	var key any // nil: the first key
	next := make([]byte, m.KeySize())
	for {
		if err := m.NextKey(key, next); err != nil {
			if errors.Is(err, ebpf.ErrKeyNotExist) {
				return n
			}
			t.Fatalf("iterate %s: %v", m, err)
		}
		n++
		key = append([]byte(nil), next...)
	}
}
