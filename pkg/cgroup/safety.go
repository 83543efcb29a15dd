package cgroup

import (
	"fmt"
	"os"
)

// CheckAttachable refuses a cgroup whose policy would reach beyond one
// workload: the root of the hierarchy, and any cgroup that holds the caller
// or the host's init (PID 1), or holds one of their ancestors.
func CheckAttachable(c Cgroup) error {
	if c.IsRoot() {
		return fmt.Errorf("refusing to attach to the cgroup2 root %s: a policy there would apply to the whole host", c.Dir())
	}
	for _, who := range []struct {
		pid  int
		name string
	}{{os.Getpid(), "this process (cgpol itself or the runtime that ran it)"}, {1, "PID 1, the host's init"}} {
		own, err := OfPID(c.Mount, who.pid)
		if err != nil {
			return fmt.Errorf("refusing to attach to %s: cannot tell whether it holds %s: %w", c, who.name, err)
		}
		if c.Contains(own) {
			return fmt.Errorf("refusing to attach to cgroup %s: it holds %s, in %s; the policy would restrict the host, not one workload", c, who.name, own)
		}
	}
	return nil
}
