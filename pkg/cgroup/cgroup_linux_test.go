package cgroup_test

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/cgpol/cgpol/pkg/cgroup"
	"github.com/cgpol/cgpol/test/testenv"
)

func TestResolveOfPIDAndByID(t *testing.T) {
	testenv.Privileged(t)
	cg := testenv.NewCgroup(t)
	mount := cg.Mount
	// By directory and by hierarchy path.
	for _, name := range []string{cg.Dir(), cg.Path, strings.TrimPrefix(cg.Path, "/")} {
		got, err := cgroup.Resolve(mount, name)
		if err != nil || got != cg {
			t.Errorf("Resolve(%q) = %+v, %v; want %+v", name, got, err, cg)
		}
	}
	if _, err := cgroup.Resolve(mount, "/proc"); err == nil {
		t.Error("Resolve accepted a directory outside cgroupfs")
	}

	sleeper := testenv.CommandIn(t, cg, "/bin/sleep", "30")
	if err := sleeper.Start(); err != nil {
		t.Fatal(err)
	}
	defer sleeper.Process.Kill()
	if got, err := cgroup.OfPID(mount, sleeper.Process.Pid); err != nil || got != cg {
		t.Errorf("OfPID = %+v, %v; want %+v", got, err, cg)
	}

	if got, err := cgroup.ByID(mount, cg.ID); err != nil || got != cg {
		t.Errorf("ByID = %+v, %v; want %+v", got, err, cg)
	}
	child := testenv.NewChildCgroup(t, cg, "child")
	childID := child.ID
	if err := os.Remove(child.Dir()); err != nil {
		t.Fatal(err)
	}
	if _, err := cgroup.ByID(mount, childID); !errors.Is(err, cgroup.ErrGone) {
		t.Errorf("ByID of a removed cgroup: %v, want ErrGone", err)
	}
}

func TestCheckAttachable(t *testing.T) {
	testenv.Privileged(t)
	cg := testenv.NewCgroup(t)
	if err := cgroup.CheckAttachable(cg); err != nil {
		t.Errorf("a fresh cgroup is refused: %v", err)
	}
	root, _ := cgroup.Resolve(cg.Mount, "/")
	if err := cgroup.CheckAttachable(root); err == nil || !strings.Contains(err.Error(), "cgroup2 root") {
		t.Errorf("root: %v", err)
	}
	own, err := cgroup.OfPID(cg.Mount, os.Getpid())
	if err != nil {
		t.Fatal(err)
	}
	if err := cgroup.CheckAttachable(own); err == nil {
		t.Errorf("the caller's own cgroup %s is accepted", own)
	}
	// The parent of a test cgroup holds no test process; it is attachable
	// unless this test runs inside it.
	parent, _ := cgroup.Resolve(cg.Mount, filepath.Dir(cg.Path))
	if !parent.Contains(own) {
		if err := cgroup.CheckAttachable(parent); err != nil {
			t.Errorf("parent %s: %v", parent, err)
		}
	}
}
