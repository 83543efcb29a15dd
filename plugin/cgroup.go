package main

import (
	"bufio"
	"errors"
	"fmt"
	"os"
	"path"
	"path/filepath"
	"strings"

	"github.com/cgpol/cgpol/pkg/cgroup"
)

// containerCgroup finds a container's cgroup from the pid of its first
// process, through /proc/PID/cgroup, so that it works with both the systemd
// driver (.../cri-containerd-<id>.scope) and the cgroupfs driver
// (.../<id>). It returns the nearest cgroup, from the process's own up,
// whose name holds the container id: a container that moved its process
// into a child cgroup of its own is still restricted as a whole.
//
// When no cgroup on the way names the container, the process's own cgroup
// is used only if exact is set: at StartContainer, where the runtime holds
// the process before it runs anything. Later, the pid might have been
// reused, and a guess could restrict some other workload.
func containerCgroup(mount string, pid uint32, id string, exact bool) (cgroup.Cgroup, error) {
	if pid == 0 {
		return cgroup.Cgroup{}, fmt.Errorf("the runtime gave no pid for container %s", id)
	}
	own, err := cgroup.OfPID(mount, int(pid))
	if err != nil {
		return cgroup.Cgroup{}, err
	}
	for p := own.Path; p != "/" && p != "."; p = path.Dir(p) {
		if id != "" && strings.Contains(path.Base(p), id) {
			if p == own.Path {
				return own, nil
			}
			return cgroup.Resolve(mount, p)
		}
	}
	if exact {
		return own, nil
	}
	return cgroup.Cgroup{}, fmt.Errorf("pid %d is in cgroup %s, which does not name container %s", pid, own.Path, id)
}

// populated reports whether any process is left in a cgroup or its
// children. A cgroup that is gone has none.
func populated(cg string) (bool, error) {
	f, err := os.Open(filepath.Join(cg, "cgroup.events"))
	if errors.Is(err, os.ErrNotExist) {
		return false, nil
	}
	if err != nil {
		return false, err
	}
	defer f.Close()
	s := bufio.NewScanner(f)
	for s.Scan() {
		if v, ok := strings.CutPrefix(s.Text(), "populated "); ok {
			return v != "0", nil
		}
	}
	if err := s.Err(); err != nil {
		return false, err
	}
	return false, fmt.Errorf("%s/cgroup.events has no populated line", cg)
}
