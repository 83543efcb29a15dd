package main

// Privileged tests: they run the built cgpol-hook against real cgroups and a
// private bpffs, as a runtime would, and check what the kernel enforces.

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/cgpol/cgpol/pkg/cgroup"
	"github.com/cgpol/cgpol/pkg/enforce"
	"github.com/cgpol/cgpol/test/e2e"
	"github.com/cgpol/cgpol/test/testenv"
)

// hookRun is one run of the built hook.
type hookRun struct {
	code   int
	stderr string
}

// runHook runs cgpol-hook STAGE with the state on stdin and the private
// bpffs root; extra flags come first.
func runHook(t *testing.T, root, stage string, st map[string]any, flags ...string) hookRun {
	t.Helper()
	return runHookCmd(t, exec.Command(testenv.Build(t, "./hook")), root, stage, st, flags...)
}

func runHookCmd(t *testing.T, cmd *exec.Cmd, root, stage string, st map[string]any, flags ...string) hookRun {
	t.Helper()
	data, err := json.Marshal(st)
	if err != nil {
		t.Fatal(err)
	}
	cmd.Args = append(append(cmd.Args, flags...), "--bpffs", root, stage)
	if !slicesContain(flags, "--config") {
		cmd.Args = append(cmd.Args, "--config", filepath.Join(t.TempDir(), "missing.yaml"))
	}
	var stderr bytes.Buffer
	cmd.Stdin, cmd.Stderr = bytes.NewReader(data), &stderr
	err = cmd.Run()
	var exit *exec.ExitError
	if err != nil && !errors.As(err, &exit) {
		t.Fatalf("run hook: %v", err)
	}
	return hookRun{code: cmd.ProcessState.ExitCode(), stderr: stderr.String()}
}

func slicesContain(s []string, v string) bool {
	for _, x := range s {
		if x == v {
			return true
		}
	}
	return false
}

// sleeper starts a process in cg, as a container's init, and returns its pid.
func sleeper(t *testing.T, cg cgroup.Cgroup) int {
	t.Helper()
	cmd := testenv.CommandIn(t, cg, "/bin/sleep", "60")
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	return cmd.Process.Pid
}

func openObjs(t *testing.T, root string) *enforce.Objects {
	t.Helper()
	objs, err := enforce.Open(root)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(objs.Close)
	return objs
}

// policyOf returns what the kernel enforces for a container id, or "" if
// nothing is attached for it.
func policyOf(t *testing.T, root, id string) string {
	t.Helper()
	objs, err := enforce.Open(root)
	if errors.Is(err, enforce.ErrNotInstalled) {
		return ""
	}
	if err != nil {
		t.Fatal(err)
	}
	defer objs.Close()
	cgID, ok, err := objs.FindContainer(id)
	if err != nil {
		t.Fatal(err)
	}
	if !ok {
		return ""
	}
	s, err := objs.StatusOf(cgID)
	if err != nil {
		t.Fatal(err)
	}
	if s.Problem != "" {
		t.Errorf("container %s: %s", id, s.Problem)
	}
	return s.Policy
}

func TestCreateRuntimeAttachesAndPoststopDetaches(t *testing.T) {
	testenv.Privileged(t)
	root := testenv.BPFFS(t)
	allowed, denied := testenv.ListenTCP(t, "127.0.0.1"), testenv.ListenTCP(t, "::1")
	cg := testenv.NewCgroup(t)
	id := "ctr-" + filepath.Base(cg.Path)
	st := map[string]any{"ociVersion": "1.0.2", "id": id, "status": "creating", "pid": sleeper(t, cg),
		"annotations": map[string]string{"cgpol.io/allow-ports": fmt.Sprintf("tcp:%d", allowed)}}

	// Installs on first use, then attaches.
	if r := runHook(t, root, "createRuntime", st); r.code != 0 {
		t.Fatalf("createRuntime: exit %d: %s", r.code, r.stderr)
	}
	if got, want := policyOf(t, root, id), fmt.Sprintf(`cgpol.io/allow-ports="tcp:%d"`, allowed); got != want {
		t.Errorf("enforced %q, want %q", got, want)
	}
	objs := openObjs(t, root)
	cgID, _, _ := objs.FindContainer(id)
	if cgID != cg.ID {
		t.Errorf("attached to cgroup %d, want the container's %d", cgID, cg.ID)
	}
	s, _ := objs.StatusOf(cgID)
	if s.Manager != "hook" || s.Name != id {
		t.Errorf("label: manager %q name %q", s.Manager, s.Name)
	}
	v4, v6 := fmt.Sprintf("127.0.0.1:%d", allowed), fmt.Sprintf("[::1]:%d", denied)
	got := testenv.RunProbe(t, cg, "connect", "tcp", v4, "connect", "tcp", v6)
	if got["connect tcp "+v4] != "ok" || got["connect tcp "+v6] != "EPERM" {
		t.Errorf("probe in the container's cgroup: %v", got)
	}

	// The same stage again (a runtime that runs both createRuntime and
	// prestart) keeps the attachment.
	if r := runHook(t, root, "prestart", st); r.code != 0 {
		t.Fatalf("prestart: exit %d: %s", r.code, r.stderr)
	}

	stopped := map[string]any{"ociVersion": "1.0.2", "id": id, "status": "stopped", "annotations": st["annotations"]}
	if r := runHook(t, root, "poststop", stopped); r.code != 0 || r.stderr != "" {
		t.Fatalf("poststop: exit %d: %s", r.code, r.stderr)
	}
	if got := policyOf(t, root, id); got != "" {
		t.Errorf("after poststop, %s is still enforced", got)
	}
	got = testenv.RunProbe(t, cg, "connect", "tcp", v6)
	if got["connect tcp "+v6] != "ok" {
		t.Errorf("after poststop: %v", got)
	}
	e2e.AssertNoAttachments(t, root)
	// Nothing left to remove is a success.
	if r := runHook(t, root, "poststop", stopped); r.code != 0 || r.stderr != "" {
		t.Errorf("second poststop: exit %d: %s", r.code, r.stderr)
	}
}

func TestPoststopWithNothingInstalled(t *testing.T) {
	testenv.Privileged(t)
	root := testenv.BPFFS(t)
	if r := runHook(t, root, "poststop", map[string]any{"id": "never-seen", "status": "stopped"}); r.code != 0 || r.stderr != "" {
		t.Errorf("poststop: exit %d: %s", r.code, r.stderr)
	}
	if _, err := os.Stat(filepath.Join(root, "v1")); err == nil {
		t.Error("poststop installed cgpol")
	}
}

func TestInvalidAnnotationFailsWithOneLine(t *testing.T) {
	testenv.Privileged(t)
	root := testenv.BPFFS(t)
	cg := testenv.NewCgroup(t)
	st := map[string]any{"id": "bad", "pid": sleeper(t, cg), "annotations": map[string]string{"cgpol.io/allow-ports": "80,99999"}}
	r := runHook(t, root, "createRuntime", st)
	want := `cgpol-hook createRuntime: container bad: invalid annotation cgpol.io/allow-ports="80,99999": item 2 "99999": port 99999 is out of range; want 1-65535` + "\n"
	if r.code != 1 || r.stderr != want {
		t.Errorf("exit %d, stderr %q; want 1, %q", r.code, r.stderr, want)
	}
	if _, err := os.Stat(filepath.Join(root, "v1")); err == nil {
		t.Error("an invalid annotation installed cgpol")
	}
}

func TestUnannotatedContainerIsLeftAlone(t *testing.T) {
	testenv.Privileged(t)
	root := testenv.BPFFS(t)
	cg := testenv.NewCgroup(t)
	r := runHook(t, root, "createRuntime", map[string]any{"id": "plain", "pid": sleeper(t, cg), "annotations": map[string]string{"io.container.manager": "libpod"}})
	if r.code != 0 || r.stderr != "" {
		t.Fatalf("exit %d: %s", r.code, r.stderr)
	}
	if _, err := os.Stat(filepath.Join(root, "v1")); err == nil {
		t.Error("an unannotated container installed cgpol")
	}
}

func TestAnnotationsFromTheBundle(t *testing.T) {
	testenv.Privileged(t)
	root := testenv.BPFFS(t)
	cg := testenv.NewCgroup(t)
	bundle := t.TempDir()
	os.WriteFile(filepath.Join(bundle, "config.json"), []byte(`{"annotations":{"cgpol.io/allow-ports":"udp:53"}}`), 0o644)
	r := runHook(t, root, "prestart", map[string]any{"id": "old-runtime", "pid": sleeper(t, cg), "bundle": bundle})
	if r.code != 0 {
		t.Fatalf("exit %d: %s", r.code, r.stderr)
	}
	if got := policyOf(t, root, "old-runtime"); got != `cgpol.io/allow-ports="udp:53"` {
		t.Errorf("enforced %q", got)
	}
}

func TestNodeDefaultPolicyAndExemptions(t *testing.T) {
	testenv.Privileged(t)
	root := testenv.BPFFS(t)
	port := testenv.ListenTCP(t, "127.0.0.1")
	config := filepath.Join(t.TempDir(), "config.yaml")
	os.WriteFile(config, []byte("defaultPolicy:\n  allow-ports: \"\"\nexempt:\n  - name: \"debug-*\"\n"), 0o644)

	denied, exempt := testenv.NewCgroup(t), testenv.NewCgroup(t)
	r := runHook(t, root, "createRuntime", map[string]any{"id": "app", "pid": sleeper(t, denied)}, "--config", config)
	if r.code != 0 {
		t.Fatalf("exit %d: %s", r.code, r.stderr)
	}
	r = runHook(t, root, "createRuntime", map[string]any{"id": "debug-1", "pid": sleeper(t, exempt)}, "--config", config)
	if r.code != 0 {
		t.Fatalf("exit %d: %s", r.code, r.stderr)
	}
	if got := policyOf(t, root, "app"); got != `cgpol.io/allow-ports=""` {
		t.Errorf("unannotated container under a deny-all default: %q", got)
	}
	if got := policyOf(t, root, "debug-1"); got != "" {
		t.Errorf("exempt container: %q", got)
	}
	addr := fmt.Sprintf("127.0.0.1:%d", port)
	if got := testenv.RunProbe(t, denied, "connect", "tcp", addr); got["connect tcp "+addr] != "EPERM" {
		t.Errorf("default policy: %v", got)
	}
	if got := testenv.RunProbe(t, exempt, "connect", "tcp", addr); got["connect tcp "+addr] != "ok" {
		t.Errorf("exempt: %v", got)
	}

	// A hook that the runtime runs only for annotated containers refuses a
	// default it cannot enforce.
	annotated := testenv.NewCgroup(t)
	r = runHook(t, root, "createRuntime", map[string]any{"id": "x", "pid": sleeper(t, annotated), "annotations": map[string]string{"cgpol.io/allow-ports": "80"}},
		"--config", config, "--annotated-only")
	if r.code != 1 || !strings.Contains(r.stderr, "defaultPolicy") || strings.Count(r.stderr, "\n") != 1 {
		t.Errorf("--annotated-only with a default: exit %d, %q", r.code, r.stderr)
	}

	// An invalid config fails the container, naming the file.
	os.WriteFile(config, []byte("defaultPolicy:\n  allow-ports: \"http\"\n"), 0o644)
	r = runHook(t, root, "createRuntime", map[string]any{"id": "y", "pid": sleeper(t, annotated)}, "--config", config)
	if r.code != 1 || !strings.Contains(r.stderr, config) {
		t.Errorf("invalid config: exit %d, %q", r.code, r.stderr)
	}
}

func TestRefusesTheRuntimesOwnCgroupAndTheRoot(t *testing.T) {
	testenv.Privileged(t)
	root := testenv.BPFFS(t)
	ann := map[string]string{"cgpol.io/allow-ports": "80"}

	// The container's process shares the cgroup of the hook (the runtime's),
	// as when a runtime creates no cgroup v2 per container.
	shared := testenv.NewCgroup(t)
	pid := sleeper(t, shared)
	cmd := testenv.CommandIn(t, shared, testenv.Build(t, "./hook"))
	r := runHookCmd(t, cmd, root, "createRuntime", map[string]any{"id": "shared", "pid": pid, "annotations": ann})
	if r.code != 1 || !strings.Contains(r.stderr, "it holds this process") || !strings.Contains(r.stderr, "hybrid cgroup mode") || strings.Count(r.stderr, "\n") != 1 {
		t.Errorf("shared cgroup: exit %d, %q", r.code, r.stderr)
	}

	// PID 1 is in the root, or in a cgroup of the host's init.
	r = runHook(t, root, "createRuntime", map[string]any{"id": "host", "pid": 1, "annotations": ann})
	if r.code != 1 || !strings.Contains(r.stderr, "refusing to attach") || !strings.Contains(r.stderr, "hybrid cgroup mode") {
		t.Errorf("PID 1's cgroup: exit %d, %q", r.code, r.stderr)
	}
	t.Logf("what the user sees: %s", r.stderr)

	// No pid: the hook is configured for the wrong stage.
	r = runHook(t, root, "createRuntime", map[string]any{"id": "nopid", "status": "stopped", "annotations": ann})
	if r.code != 1 || !strings.Contains(r.stderr, "has no pid") {
		t.Errorf("no pid: exit %d, %q", r.code, r.stderr)
	}
}

// The policies of issue 5 go through the hook like allow-ports: address
// rules, bind, redirect, audit and raw sockets, each checked in the
// container's cgroup, and all removed at poststop.
func TestHookEnforcesEveryPolicyKind(t *testing.T) {
	testenv.Privileged(t)
	root := testenv.BPFFS(t)
	target := testenv.ServeTCP(t, "127.0.0.1:0", "target")
	for i, c := range []struct {
		ann  map[string]string
		call []string
		want string
	}{
		{map[string]string{"cgpol.io/allow-cidrs": "127.0.0.1"}, []string{"connect", "udp", "127.0.0.2:53"}, "EPERM"},
		{map[string]string{"cgpol.io/allow-cidrs": "127.0.0.1", "cgpol.io/mode": "audit"}, []string{"connect", "udp", "127.0.0.2:53"}, "ok"},
		{map[string]string{"cgpol.io/allow-bind": "8000-9000"}, []string{"bind", "tcp", "127.0.0.1:7999"}, "EPERM"},
		{map[string]string{"cgpol.io/redirect": fmt.Sprintf("tcp:1=%s", target)}, []string{"dial", "tcp", "127.0.0.1:1"}, "ok peer=127.0.0.1:1 reply=target"},
		{map[string]string{"cgpol.io/raw-sockets": "deny"}, []string{"socket", "raw", "127.0.0.1:0"}, "EPERM"},
	} {
		cg := testenv.NewCgroup(t)
		id := fmt.Sprintf("kind-%d-%s", i, filepath.Base(cg.Path))
		st := map[string]any{"ociVersion": "1.0.2", "id": id, "status": "creating", "pid": sleeper(t, cg), "annotations": c.ann}
		if r := runHook(t, root, "createRuntime", st); r.code != 0 {
			t.Fatalf("%v: createRuntime: exit %d: %s", c.ann, r.code, r.stderr)
		}
		key := strings.Join(c.call, " ")
		if got := testenv.RunProbe(t, cg, c.call...)[key]; got != c.want {
			t.Errorf("%v: %s = %q, want %q", c.ann, key, got, c.want)
		}
		if r := runHook(t, root, "poststop", map[string]any{"id": id, "status": "stopped"}); r.code != 0 {
			t.Fatalf("%v: poststop: exit %d: %s", c.ann, r.code, r.stderr)
		}
	}
	e2e.AssertNoAttachments(t, root)
}
