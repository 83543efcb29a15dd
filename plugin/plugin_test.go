package main

import (
	"io"
	"strings"
	"testing"

	"github.com/cgpol/cgpol/pkg/cgroup"
	"github.com/cgpol/cgpol/test/testenv"
)

func TestSurviveTurnsAPanicIntoAnError(t *testing.T) {
	logs, err := newLogOutput(io.Discard, options{})
	if err != nil {
		t.Fatal(err)
	}
	p := newPlugin(options{}, logs)
	handler := func() (err error) {
		defer p.survive("StartContainer", &err)
		panic("handler bug")
	}
	if err := handler(); err == nil || !strings.Contains(err.Error(), "cgpol: internal error in StartContainer: handler bug") {
		t.Errorf("got %v", err)
	}
}

func TestContainerCgroup(t *testing.T) {
	testenv.Privileged(t)
	parent := testenv.NewCgroup(t)
	id := randomID()
	ctr := testenv.NewChildCgroup(t, parent, id)
	sub := testenv.NewChildCgroup(t, ctr, "sub")
	other := testenv.NewChildCgroup(t, parent, "other")
	start := func(cg cgroup.Cgroup) uint32 {
		cmd := testenv.CommandIn(t, cg, "/bin/busybox", "sleep", "60")
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
		return uint32(cmd.Process.Pid)
	}
	for _, tt := range []struct {
		name string
		in   cgroup.Cgroup
		want cgroup.Cgroup
	}{
		{"in the container's cgroup", ctr, ctr},
		{"in a child cgroup of the container's", sub, ctr},
	} {
		got, err := containerCgroup(parent.Mount, start(tt.in), id)
		if err != nil || got != tt.want {
			t.Errorf("%s: got %v, %v; want %v", tt.name, got, err, tt.want)
		}
	}
	if got, err := containerCgroup(parent.Mount, start(other), id); err == nil {
		t.Errorf("in another cgroup: got %v, want an error", got)
	}
	if _, err := containerCgroup(parent.Mount, 0, id); err == nil {
		t.Error("no pid: no error")
	}
}
