package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/cgpol/cgpol/pkg/enforce"
	"github.com/cgpol/cgpol/test/testenv"
)

// These tests run the real cgpol binary against real cgroups and BPF.

type cli struct {
	t    *testing.T
	bin  string
	root string
}

func newCLI(t *testing.T) *cli {
	t.Helper()
	testenv.Privileged(t)
	return &cli{t: t, bin: testenv.Build(t, "./cmd/cgpol"), root: testenv.BPFFS(t)}
}

func (c *cli) command(args ...string) *exec.Cmd {
	return exec.Command(c.bin, append([]string{"--bpffs", c.root}, args...)...)
}

// run runs cgpol and returns stdout, stderr and the exit code.
func (c *cli) run(args ...string) (string, string, int) {
	c.t.Helper()
	cmd := c.command(args...)
	return output(c.t, cmd)
}

func output(t *testing.T, cmd *exec.Cmd) (string, string, int) {
	t.Helper()
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	code := 0
	if exit, ok := err.(*exec.ExitError); ok {
		code = exit.ExitCode()
	} else if err != nil {
		t.Fatal(err)
	}
	return stdout.String(), stderr.String(), code
}

// must runs cgpol and fails the test if it fails.
func (c *cli) must(args ...string) string {
	c.t.Helper()
	out, errOut, code := c.run(args...)
	if code != 0 {
		c.t.Fatalf("cgpol %v: exit %d: %s", args, code, errOut)
	}
	return out
}

func addr(ip string, port int) string {
	return netip.AddrPortFrom(netip.MustParseAddr(ip), uint16(port)).String()
}

func TestEnforcementOutlivesTheCLI(t *testing.T) {
	c := newCLI(t)
	cg := testenv.NewCgroup(t)
	port := testenv.ListenTCP(t, "127.0.0.1")
	c.must("install")
	out := c.must("attach", "--cgroup", cg.Path, "--allow-ports", fmt.Sprintf("tcp:%d", port), "--name", "web")
	if !strings.Contains(out, cg.Dir()) {
		t.Errorf("attach output does not name the cgroup: %q", out)
	}
	// cgpol has exited; the kernel enforces on its own.
	got := testenv.RunProbe(t, cg, "connect", "tcp", addr("127.0.0.1", port), "connect", "tcp", addr("::1", port+1))
	if got["connect tcp "+addr("127.0.0.1", port)] != "ok" || got["connect tcp "+addr("::1", port+1)] != "EPERM" {
		t.Errorf("after cgpol exited: %v", got)
	}

	status := c.must("status")
	for _, want := range []string{cg.Path, "web", fmt.Sprintf(`cgpol.io/allow-ports="tcp:%d"`, port), "CONNECT", "1/1", "SOCKET"} {
		if !strings.Contains(status, want) {
			t.Errorf("status lacks %q:\n%s", want, status)
		}
	}
	var list []enforce.Status
	if err := json.Unmarshal([]byte(c.must("status", "-o", "json")), &list); err != nil || len(list) != 1 {
		t.Fatalf("status -o json: %v, %d entries", err, len(list))
	}
	if list[0].CgroupID != cg.ID || list[0].Hooks[0].Allowed != 1 || list[0].Hooks[1].Denied != 1 {
		t.Errorf("status -o json: %+v", list[0])
	}
}

func TestAttachByPID(t *testing.T) {
	c := newCLI(t)
	cg := testenv.NewCgroup(t)
	sleeper := testenv.CommandIn(t, cg, "/bin/sleep", "30")
	if err := sleeper.Start(); err != nil {
		t.Fatal(err)
	}
	defer sleeper.Process.Kill()
	c.must("attach", "--pid", fmt.Sprint(sleeper.Process.Pid), "--allow-ports", "")
	got := testenv.RunProbe(t, cg, "connect", "udp", addr("127.0.0.1", 9))
	if got["connect udp "+addr("127.0.0.1", 9)] != "EPERM" {
		t.Errorf("attach --pid: %v", got)
	}
}

func TestDetachAndGC(t *testing.T) {
	c := newCLI(t)
	cg := testenv.NewCgroup(t)
	gone := testenv.NewCgroup(t)
	call := "connect udp " + addr("127.0.0.1", 9)
	c.must("attach", "--cgroup", cg.Dir(), "--allow-ports", "")
	c.must("attach", "--cgroup", gone.Dir(), "--allow-ports", "")
	if got := testenv.RunProbe(t, cg, "connect", "udp", addr("127.0.0.1", 9)); got[call] != "EPERM" {
		t.Fatalf("attached: %v", got)
	}
	c.must("detach", "--cgroup", cg.Dir())
	if got := testenv.RunProbe(t, cg, "connect", "udp", addr("127.0.0.1", 9)); got[call] != "ok" {
		t.Errorf("detached: %v", got)
	}
	if _, errOut, code := c.run("detach", "--cgroup", cg.Dir()); code != 1 || !strings.Contains(errOut, "no cgpol policy is attached") {
		t.Errorf("second detach: exit %d: %s", code, errOut)
	}

	testenv.RemoveCgroup(t, gone.Dir())
	out := c.must("gc")
	if !strings.Contains(out, "detached 1 cgroups") {
		t.Errorf("gc: %s", out)
	}
	if entries, _ := os.ReadDir(filepath.Join(c.root, "v1", "cgroup")); len(entries) != 0 {
		t.Errorf("pins left after gc: %v", entries)
	}
	if out := c.must("status"); !strings.Contains(out, "0 attached") {
		t.Errorf("status after gc:\n%s", out)
	}
}

func TestRefusals(t *testing.T) {
	c := newCLI(t)
	cg := testenv.NewCgroup(t)
	tests := []struct {
		name string
		cmd  *exec.Cmd
		code int
		want string
	}{
		{"cgroup2 root", c.command("attach", "--cgroup", "/", "--allow-ports", "80"), 1,
			"it is the cgroup2 root, and a policy there would apply to the whole host"},
		{"invalid policy", c.command("attach", "--cgroup", cg.Path, "--allow-ports", "80,99999"), 1,
			`cgpol attach: invalid annotation cgpol.io/allow-ports="80,99999": item 2 "99999": port 99999 is out of range; want 1-65535`},
		{"unknown annotation", c.command("attach", "--cgroup", cg.Path, "--annotation", "cgpol.io/allow-port=80"), 1,
			`cgpol attach: invalid annotation cgpol.io/allow-port="80": unknown cgpol annotation`},
		{"no policy", c.command("attach", "--cgroup", cg.Path), 2, "cgpol attach: no policy given"},
		{"no cgroup", c.command("attach", "--allow-ports", "80"), 2, "give exactly one of --cgroup and --pid"},
		{"missing cgroup", c.command("attach", "--cgroup", "/no/such/cgroup", "--allow-ports", "80"), 1, "no such file or directory"},
		{"not installed", c.command("status"), 1, "cgpol status: cgpol is not installed under " + c.root + " (run: cgpol install)"},
	}
	// The caller's own cgroup: cgpol runs inside cg and is asked to attach to it.
	own := testenv.CommandIn(t, cg, c.bin, "--bpffs", c.root, "attach", "--cgroup", cg.Path, "--allow-ports", "80")
	tests = append(tests, struct {
		name string
		cmd  *exec.Cmd
		code int
		want string
	}{"own cgroup", own, 1, "it holds this process"})
	// Not root.
	nobody := c.command("install")
	nobody.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: 65534, Gid: 65534}}
	tests = append(tests, struct {
		name string
		cmd  *exec.Cmd
		code int
		want string
	}{"not root", nobody, 1, "cgpol install: must run as root"})

	for _, tt := range tests {
		_, errOut, code := output(t, tt.cmd)
		if code != tt.code || !strings.HasPrefix(strings.TrimSpace(errOut), "cgpol") || !strings.Contains(errOut, tt.want) {
			t.Errorf("%s: exit %d, stderr %q; want exit %d and %q", tt.name, code, errOut, tt.code, tt.want)
		}
		if tt.code == 1 && strings.Count(strings.TrimSpace(errOut), "\n") != 0 {
			t.Errorf("%s: error spans lines: %q", tt.name, errOut)
		}
	}
	if entries, _ := os.ReadDir(filepath.Join(c.root, "v1", "cgroup")); len(entries) != 0 {
		t.Errorf("a refused attach left pins: %v", entries)
	}
}

func TestConcurrentInstallProcesses(t *testing.T) {
	c := newCLI(t)
	var wg sync.WaitGroup
	errs := make([]string, 8)
	for i := range errs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			cmd := c.command("install")
			if out, err := cmd.CombinedOutput(); err != nil {
				errs[i] = fmt.Sprintf("%v: %s", err, out)
			}
		}()
	}
	wg.Wait()
	for i, e := range errs {
		if e != "" {
			t.Errorf("install %d: %s", i, e)
		}
	}
	entries, _ := os.ReadDir(c.root)
	if len(entries) != 1 || entries[0].Name() != "v1" {
		t.Errorf("root holds %v after 8 concurrent installs, want v1 alone", entries)
	}
	out, err := exec.Command("bpftool", "prog", "show", "name", "cgpol_connect4").Output()
	if err == nil && strings.Count(string(out), "cgpol_connect4") > 1 {
		// Other tests' installs may be loaded too; only this root's pin counts.
		t.Logf("several cgpol_connect4 programs are loaded: %s", out)
	}
}

// TestKilledAttachNeverOpensTheCgroup kills cgpol attach with SIGKILL at
// random instants while it replaces a cgroup's policy. After every kill the
// cgroup must enforce the old policy, the new one, or deny everything: never
// allow a port that neither allows, and never both policies' ports at once.
func TestKilledAttachNeverOpensTheCgroup(t *testing.T) {
	c := newCLI(t)
	cg := testenv.NewCgroup(t)
	c.must("attach", "--cgroup", cg.Dir(), "--allow-ports", "udp:1000")
	seen := map[string]int{}
	for i := range 60 {
		to := 2000
		if i%2 == 1 {
			to = 1000
		}
		cmd := c.command("attach", "--cgroup", cg.Dir(), "--allow-ports", fmt.Sprintf("udp:%d", to))
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		time.Sleep(time.Duration(rand.IntN(8000)) * time.Microsecond)
		cmd.Process.Kill()
		cmd.Wait()
		got := testenv.RunProbe(t, cg,
			"connect", "udp", addr("127.0.0.1", 1000), "connect", "udp", addr("127.0.0.1", 2000),
			"connect", "udp", addr("::1", 3000), "sendto", "udp", addr("::ffff:127.0.0.1", 3000))
		a, b := got["connect udp "+addr("127.0.0.1", 1000)], got["connect udp "+addr("127.0.0.1", 2000)]
		if got["connect udp "+addr("::1", 3000)] != "EPERM" || got["sendto udp "+addr("::ffff:127.0.0.1", 3000)] != "EPERM" {
			t.Fatalf("kill %d: a port that no policy allows is open: %v", i, got)
		}
		if a == "ok" && b == "ok" {
			t.Fatalf("kill %d: both policies' ports are open: %v", i, got)
		}
		seen[a+"/"+b]++
		// Put the cgroup back on a known policy for the next round.
		c.must("attach", "--cgroup", cg.Dir(), "--allow-ports", fmt.Sprintf("udp:%d", to))
	}
	t.Logf("outcomes (port 1000/port 2000): %v", seen)
	out := c.must("gc")
	t.Log(out)
	var list []enforce.Status
	json.Unmarshal([]byte(c.must("status", "-o", "json")), &list)
	if len(list) != 1 || list[0].Problem != "" {
		t.Errorf("status after gc: %+v", list)
	}
	objs, err := enforce.Open(c.root)
	if err != nil {
		t.Fatal(err)
	}
	defer objs.Close()
	var slot uint32
	var owner uint64
	n := 0
	for iter := objs.Slots.Iterate(); iter.Next(&slot, &owner); {
		n++
	}
	if n != 1 {
		t.Errorf("%d slots claimed after gc, want 1", n)
	}
}

// Every policy of issue 5, through the CLI, one behaviour each; then the
// events and metrics verbs.
func TestPolicyDepthThroughTheCLI(t *testing.T) {
	c := newCLI(t)
	c.must("install")
	target := testenv.ServeTCP(t, "127.0.0.1:0", "target")
	for _, tt := range []struct {
		ann  []string
		call []string
		want string
	}{
		{[]string{"cgpol.io/allow-ports=80,443"}, []string{"connect", "tcp", "127.0.0.1:8080"}, "EPERM"},
		{[]string{"cgpol.io/allow-bind=8000-9000"}, []string{"bind", "tcp", "127.0.0.1:7999"}, "EPERM"},
		{[]string{"cgpol.io/allow-bind=8000-9000"}, []string{"bind", "udp", "127.0.0.1:8999"}, "ok"},
		{[]string{fmt.Sprintf("cgpol.io/redirect=tcp:1=%s", target)}, []string{"dial", "tcp", "127.0.0.1:1"}, "ok peer=127.0.0.1:1 reply=target"},
		{[]string{"cgpol.io/allow-cidrs=0.0.0.0/0 except 127.0.0.2"}, []string{"connect", "udp", "127.0.0.2:53"}, "EPERM"},
		{[]string{"cgpol.io/allow-cidrs=0.0.0.0/0 except 127.0.0.2", "cgpol.io/mode=audit"}, []string{"connect", "udp", "127.0.0.2:53"}, "ok"},
		{[]string{"cgpol.io/allow-ports=80", "cgpol.io/raw-sockets=allow"}, []string{"socket", "raw", "127.0.0.1:0"}, "ok"},
		{[]string{"cgpol.io/allow-ports=80"}, []string{"socket", "raw", "127.0.0.1:0"}, "EPERM"},
	} {
		cg := testenv.NewCgroup(t)
		args := []string{"attach", "--cgroup", cg.Path}
		for _, a := range tt.ann {
			args = append(args, "--annotation", a)
		}
		c.must(args...)
		key := strings.Join(tt.call, " ")
		if got := testenv.RunProbe(t, cg, tt.call...)[key]; got != tt.want {
			t.Errorf("%v: %s = %q, want %q", tt.ann, key, got, tt.want)
		}
	}

	// cgpol events sees a denial as it happens.
	cg := testenv.NewCgroup(t)
	c.must("attach", "--cgroup", cg.Path, "--allow-ports", "443", "--name", "web")
	events := c.command("events", "--count", "1")
	var out bytes.Buffer
	events.Stdout = &out
	if err := events.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan error)
	go func() { done <- events.Wait() }()
	var err error
	for deadline := time.Now().Add(10 * time.Second); ; {
		testenv.RunProbe(t, cg, "connect", "tcp", "127.0.0.1:9090")
		select {
		case err = <-done:
		case <-time.After(200 * time.Millisecond):
			if time.Now().Before(deadline) {
				continue
			}
			events.Process.Kill()
			err = <-done
		}
		break
	}
	line := out.String()
	if err != nil || !strings.Contains(line, "[DENY connect4]") || !strings.Contains(line, "daddr=127.0.0.1 dport=9090 proto=tcp container=web reason=port") {
		t.Errorf("cgpol events: %v: %q", err, line)
	}
	metrics := c.must("metrics")
	if !strings.Contains(metrics, `hook="connect4",verdict="denied"}`) || !strings.Contains(metrics, "cgpol_attached_cgroups 9") {
		t.Errorf("cgpol metrics:\n%s", metrics)
	}
}
