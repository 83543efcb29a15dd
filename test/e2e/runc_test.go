package e2e

// End-to-end tests with Debian's runc: the hooks go into each bundle's
// config.json, from configs/runc-hooks.json, as a user would put them.

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/cgpol/cgpol/pkg/enforce"
	"github.com/cgpol/cgpol/test/testenv"
)

// runcEnv runs containers with a private runc state directory, bpffs and
// node config, so that tests never see each other's containers or pins.
type runcEnv struct {
	stateDir string // runc --root
	bpffs    string // the hook's --bpffs
	config   string // the hook's --config
	hook     string // the built cgpol-hook
}

func newRunc(t testing.TB) *runcEnv {
	t.Helper()
	testenv.Privileged(t)
	if _, err := exec.LookPath("runc"); err != nil {
		testenv.Unavailable(t, "no runc: install Debian's runc (make deps)")
	}
	return &runcEnv{
		stateDir: t.TempDir(),
		bpffs:    testenv.BPFFS(t),
		config:   filepath.Join(t.TempDir(), "config.yaml"), // missing: the defaults
		hook:     testenv.Build(t, "./hook"),
	}
}

// containerID returns a unique container id for t.
func containerID(t testing.TB, name string) string {
	t.Helper()
	var b [4]byte
	f, _ := os.Open("/dev/urandom")
	f.Read(b[:])
	f.Close()
	return fmt.Sprintf("cgpol-e2e-%s-%x", name, b)
}

// bundle writes a bundle that runs args in the busybox rootfs, on the host's
// network (loopback included), with the annotations and, if withHooks, the
// hooks of configs/runc-hooks.json pointed at the built hook.
func (r *runcEnv) bundle(t testing.TB, annotations map[string]string, withHooks bool, args ...string) string {
	t.Helper()
	dir := t.TempDir()
	if out, err := exec.Command("runc", "spec", "--bundle", dir).CombinedOutput(); err != nil {
		t.Fatalf("runc spec: %v: %s", err, out)
	}
	var spec map[string]any
	readJSONFile(t, filepath.Join(dir, "config.json"), &spec)
	process := spec["process"].(map[string]any)
	process["terminal"] = false
	process["args"] = args
	spec["root"] = map[string]any{"path": testenv.Rootfs(t), "readonly": true}
	linux := spec["linux"].(map[string]any)
	var namespaces []any
	for _, ns := range linux["namespaces"].([]any) {
		if ns.(map[string]any)["type"] != "network" {
			namespaces = append(namespaces, ns)
		}
	}
	linux["namespaces"] = namespaces
	if len(annotations) > 0 {
		spec["annotations"] = annotations
	}
	if withHooks {
		spec["hooks"] = r.hooks(t)
	}
	data, err := json.MarshalIndent(spec, "", "  ")
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "config.json"), data, 0o644); err != nil {
		t.Fatal(err)
	}
	return dir
}

// hooks returns the shipped runc hooks snippet, pointed at the built hook,
// the test's bpffs and config.
func (r *runcEnv) hooks(t testing.TB) map[string]any {
	t.Helper()
	var snippet struct {
		Hooks map[string][]map[string]any `json:"hooks"`
	}
	readJSONFile(t, filepath.Join(testenv.ModuleRoot(t), "configs", "runc-hooks.json"), &snippet)
	out := map[string]any{}
	for stage, hooks := range snippet.Hooks {
		for _, h := range hooks {
			h["path"] = r.hook
			h["args"] = r.hookArgs(h["args"].([]any))
		}
		out[stage] = hooks
	}
	return out
}

// hookArgs inserts the test's flags after the program name.
func (r *runcEnv) hookArgs(args []any) []any {
	return append([]any{args[0], "--bpffs", r.bpffs, "--config", r.config}, args[1:]...)
}

func readJSONFile(t testing.TB, file string, v any) {
	t.Helper()
	data, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(data, v); err != nil {
		t.Fatalf("%s: %v", file, err)
	}
}

func (r *runcEnv) command(args ...string) *exec.Cmd {
	return exec.Command("runc", append([]string{"--root", r.stateDir}, args...)...)
}

// run runs a container to its end, as `runc run` does, and returns what it
// printed. runc deletes the container, which runs the poststop hooks.
func (r *runcEnv) run(t testing.TB, id, bundle string) (stdout, stderr string, err error) {
	t.Helper()
	t.Cleanup(func() { r.command("delete", "--force", id).Run() })
	cmd := r.command("run", "--bundle", bundle, id)
	var out, errOut bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errOut
	err = cmd.Run()
	return out.String(), errOut.String(), err
}

// create creates a container (running the createRuntime hooks) whose
// output goes to a file, and returns the file's path.
func (r *runcEnv) create(t testing.TB, id, bundle string) string {
	t.Helper()
	t.Cleanup(func() { r.command("delete", "--force", id).Run() })
	// Files, not pipes: the container keeps them open after runc returns.
	dir := t.TempDir()
	out, errOut := filepath.Join(dir, "stdout"), filepath.Join(dir, "stderr")
	stdout, err1 := os.Create(out)
	stderr, err2 := os.Create(errOut)
	if err1 != nil || err2 != nil {
		t.Fatal(err1, err2)
	}
	defer stdout.Close()
	defer stderr.Close()
	cmd := r.command("create", "--bundle", bundle, id)
	cmd.Stdout, cmd.Stderr = stdout, stderr
	if err := cmd.Run(); err != nil {
		msg, _ := os.ReadFile(errOut)
		t.Fatalf("runc create %s: %v: %s", id, err, msg)
	}
	return out
}

// startAndWait starts a created container, waits for it to stop and deletes it.
func (r *runcEnv) startAndWait(t testing.TB, id string) {
	t.Helper()
	if out, err := r.command("start", id).CombinedOutput(); err != nil {
		t.Fatalf("runc start %s: %v: %s", id, err, out)
	}
	deadline := time.Now().Add(30 * time.Second)
	for {
		out, err := r.command("state", id).Output()
		var st struct{ Status string }
		if err == nil && json.Unmarshal(out, &st) == nil && st.Status == "stopped" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("container %s did not stop: %s %v", id, out, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
	if out, err := r.command("delete", id).CombinedOutput(); err != nil {
		t.Fatalf("runc delete %s: %v: %s", id, err, out)
	}
}

// attachedPolicies returns the policy that the kernel enforces for each
// container id that has one.
func attachedPolicies(t testing.TB, root string) map[string]string {
	t.Helper()
	objs, err := enforce.Open(root)
	if err != nil {
		t.Fatal(err)
	}
	defer objs.Close()
	list, err := objs.List()
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]string{}
	for _, s := range list {
		if s.Problem != "" {
			t.Errorf("container %s: %s", s.Container, s.Problem)
		}
		out[s.Container] = s.Policy
	}
	return out
}

func TestRuncAllowedAndDeniedPorts(t *testing.T) {
	r := newRunc(t)
	allowed, denied := testenv.FreePorts(t, 2)[0], testenv.FreePorts(t, 1)[0]
	for _, ip := range []string{"127.0.0.1", "::1"} {
		testenv.ListenTCPPort(t, ip, allowed)
		testenv.ListenTCPPort(t, ip, denied)
	}
	calls := []string{
		fmt.Sprintf("connect tcp 127.0.0.1:%d", allowed),
		fmt.Sprintf("connect tcp [::1]:%d", allowed),
		fmt.Sprintf("connect tcp 127.0.0.1:%d", denied),
		fmt.Sprintf("connect tcp [::1]:%d", denied),
		fmt.Sprintf("sendto udp 127.0.0.1:%d", denied),
	}
	want := []string{"ok", "ok", "EPERM", "EPERM", "EPERM"}
	id := containerID(t, "ports")
	bundle := r.bundle(t, map[string]string{"cgpol.io/allow-ports": fmt.Sprintf("tcp:%d", allowed)}, true,
		append([]string{"/probe"}, strings.Fields(strings.Join(calls, " "))...)...)
	stdout, stderr, err := r.run(t, id, bundle)
	if err != nil {
		t.Fatalf("runc run: %v: %s", err, stderr)
	}
	got := testenv.ParseProbe(stdout)
	for i, call := range calls {
		if got[call] != want[i] {
			t.Errorf("%s: %q, want %q", call, got[call], want[i])
		}
	}
	AssertNoAttachments(t, r.bpffs)
}

// TestRuncDeniedOnTheFirstCall runs containers whose entrypoint's first
// network call goes to a denied port that has a listener: the policy must
// already be in place, every time.
func TestRuncDeniedOnTheFirstCall(t *testing.T) {
	r := newRunc(t)
	ports := testenv.FreePorts(t, 2)
	allowed, denied := ports[0], ports[1]
	testenv.ListenTCPPort(t, "127.0.0.1", denied)
	first := fmt.Sprintf("connect tcp 127.0.0.1:%d", denied)
	bundle := r.bundle(t, map[string]string{"cgpol.io/allow-ports": fmt.Sprint(allowed)}, true,
		append([]string{"/probe"}, strings.Fields(first)...)...)
	const runs = 20
	denials := 0
	for i := range runs {
		stdout, stderr, err := r.run(t, containerID(t, fmt.Sprintf("first-%d", i)), bundle)
		if err != nil {
			t.Fatalf("run %d: runc run: %v: %s", i, err, stderr)
		}
		if got := testenv.ParseProbe(stdout)[first]; got == "EPERM" {
			denials++
		} else {
			t.Errorf("run %d: %s: %q, want EPERM", i, first, got)
		}
	}
	if denials != runs {
		t.Errorf("denied in %d of %d runs", denials, runs)
	}
	// Without the policy, the same call connects: the denials above are the hook's.
	plain := r.bundle(t, nil, true, append([]string{"/probe"}, strings.Fields(first)...)...)
	stdout, stderr, err := r.run(t, containerID(t, "first-plain"), plain)
	if err != nil || testenv.ParseProbe(stdout)[first] != "ok" {
		t.Errorf("unannotated: %q %v %s", stdout, err, stderr)
	}
	AssertNoAttachments(t, r.bpffs)
}

func TestRuncTwoContainersWithDifferentPolicies(t *testing.T) {
	r := newRunc(t)
	ports := testenv.FreePorts(t, 2)
	for _, p := range ports {
		testenv.ListenTCPPort(t, "127.0.0.1", p)
	}
	calls := fmt.Sprintf("connect tcp 127.0.0.1:%d connect tcp 127.0.0.1:%d", ports[0], ports[1])
	a, b := containerID(t, "a"), containerID(t, "b")
	outA := r.create(t, a, r.bundle(t, map[string]string{"cgpol.io/allow-ports": fmt.Sprint(ports[0])}, true, append([]string{"/probe"}, strings.Fields(calls)...)...))
	outB := r.create(t, b, r.bundle(t, map[string]string{"cgpol.io/allow-ports": fmt.Sprint(ports[1])}, true, append([]string{"/probe"}, strings.Fields(calls)...)...))

	// Both are attached at once, each with its own policy.
	got := attachedPolicies(t, r.bpffs)
	wantA, wantB := fmt.Sprintf(`cgpol.io/allow-ports="%d"`, ports[0]), fmt.Sprintf(`cgpol.io/allow-ports="%d"`, ports[1])
	if len(got) != 2 || got[a] != wantA || got[b] != wantB {
		t.Errorf("attached: %v; want %s: %s and %s: %s", got, a, wantA, b, wantB)
	}
	r.startAndWait(t, a)
	r.startAndWait(t, b)
	for _, c := range []struct {
		file   string
		result [2]string
	}{{outA, [2]string{"ok", "EPERM"}}, {outB, [2]string{"EPERM", "ok"}}} {
		data, _ := os.ReadFile(c.file)
		res := testenv.ParseProbe(string(data))
		for i, p := range ports {
			if call := fmt.Sprintf("connect tcp 127.0.0.1:%d", p); res[call] != c.result[i] {
				t.Errorf("%s: %s: %q, want %q", c.file, call, res[call], c.result[i])
			}
		}
	}
	AssertNoAttachments(t, r.bpffs)
}

func TestRuncUnannotatedContainerIsUnaffected(t *testing.T) {
	r := newRunc(t)
	port := testenv.ListenTCP(t, "127.0.0.1")
	call := fmt.Sprintf("connect tcp 127.0.0.1:%d", port)
	stdout, stderr, err := r.run(t, containerID(t, "plain"), r.bundle(t, map[string]string{"org.example/other": "x"}, true, append([]string{"/probe"}, strings.Fields(call)...)...))
	if err != nil {
		t.Fatalf("runc run: %v: %s", err, stderr)
	}
	if got := testenv.ParseProbe(stdout)[call]; got != "ok" {
		t.Errorf("%s: %q, want ok", call, got)
	}
	if _, err := os.Stat(filepath.Join(r.bpffs, "v1")); err == nil {
		t.Error("an unannotated container made the hook install cgpol")
	}
}

func TestRuncInvalidAnnotationStopsTheContainer(t *testing.T) {
	r := newRunc(t)
	id := containerID(t, "invalid")
	stdout, stderr, err := r.run(t, id, r.bundle(t, map[string]string{"cgpol.io/allow-ports": "80,99999"}, true, "/probe", "connect", "tcp", "127.0.0.1:80"))
	if err == nil {
		t.Fatal("runc run succeeded")
	}
	if stdout != "" {
		t.Errorf("the container ran: %q", stdout)
	}
	want := fmt.Sprintf(`cgpol-hook createRuntime: container %s: invalid annotation cgpol.io/allow-ports=\"80,99999\": item 2 \"99999\": port 99999 is out of range; want 1-65535`, id)
	if !strings.Contains(stderr, "error running hook") || !strings.Contains(stderr, want) {
		t.Errorf("runc's stderr does not carry the hook's message %q:\n%s", want, stderr)
	}
	t.Logf("what the user sees:\n%s", stderr)
	if out, err := r.command("state", id).CombinedOutput(); err == nil {
		t.Errorf("the container exists: %s", out)
	}
	AssertNoAttachments(t, r.bpffs)
}
