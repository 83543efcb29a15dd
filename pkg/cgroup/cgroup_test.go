package cgroup

import (
	"errors"
	"strings"
	"testing"
)

func TestParseMountInfo(t *testing.T) {
	tests := []struct {
		name, info, want string
		err              error
	}{
		{"hybrid", `25 31 0:23 / /sys/fs/cgroup ro,nosuid shared:9 - tmpfs tmpfs ro,mode=755
41 31 0:38 / /sys/fs/cgroup/unified rw,relatime shared:10 - cgroup2 cgroup2 rw
42 25 0:39 / /sys/fs/cgroup/memory rw - cgroup cgroup rw,memory
`, "/sys/fs/cgroup/unified", nil},
		{"unified", "30 24 0:26 / /sys/fs/cgroup rw,nosuid,nodev,noexec,relatime shared:4 - cgroup2 cgroup2 rw,nsdelegate\n", "/sys/fs/cgroup", nil},
		{"no optional fields", "30 24 0:26 / /cg rw - cgroup2 none rw\n", "/cg", nil},
		{"escaped", `30 24 0:26 / /mnt/my\040cgroups rw - cgroup2 none rw` + "\n", "/mnt/my cgroups", nil},
		{"v1 only", "42 25 0:39 / /sys/fs/cgroup/memory rw - cgroup cgroup rw,memory\n", "", ErrNoCgroup2},
		{"empty", "", "", ErrNoCgroup2},
		{"fstype as mount point", "30 24 0:26 / /cgroup2 rw - tmpfs cgroup2 rw\n", "", ErrNoCgroup2},
	}
	for _, tt := range tests {
		got, err := parseMountInfo(strings.NewReader(tt.info))
		if got != tt.want || !errors.Is(err, tt.err) {
			t.Errorf("%s: got %q, %v; want %q, %v", tt.name, got, err, tt.want, tt.err)
		}
	}
}

func TestParseProcCgroup(t *testing.T) {
	got, err := parseProcCgroup("12:memory:/docker/abc\n0::/system.slice/docker-abc.scope\n")
	if err != nil || got != "/system.slice/docker-abc.scope" {
		t.Errorf("got %q, %v", got, err)
	}
	if _, err := parseProcCgroup("4:memory:/x\n1:cpu:/\n"); err == nil {
		t.Error("v1-only file parsed")
	}
	if _, err := parseProcCgroup("0::/gone (deleted)\n"); !errors.Is(err, ErrGone) {
		t.Errorf("deleted cgroup: %v", err)
	}
}

func TestContains(t *testing.T) {
	root := Cgroup{Path: "/"}
	a := Cgroup{Path: "/a"}
	ab := Cgroup{Path: "/a/b"}
	ax := Cgroup{Path: "/ax"}
	for _, c := range []struct {
		outer, inner Cgroup
		want         bool
	}{
		{root, a, true}, {root, root, true}, {a, a, true}, {a, ab, true},
		{ab, a, false}, {a, ax, false}, {a, root, false},
	} {
		if got := c.outer.Contains(c.inner); got != c.want {
			t.Errorf("%s.Contains(%s) = %v", c.outer, c.inner, got)
		}
	}
}
