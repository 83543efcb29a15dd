package e2e

// End-to-end tests with Debian's Podman 4.3, rootful, with runc (see
// ENVIRONMENT.md: crun refuses hybrid cgroups here) and the shipped hooks.d
// files, driven by `podman run --annotation`.

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
	"time"

	"github.com/cgpol/cgpol/test/testenv"
)

type podmanEnv struct {
	*runcEnv        // the hook's bpffs, config and binary
	hooksDir string // the shipped hooks.d files, pointed at the built hook
	image    string
}

func newPodman(t testing.TB) *podmanEnv {
	t.Helper()
	r := newRunc(t)
	if _, err := exec.LookPath("podman"); err != nil {
		testenv.Unavailable(t, "no podman: install Debian's podman (make deps)")
	}
	p := &podmanEnv{runcEnv: r, hooksDir: t.TempDir()}
	files, err := filepath.Glob(filepath.Join(testenv.ModuleRoot(t), "configs", "hooks.d", "*.json"))
	if err != nil || len(files) == 0 {
		t.Fatalf("no hooks.d files in configs/hooks.d: %v", err)
	}
	for _, file := range files {
		var h map[string]any
		readJSONFile(t, file, &h)
		hook := h["hook"].(map[string]any)
		hook["path"] = r.hook
		hook["args"] = r.hookArgs(hook["args"].([]any))
		data, _ := json.Marshal(h)
		if err := os.WriteFile(filepath.Join(p.hooksDir, filepath.Base(file)), data, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	p.image = "localhost/" + containerID(t, "image") + ":latest"
	if out, err := exec.Command("podman", "import", "--quiet", testenv.RootfsTar(t), p.image).CombinedOutput(); err != nil {
		testenv.Unavailable(t, "podman import: %v: %s", err, out)
	}
	t.Cleanup(func() { exec.Command("podman", "rmi", "--force", p.image).Run() })
	return p
}

// run runs a container to its end with podman run --rm and returns what
// it printed and podman's exit status. Each annotation is the value of one
// --annotation flag, which Podman 4.3 splits at commas: lists are written
// with spaces ("cgpol.io/allow-ports=80 443"), which cgpol's grammar takes
// as well.
func (p *podmanEnv) run(t testing.TB, annotations []string, args ...string) (stdout, stderr string, code int) {
	t.Helper()
	name := containerID(t, "podman")
	cmdArgs := []string{"--runtime", "runc", "--cgroup-manager", "cgroupfs", "--hooks-dir", p.hooksDir,
		"run", "--rm", "--name", name, "--network", "host",
		"--ulimit", "nofile=1024:1024", "--ulimit", "nproc=1024:1024"}
	for _, a := range annotations {
		cmdArgs = append(cmdArgs, "--annotation", a)
	}
	cmdArgs = append(append(cmdArgs, p.image), args...)
	t.Cleanup(func() { exec.Command("podman", "rm", "--force", "--ignore", name).Run() })
	cmd := exec.Command("podman", cmdArgs...)
	var out, errOut bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errOut
	err := cmd.Run()
	var exit *exec.ExitError
	if err != nil && !errors.As(err, &exit) {
		t.Fatalf("podman run: %v", err)
	}
	return out.String(), errOut.String(), cmd.ProcessState.ExitCode()
}

// eventuallyClean waits for podman's cleanup (which runs the poststop hook)
// and checks that nothing is left attached.
func (p *podmanEnv) eventuallyClean(t testing.TB) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		entries, _ := os.ReadDir(filepath.Join(p.bpffs, "v1", "cgroup"))
		if len(entries) == 0 {
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	AssertNoAttachments(t, p.bpffs)
}

func TestPodmanAllowedAndDenied(t *testing.T) {
	p := newPodman(t)
	ports := testenv.FreePorts(t, 3)
	allowed, denied, allowedUDP := ports[0], ports[1], ports[2]
	for _, ip := range []string{"127.0.0.1", "::1"} {
		testenv.ListenTCPPort(t, ip, allowed)
		testenv.ListenTCPPort(t, ip, denied)
	}
	calls := []string{
		fmt.Sprintf("connect tcp 127.0.0.1:%d", denied),
		fmt.Sprintf("connect tcp 127.0.0.1:%d", allowed),
		fmt.Sprintf("connect tcp [::1]:%d", allowed),
		fmt.Sprintf("connect tcp [::1]:%d", denied),
		fmt.Sprintf("sendto udp 127.0.0.1:%d", allowedUDP),
		fmt.Sprintf("sendto udp 127.0.0.1:%d", allowed),
	}
	want := []string{"EPERM", "ok", "ok", "EPERM", "ok", "EPERM"}
	// Two items, separated by a space: Podman splits at commas.
	annotation := fmt.Sprintf("cgpol.io/allow-ports=tcp:%d udp:%d", allowed, allowedUDP)
	stdout, stderr, code := p.run(t, []string{annotation},
		append([]string{"/probe"}, strings.Fields(strings.Join(calls, " "))...)...)
	if code != 0 {
		t.Fatalf("podman run: exit %d: %s", code, stderr)
	}
	got := testenv.ParseProbe(stdout)
	for i, call := range calls {
		if got[call] != want[i] {
			t.Errorf("%s: %q, want %q", call, got[call], want[i])
		}
	}
	p.eventuallyClean(t)
}

func TestPodmanUnannotatedContainerIsUnaffected(t *testing.T) {
	p := newPodman(t)
	port := testenv.ListenTCP(t, "127.0.0.1")
	call := fmt.Sprintf("connect tcp 127.0.0.1:%d", port)
	stdout, stderr, code := p.run(t, nil, append([]string{"/probe"}, strings.Fields(call)...)...)
	if code != 0 {
		t.Fatalf("podman run: exit %d: %s", code, stderr)
	}
	if got := testenv.ParseProbe(stdout)[call]; got != "ok" {
		t.Errorf("%s: %q, want ok", call, got)
	}
	if _, err := os.Stat(filepath.Join(p.bpffs, "v1")); err == nil {
		t.Error("an unannotated container made the hook install cgpol")
	}
}

func TestPodmanInvalidAnnotationStopsTheContainer(t *testing.T) {
	p := newPodman(t)
	stdout, stderr, code := p.run(t, []string{"cgpol.io/allow-ports=https"}, "/probe", "connect", "tcp", "127.0.0.1:443")
	if code != 126 {
		t.Errorf("podman run: exit %d, want 126 (the runtime failed)", code)
	}
	if stdout != "" {
		t.Errorf("the container ran: %q", stdout)
	}
	want := `invalid annotation cgpol.io/allow-ports="https": item 1 "https": "https" is not a port number; want 1-65535`
	if !strings.Contains(stderr, "error running hook") || !strings.Contains(stderr, "cgpol-hook createRuntime: container ") || !strings.Contains(stderr, want) {
		t.Errorf("podman's stderr does not carry the hook's message %q:\n%s", want, stderr)
	}
	t.Logf("what the user sees:\n%s", stderr)
	p.eventuallyClean(t)
}
