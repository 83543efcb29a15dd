package testenv

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/cgpol/cgpol/pkg/cgroup"
)

// ContainerdVersion is the containerd that the end-to-end tests run. The
// Makefile's containerd target builds it into ContainerdDir.
const ContainerdVersion = "v2.4.2"

// ContainerdDir returns the directory that holds the pinned containerd, ctr
// and containerd-shim-runc-v2: $CGPOL_CONTAINERD_DIR, or _build/containerd
// in the module (make containerd).
func ContainerdDir(t testing.TB) string {
	t.Helper()
	dir := os.Getenv("CGPOL_CONTAINERD_DIR")
	if dir == "" {
		dir = filepath.Join(ModuleRoot(t), "_build", "containerd")
	}
	for _, bin := range []string{"containerd", "ctr", "containerd-shim-runc-v2"} {
		if _, err := os.Stat(filepath.Join(dir, bin)); err != nil {
			Unavailable(t, "no %s in %s: run make containerd (it builds containerd %s)", bin, dir, ContainerdVersion)
		}
	}
	if _, err := exec.LookPath("runc"); err != nil {
		Unavailable(t, "no runc: install Debian's runc")
	}
	return dir
}

// Containerd is a containerd daemon of a test's own: its root, state,
// sockets and runc state all live in one temp dir.
type Containerd struct {
	Dir     string // the temp dir
	Address string // the gRPC socket (CRI and containerd API)
	Config  string // the config file
	Log     string // containerd's output

	bin     string
	cmd     *exec.Cmd
	exited  chan struct{} // closed when containerd has exited
	waitErr error
}

// ContainerdConfig is what a test adds to the config that StartContainerd
// writes.
type ContainerdConfig struct {
	// Imports are more config files (version 3 TOML) for containerd to
	// merge in, e.g. drop-ins that the project ships.
	Imports []string
	// Extra is TOML appended to the main config.
	Extra string
	// SandboxImage is the CRI's pause image; empty keeps containerd's.
	SandboxImage string
}

// StartContainerd starts containerd with a config in a fresh temp dir and
// waits until it serves. It is stopped at the end of the test, with every
// shim that it started; mounts left under its dir are undone.
//
// The config sets restrict_oom_score_adj: without CAP_SYS_RESOURCE, runc
// cannot give a sandbox the oom_score_adj of -998 that the CRI asks for.
func StartContainerd(t testing.TB, c ContainerdConfig) *Containerd {
	t.Helper()
	Privileged(t)
	bin := ContainerdDir(t)
	// Short: unix socket paths must fit in 108 bytes.
	dir, err := os.MkdirTemp("", "cgpol-ctrd-")
	if err != nil {
		t.Fatal(err)
	}
	d := &Containerd{
		Dir:     dir,
		Address: filepath.Join(dir, "containerd.sock"),
		Config:  filepath.Join(dir, "config.toml"),
		Log:     filepath.Join(dir, "containerd.log"),
		bin:     bin,
	}
	t.Cleanup(func() { d.cleanup(t) })
	for _, sub := range []string{"cni", "root", "state", "runc"} {
		if err := os.MkdirAll(filepath.Join(dir, sub), 0o700); err != nil {
			t.Fatal(err)
		}
	}
	var cfg strings.Builder
	fmt.Fprintf(&cfg, "version = 3\nroot = %q\nstate = %q\n", filepath.Join(dir, "root"), filepath.Join(dir, "state"))
	if len(c.Imports) > 0 {
		fmt.Fprintf(&cfg, "imports = [%s]\n", quoteList(c.Imports))
	}
	fmt.Fprintf(&cfg, `
[grpc]
  address = %q
[ttrpc]
  address = %q
[debug]
  address = ""
[metrics]
  address = ""

[plugins."io.containerd.cri.v1.runtime"]
  restrict_oom_score_adj = true
[plugins."io.containerd.cri.v1.runtime".cni]
  conf_dir = %q
[plugins."io.containerd.cri.v1.runtime".containerd.runtimes.runc.options]
  Root = %q
`, d.Address, d.Address+".ttrpc", filepath.Join(dir, "cni"), filepath.Join(dir, "runc"))
	if c.SandboxImage != "" {
		fmt.Fprintf(&cfg, "[plugins.\"io.containerd.cri.v1.images\".pinned_images]\n  sandbox = %q\n", c.SandboxImage)
	}
	cfg.WriteString(c.Extra)
	if err := os.WriteFile(d.Config, []byte(cfg.String()), 0o600); err != nil {
		t.Fatal(err)
	}

	d.start(t)
	return d
}

// start runs containerd and waits until it serves. Its output is appended
// to d.Log.
func (d *Containerd) start(t testing.TB) {
	t.Helper()
	logf, err := os.OpenFile(d.Log, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o644)
	if err != nil {
		t.Fatal(err)
	}
	defer logf.Close()
	d.cmd = exec.Command(filepath.Join(d.bin, "containerd"), "--config", d.Config, "--log-level", "info")
	d.cmd.Env = append(os.Environ(), "PATH="+d.bin+":"+os.Getenv("PATH"))
	d.cmd.Stdout, d.cmd.Stderr = logf, logf
	d.cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := d.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	d.exited = make(chan struct{})
	go func() {
		d.waitErr = d.cmd.Wait()
		close(d.exited)
	}()
	deadline := time.Now().Add(60 * time.Second)
	for {
		if _, err := d.Ctr(context.Background(), "version"); err == nil {
			return
		}
		select {
		case <-d.exited:
			d.cmd = nil
			t.Fatalf("containerd exited: %v\n%s", d.waitErr, d.Tail(40))
		case <-time.After(100 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			t.Fatalf("containerd did not come up\n%s", d.Tail(40))
		}
	}
}

// Restart stops containerd and starts it again with the same config; the
// containers and their shims run on meanwhile.
func (d *Containerd) Restart(t testing.TB) {
	t.Helper()
	d.Stop(t)
	d.start(t)
}

// Ctr runs ctr against this containerd, in the k8s.io namespace, and
// returns its combined output.
func (d *Containerd) Ctr(ctx context.Context, args ...string) (string, error) {
	cmd := exec.CommandContext(ctx, filepath.Join(d.bin, "ctr"), append([]string{"--address", d.Address, "--namespace", "k8s.io"}, args...)...)
	out, err := cmd.CombinedOutput()
	if err != nil {
		return string(out), fmt.Errorf("ctr %s: %w: %s", strings.Join(args, " "), err, bytes.TrimSpace(out))
	}
	return string(out), nil
}

// Import imports an image archive (docker or OCI) under the names it holds.
func (d *Containerd) Import(t testing.TB, archive string) {
	t.Helper()
	if out, err := d.Ctr(context.Background(), "images", "import", archive); err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
}

// Tail returns the last n lines of containerd's log.
func (d *Containerd) Tail(n int) string {
	data, _ := os.ReadFile(d.Log)
	lines := strings.Split(strings.TrimRight(string(data), "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// Stop stops containerd, leaving its containers and shims running, as a
// crash or an upgrade would.
func (d *Containerd) Stop(t testing.TB) {
	t.Helper()
	if d.cmd == nil {
		return
	}
	d.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-d.exited:
	case <-time.After(20 * time.Second):
		d.cmd.Process.Kill()
		<-d.exited
	}
	d.cmd = nil
}

// Shims returns the pids of the shims that this containerd started: the
// processes whose command line names its socket.
func (d *Containerd) Shims() []int {
	var pids []int
	entries, _ := os.ReadDir("/proc")
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		cmdline, err := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid))
		if err != nil {
			continue
		}
		args := strings.Split(string(cmdline), "\x00")
		if strings.HasSuffix(args[0], "containerd-shim-runc-v2") && containsSeq(args, "-address", d.Address) {
			pids = append(pids, pid)
		}
	}
	return pids
}

func containsSeq(args []string, flag, value string) bool {
	for i := 0; i+1 < len(args); i++ {
		if args[i] == flag && args[i+1] == value {
			return true
		}
	}
	return false
}

// cleanup stops containerd, kills the shims that it left, undoes the mounts
// under its dir and removes the dir. Tests remove their pods first; this
// is for a test that failed half-way. The containers' processes live in
// the cgroups that the test gave them, which testenv kills.
func (d *Containerd) cleanup(t testing.TB) {
	d.Stop(t)
	for _, pid := range d.Shims() {
		t.Logf("killing shim %d that the test left", pid)
		syscall.Kill(pid, syscall.SIGKILL)
	}
	if err := unmountUnder(d.Dir); err != nil {
		t.Errorf("unmount under %s: %v", d.Dir, err)
	}
	if t.Failed() {
		t.Logf("containerd log, last lines:\n%s", d.Tail(60))
	}
	if err := os.RemoveAll(d.Dir); err != nil {
		t.Errorf("remove %s: %v", d.Dir, err)
	}
}

// unmountUnder detaches every mount at or below dir, deepest first.
func unmountUnder(dir string) error {
	f, err := os.Open("/proc/self/mountinfo")
	if err != nil {
		return err
	}
	defer f.Close()
	var points []string
	s := bufio.NewScanner(f)
	s.Buffer(make([]byte, 0, 64*1024), 1024*1024)
	for s.Scan() {
		fields := strings.Fields(s.Text())
		if len(fields) < 5 {
			continue
		}
		p := cgroup.UnescapeMountPath(fields[4])
		if p == dir || strings.HasPrefix(p, dir+"/") {
			points = append(points, p)
		}
	}
	var errs []error
	for i := len(points) - 1; i >= 0; i-- {
		if err := unix.Unmount(points[i], unix.MNT_DETACH); err != nil && !errors.Is(err, unix.EINVAL) && !errors.Is(err, unix.ENOENT) {
			errs = append(errs, fmt.Errorf("%s: %w", points[i], err))
		}
	}
	return errors.Join(errs...)
}

func quoteList(items []string) string {
	q := make([]string, len(items))
	for i, s := range items {
		q[i] = strconv.Quote(s)
	}
	return strings.Join(q, ", ")
}

// NewRuntimeCgroup is NewCgroup for a runtime's containers to go under
// (a CRI pod's cgroup_parent). On a hybrid host, runc's cgroupfs driver
// also makes the same path in every cgroup v1 hierarchy; those directories
// are removed at the end of the test too, once they are empty.
func NewRuntimeCgroup(t testing.TB) cgroup.Cgroup {
	t.Helper()
	CgroupMount(t)
	t.Cleanup(func() { removeV1Cgroups(t, t.Name()) })
	return NewCgroup(t)
}

// removeV1Cgroups removes the directories under testParent in the cgroup v1
// hierarchies that a test's cgroups left, deepest first. It kills nothing:
// by now the v2 cleanup has killed the processes.
func removeV1Cgroups(t testing.TB, test string) {
	f, err := os.Open("/proc/self/mountinfo")
	if err != nil {
		return
	}
	defer f.Close()
	s := bufio.NewScanner(f)
	s.Buffer(make([]byte, 0, 64*1024), 1024*1024)
	for s.Scan() {
		fields := strings.Fields(s.Text())
		sep := slices.Index(fields, "-")
		if sep < 5 || sep+1 >= len(fields) || fields[sep+1] != "cgroup" {
			continue
		}
		parent := filepath.Join(cgroup.UnescapeMountPath(fields[4]), testParent)
		dirs, _ := filepath.Glob(filepath.Join(parent, sanitize(test)+"-*"))
		for _, dir := range dirs {
			if err := removeTree(dir); err != nil && !errors.Is(err, os.ErrNotExist) {
				t.Errorf("remove cgroup v1 %s: %v", dir, err)
			}
		}
		if len(dirs) > 0 {
			unix.Rmdir(parent) // fails while other tests use it
		}
	}
}
