package main

import (
	"os"
	"strings"
)

// hostRoot reports whether the hook runs as root in the host's user
// namespace, which loading and attaching BPF programs needs. Rootless
// runtimes run hooks as root inside a user namespace, where it does not.
func hostRoot() bool {
	if os.Geteuid() != 0 {
		return false
	}
	data, err := os.ReadFile("/proc/self/uid_map")
	if err != nil {
		return false
	}
	// The initial user namespace maps every uid to itself.
	return strings.Join(strings.Fields(string(data)), " ") == "0 0 4294967295"
}
