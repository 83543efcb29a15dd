// Package testenv gives privileged tests what they need for real: cgroups
// under the detected cgroup2 mount, a private bpffs, a static probe binary
// and loopback listeners.
//
// Where a test cannot run (not root, no cgroup2, no BPF), it is skipped with
// the reason, except under CI=true, where that is a failure: nothing may
// pass by skipping in CI.
package testenv

import (
	"bytes"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/features"
	"golang.org/x/sys/unix"

	"github.com/cgpol/cgpol/pkg/cgroup"
)

// InCI reports whether the tests run in CI, where skips are failures.
func InCI() bool {
	return os.Getenv("CI") == "true"
}

// Unavailable skips t with the reason, or fails it under CI=true.
func Unavailable(t testing.TB, format string, args ...any) {
	t.Helper()
	reason := fmt.Sprintf(format, args...)
	if InCI() {
		t.Fatalf("privileged test cannot run, and CI=true forbids skipping: %s", reason)
	}
	t.Skipf("skipping privileged test: %s", reason)
}

// Privileged checks that t can use BPF and cgroup2 as root.
func Privileged(t testing.TB) {
	t.Helper()
	if os.Geteuid() != 0 {
		Unavailable(t, "needs root (BPF programs, cgroups and bpffs mounts)")
	}
	if _, err := cgroup.Mount(); err != nil {
		Unavailable(t, "%v", err)
	}
	if err := features.HaveProgramType(ebpf.CGroupSockAddr); err != nil {
		Unavailable(t, "kernel cannot load cgroup sock_addr programs: %v", err)
	}
}

// CgroupMount returns the cgroup2 mount point.
func CgroupMount(t testing.TB) string {
	t.Helper()
	mount, err := cgroup.Mount()
	if err != nil {
		Unavailable(t, "%v", err)
	}
	return mount
}

// testParent is the cgroup that holds every test cgroup.
const testParent = "cgpol-test"

// NewCgroup creates a fresh cgroup for t under the cgroup2 mount and removes
// it at the end of the test, killing whatever still runs in it.
func NewCgroup(t testing.TB) cgroup.Cgroup {
	t.Helper()
	mount := CgroupMount(t)
	parent := filepath.Join(mount, testParent)
	if err := os.MkdirAll(parent, 0o755); err != nil {
		t.Fatal(err)
	}
	return newCgroupIn(t, mount, parent, sanitize(t.Name())+"-"+randomHex(4))
}

// NewChildCgroup creates a cgroup inside parent, removed at the end of t.
func NewChildCgroup(t testing.TB, parent cgroup.Cgroup, name string) cgroup.Cgroup {
	t.Helper()
	return newCgroupIn(t, parent.Mount, parent.Dir(), name)
}

func newCgroupIn(t testing.TB, mount, parentDir, name string) cgroup.Cgroup {
	t.Helper()
	dir := filepath.Join(parentDir, name)
	if err := os.Mkdir(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { RemoveCgroup(t, dir) })
	cg, err := cgroup.Resolve(mount, dir)
	if err != nil {
		t.Fatal(err)
	}
	return cg
}

// RemoveCgroup kills the processes in a cgroup tree and removes it.
func RemoveCgroup(t testing.TB, dir string) {
	t.Helper()
	if _, err := os.Stat(dir); errors.Is(err, os.ErrNotExist) {
		return
	}
	if err := os.WriteFile(filepath.Join(dir, "cgroup.kill"), []byte("1"), 0); err != nil && !errors.Is(err, os.ErrNotExist) {
		t.Logf("kill %s: %v", dir, err)
	}
	deadline := time.Now().Add(5 * time.Second)
	for {
		err := removeTree(dir)
		if err == nil || errors.Is(err, os.ErrNotExist) {
			return
		}
		if time.Now().After(deadline) {
			t.Errorf("remove cgroup %s: %v", dir, err)
			return
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// removeTree removes a cgroup directory bottom-up; cgroupfs allows only rmdir.
func removeTree(dir string) error {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return err
	}
	for _, e := range entries {
		if e.IsDir() {
			if err := removeTree(filepath.Join(dir, e.Name())); err != nil {
				return err
			}
		}
	}
	return unix.Rmdir(dir)
}

// BPFFS mounts a private bpffs for t and returns a cgpol root inside it.
// Unmounting it at the end of the test drops every pin, so nothing that the
// test attached outlives it.
func BPFFS(t testing.TB) string {
	t.Helper()
	dir := t.TempDir()
	if err := unix.Mount("bpf", dir, "bpf", 0, "mode=0700"); err != nil {
		Unavailable(t, "mount bpffs: %v", err)
	}
	t.Cleanup(func() {
		if err := unix.Unmount(dir, unix.MNT_DETACH); err != nil {
			t.Errorf("unmount bpffs %s: %v", dir, err)
		}
	})
	return filepath.Join(dir, "cgpol")
}

var built struct {
	sync.Mutex
	dir  string
	bins map[string]string
}

// Build builds a command of this module (e.g. "./test/probe", "./cmd/cgpol")
// once per test binary and returns the path of the executable. Probes are
// built static, so that they run inside minimal containers.
func Build(t testing.TB, pkg string) string {
	t.Helper()
	built.Lock()
	defer built.Unlock()
	if bin, ok := built.bins[pkg]; ok {
		return bin
	}
	if built.dir == "" {
		dir, err := os.MkdirTemp("", "cgpol-test-bin-")
		if err == nil {
			err = os.Chmod(dir, 0o755) // tests run some binaries as nobody
		}
		if err != nil {
			t.Fatal(err)
		}
		built.dir, built.bins = dir, map[string]string{}
	}
	bin := filepath.Join(built.dir, filepath.Base(pkg))
	cmd := exec.Command("go", "build", "-o", bin, pkg)
	cmd.Dir = ModuleRoot(t)
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("build %s: %v\n%s", pkg, err, out)
	}
	built.bins[pkg] = bin
	return bin
}

// ModuleRoot returns the directory that holds go.mod.
func ModuleRoot(t testing.TB) string {
	t.Helper()
	_, file, _, _ := runtime.Caller(0)
	return filepath.Clean(filepath.Join(filepath.Dir(file), "..", ".."))
}

// Probe returns the path of the static probe binary.
func Probe(t testing.TB) string {
	t.Helper()
	return Build(t, "./test/probe")
}

// CommandIn returns a command that starts inside cg (CLONE_INTO_CGROUP), so
// that the process makes no call outside it.
func CommandIn(t testing.TB, cg cgroup.Cgroup, name string, args ...string) *exec.Cmd {
	t.Helper()
	f, err := os.Open(cg.Dir())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.Close() })
	cmd := exec.Command(name, args...)
	cmd.SysProcAttr = &syscall.SysProcAttr{UseCgroupFD: true, CgroupFD: int(f.Fd())}
	return cmd
}

// RunProbe runs the probe in cg and returns its lines, keyed by call, e.g.
// "connect tcp 127.0.0.1:80" -> "ok" or "EPERM".
func RunProbe(t testing.TB, cg cgroup.Cgroup, args ...string) map[string]string {
	t.Helper()
	cmd := CommandIn(t, cg, Probe(t), args...)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("probe %v: %v\n%s", args, err, stderr.String())
	}
	return ParseProbe(string(out))
}

// ParseProbe parses probe output into a map from call to result.
func ParseProbe(out string) map[string]string {
	results := map[string]string{}
	for _, line := range strings.Split(strings.TrimSpace(out), "\n") {
		if call, result, ok := strings.Cut(line, ": "); ok {
			results[call] = result
		}
	}
	return results
}

// ListenTCP listens on a loopback address ("127.0.0.1" or "::1") on a free
// port, accepts and closes connections until the test ends, and returns the port.
func ListenTCP(t testing.TB, ip string) int {
	t.Helper()
	return int(ServeTCP(t, net.JoinHostPort(ip, "0"), "").Port())
}

// ListenTCPPort listens on a loopback address and a given port, as ListenTCP.
func ListenTCPPort(t testing.TB, ip string, port int) {
	t.Helper()
	ServeTCP(t, net.JoinHostPort(ip, fmt.Sprint(port)), "")
}

// FreePorts returns n distinct TCP ports that are free on both loopbacks now.
func FreePorts(t testing.TB, n int) []int {
	t.Helper()
	var ports []int
	var ls []net.Listener
	defer func() {
		for _, l := range ls {
			l.Close()
		}
	}()
	for len(ports) < n {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		ls = append(ls, l)
		port := l.Addr().(*net.TCPAddr).Port
		if l6, err := net.Listen("tcp", fmt.Sprintf("[::1]:%d", port)); err == nil {
			l6.Close()
			ports = append(ports, port)
		}
	}
	return ports
}

func sanitize(name string) string {
	return strings.Map(func(r rune) rune {
		if r == '/' || r == ' ' {
			return '_'
		}
		return r
	}, name)
}

func randomHex(n int) string {
	b := make([]byte, n)
	rand.Read(b)
	return hex.EncodeToString(b)
}

// Main runs a package's tests and then removes what the package's tests
// built once for all of them (binaries, the rootfs). Call it from TestMain:
//
//	func TestMain(m *testing.M) { os.Exit(testenv.Main(m)) }
func Main(m *testing.M) int {
	code := m.Run()
	built.Lock()
	if built.dir != "" {
		os.RemoveAll(built.dir)
	}
	built.Unlock()
	rootfs.Lock()
	if rootfs.dir != "" {
		os.RemoveAll(rootfs.dir)
	}
	rootfs.Unlock()
	return code
}

// CountEntries counts the entries of a hash map, or the filled slots of an
// array of maps.
func CountEntries(t testing.TB, m *ebpf.Map) int {
	t.Helper()
	n := 0
	if m.Type() == ebpf.ArrayOfMaps {
		for slot := range m.MaxEntries() {
			var id uint32
			if m.Lookup(slot, &id) == nil {
				n++
			}
		}
		return n
	}
	var key any // nil: the first key
	next := make([]byte, m.KeySize())
	for {
		if err := m.NextKey(key, next); err != nil {
			if errors.Is(err, ebpf.ErrKeyNotExist) {
				return n
			}
			t.Fatalf("iterate %s: %v", m, err)
		}
		n++
		key = append([]byte(nil), next...)
	}
}
