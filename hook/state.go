package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"

	"github.com/cgpol/cgpol/pkg/nodeconfig"
)

// state is the part of the OCI runtime state that the hook reads. Runtimes
// write it on the hook's stdin.
type state struct {
	ID          string            `json:"id"`
	Status      string            `json:"status"`
	Pid         int               `json:"pid"`
	Bundle      string            `json:"bundle"`
	Annotations map[string]string `json:"annotations"`
}

// maxState bounds what the hook reads from stdin. A state is a few KiB; a
// runtime's annotations can make it larger, but not this large.
const maxState = 4 << 20

// readState parses the OCI state. Where the state carries no annotations
// (older runtimes), they are read from the bundle's config.json.
func readState(r io.Reader) (*state, error) {
	data, err := io.ReadAll(io.LimitReader(r, maxState+1))
	if err != nil {
		return nil, fmt.Errorf("read the OCI state from stdin: %w", err)
	}
	if len(data) > maxState {
		return nil, fmt.Errorf("the OCI state on stdin is larger than %d bytes", maxState)
	}
	var s state
	if err := json.Unmarshal(data, &s); err != nil {
		return nil, fmt.Errorf("parse the OCI state on stdin: %w (is cgpol-hook run as an OCI hook?)", err)
	}
	if s.ID == "" {
		return nil, errors.New("the OCI state on stdin has no container id (is cgpol-hook run as an OCI hook?)")
	}
	if len(s.Annotations) == 0 && s.Bundle != "" {
		if s.Annotations, err = bundleAnnotations(s.Bundle); err != nil {
			return nil, err
		}
	}
	return &s, nil
}

// bundleAnnotations reads the annotations of a bundle's config.json.
func bundleAnnotations(bundle string) (map[string]string, error) {
	file := filepath.Join(bundle, "config.json")
	data, err := os.ReadFile(file)
	if err != nil {
		return nil, fmt.Errorf("read annotations: %w", err)
	}
	var spec struct {
		Annotations map[string]string `json:"annotations"`
	}
	if err := json.Unmarshal(data, &spec); err != nil {
		return nil, fmt.Errorf("read annotations: parse %s: %w", file, err)
	}
	return spec.Annotations, nil
}

// Annotations that runtimes and orchestrators set to name a container, its
// pod and the pod's namespace, in the order they are tried.
var (
	nameKeys = []string{
		"io.kubernetes.cri.container-name", // containerd's CRI
		"io.kubernetes.container.name",     // CRI-O
		"nerdctl/name",                     // nerdctl
	}
	podKeys = []string{
		"io.kubernetes.cri.sandbox-name", // containerd's CRI
		"io.kubernetes.pod.name",         // CRI-O
	}
	namespaceKeys = []string{
		"io.kubernetes.cri.sandbox-namespace", // containerd's CRI
		"io.kubernetes.pod.namespace",         // CRI-O
	}
)

// container identifies the container for scoped annotations, the node's
// exemptions and status. Without a name annotation (runc, Podman 4) the
// name is the container id.
func (s *state) container() nodeconfig.Container {
	c := nodeconfig.Container{
		ID:        s.ID,
		Name:      first(s.Annotations, nameKeys),
		Pod:       first(s.Annotations, podKeys),
		Namespace: first(s.Annotations, namespaceKeys),
	}
	if c.Name == "" {
		c.Name = s.ID
	}
	return c
}

// first returns the value of the first key of keys that is set.
func first(annotations map[string]string, keys []string) string {
	for _, k := range keys {
		if v := annotations[k]; v != "" {
			return v
		}
	}
	return ""
}
