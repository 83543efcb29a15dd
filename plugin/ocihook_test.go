package main

// The fail-closed alternative on a containerd node: cgpol's OCI hook in
// the CRI's base runtime spec, with the pods' cgpol annotations passed on
// to the containers. No NRI plugin runs; runc runs the hook as part of
// each container's creation, and a hook that fails or is missing stops it.

import (
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/cgpol/cgpol/pkg/policy"
	"github.com/cgpol/cgpol/test/testenv"
)

// baseSpecWithHooks does what configs/containerd/cgpol-hook.toml tells to
// do with ctr and jq: it writes containerd's default OCI spec (ctr oci spec)
// with the hooks of configs/runc-hooks.json added, here running hook with
// extra args before the stage.
func baseSpecWithHooks(t testing.TB, file, hook string, args ...string) {
	t.Helper()
	out, err := exec.Command(filepath.Join(testenv.ContainerdDir(t), "ctr"), "oci", "spec").Output()
	if err != nil {
		t.Fatalf("ctr oci spec: %v", err)
	}
	var spec map[string]any
	if err := json.Unmarshal(out, &spec); err != nil {
		t.Fatal(err)
	}
	var snippet struct {
		Hooks map[string][]map[string]any `json:"hooks"`
	}
	data := shipped(t, "configs/runc-hooks.json", "/usr/local/bin/cgpol-hook", hook)
	if err := json.Unmarshal([]byte(data), &snippet); err != nil {
		t.Fatal(err)
	}
	for _, hooks := range snippet.Hooks {
		for _, h := range hooks {
			a := h["args"].([]any) // ["cgpol-hook", stage]
			h["args"] = append(append([]any{a[0]}, toAny(args)...), a[1:]...)
		}
	}
	spec["hooks"] = snippet.Hooks
	data2, err := json.MarshalIndent(spec, "", "  ")
	if err != nil {
		t.Fatal(err)
	}
	writeFile(t, file, string(data2))
}

func toAny(ss []string) []any {
	out := make([]any, len(ss))
	for i, s := range ss {
		out[i] = s
	}
	return out
}

func TestContainerdWithTheOCIHookFailsClosed(t *testing.T) {
	hook := testenv.Build(t, "./hook")
	hookCopy := filepath.Join(t.TempDir(), "cgpol-hook") // removed below
	n := newNode(t, nodeOptions{configure: func(t testing.TB, n *node) []string {
		data, err := os.ReadFile(hook)
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(hookCopy, data, 0o755); err != nil {
			t.Fatal(err)
		}
		dir := t.TempDir()
		spec, dropIn := filepath.Join(dir, "base-spec.json"), filepath.Join(dir, "cgpol-hook.toml")
		baseSpecWithHooks(t, spec, hookCopy, "--config", n.nodeConfig)
		writeFile(t, dropIn, shipped(t, "configs/containerd/cgpol-hook.toml", "/etc/containerd/cgpol-base-spec.json", spec))
		return []string{dropIn}
	}})
	allowed, denied := testenv.ListenTCP(t, "127.0.0.1"), testenv.ListenTCP(t, "127.0.0.1")
	probe := append([]string{"/probe"}, connects(denied, allowed)...)

	t.Run("pod-wide and container-scoped annotations", func(t *testing.T) {
		p := n.cri.runPod(t, "shop", map[string]string{
			policy.KeyAllowPorts:                          fmt.Sprintf("tcp:%d", allowed),
			policy.ScopedKey(policy.KeyAllowPorts, "web"): fmt.Sprintf("tcp:%d", denied),
		}, n.parent)
		for name, want := range map[string]map[int]string{
			"app": {denied: "EPERM", allowed: "ok"},
			"web": {denied: "ok", allowed: "EPERM"},
		} {
			id := n.cri.run(t, p, name, probe...)
			expectConnects(t, name, testenv.ParseProbe(n.cri.output(t, p, id, name)), want)
		}
	})

	t.Run("invalid annotation: the container does not start", func(t *testing.T) {
		p := n.cri.runPod(t, "invalid", map[string]string{policy.KeyAllowPorts: "80,99999"}, n.parent)
		id, err := n.cri.createContainer(p, "app", probe...)
		if err == nil {
			err = n.cri.startContainer(id)
		}
		want := `invalid annotation cgpol.io/allow-ports="80,99999"`
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Fatalf("got %v, want an error with %s", err, want)
		}
		t.Logf("the kubelet would report: %v", err)
	})

	t.Run("hook missing: no container starts", func(t *testing.T) {
		p := n.cri.runPod(t, "annotated", map[string]string{policy.KeyAllowPorts: "443"}, n.parent)
		id, err := n.cri.createContainer(p, "app", probe...)
		if err != nil {
			t.Fatal(err)
		}
		if err := os.Remove(hookCopy); err != nil {
			t.Fatal(err)
		}
		err = n.cri.startContainer(id)
		if err == nil || !strings.Contains(err.Error(), "error running hook") {
			t.Fatalf("StartContainer without the hook binary: got %v, want runc's hook error", err)
		}
		t.Logf("the kubelet would report: %v", err)
	})
}
