package cgroup

import (
	"fmt"
	"os"
)

// RefusedError is a cgroup that cgpol will not attach to, because a policy
// there would reach beyond one workload.
type RefusedError struct {
	Cgroup Cgroup
	Reason string
}

func (e *RefusedError) Error() string {
	return fmt.Sprintf("refusing to attach to cgroup %s: %s", e.Cgroup.Dir(), e.Reason)
}

// CheckAttachable refuses a cgroup whose policy would reach beyond one
// workload: the root of the hierarchy, and any cgroup that holds the caller
// or the host's init (PID 1), or holds one of their ancestors. A refusal is
// a *RefusedError.
func CheckAttachable(c Cgroup) error {
	if c.IsRoot() {
		return &RefusedError{c, "it is the cgroup2 root, and a policy there would apply to the whole host"}
	}
	for _, who := range []struct {
		pid  int
		name string
	}{{os.Getpid(), "this process (cgpol itself or the runtime that ran it)"}, {1, "PID 1, the host's init"}} {
		own, err := OfPID(c.Mount, who.pid)
		if err != nil {
			return &RefusedError{c, fmt.Sprintf("cannot tell whether it holds %s: %v", who.name, err)}
		}
		if c.Contains(own) {
			return &RefusedError{c, fmt.Sprintf("it holds %s, in %s; the policy would restrict the host, not one workload", who.name, own)}
		}
	}
	return nil
}
