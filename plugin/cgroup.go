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
// If no cgroup on the way names the container, it refuses: the process may
// sit in a cgroup that the runtime did not make for it (a runtime that
// makes no cgroup v2 per container, on a hybrid host, leaves it in its own),
// or the pid may have been reused since the runtime reported it. A policy
// there would restrict something else than the container.
func containerCgroup(mount string, pid uint32, id string) (cgroup.Cgroup, error) {
	if pid == 0 {
		return cgroup.Cgroup{}, fmt.Errorf("the runtime gave no pid for container %s", id)
	}
	if id == "" {
		return cgroup.Cgroup{}, errors.New("the runtime gave no container id")
	}
	own, err := cgroup.OfPID(mount, int(pid))
	if err != nil {
		return cgroup.Cgroup{}, err
	}
	for p := own.Path; p != "/" && p != "."; p = path.Dir(p) {
		if strings.Contains(path.Base(p), id) {
			if p == own.Path {
				return own, nil
			}
			return cgroup.Resolve(mount, p)
		}
	}
	return cgroup.Cgroup{}, fmt.Errorf("pid %d of container %s is in cgroup %s, which is not the container's (no cgroup on its path names the container)", pid, id, own.Path)
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
