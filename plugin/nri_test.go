package main

// In-process tests: the runtime side is the real NRI adaptation from
// containerd/nri, as containerd embeds it, listening on a socket in a temp
// dir; the plugin connects to it over ttrpc as it would to containerd. The
// test plays the runtime: its pods and containers are what the adaptation
// reports, and each container is a real process in a real cgroup, held
// before its first instruction until the plugin's StartContainer returns.

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/containerd/nri/pkg/adaptation"
	"github.com/containerd/nri/pkg/api"
	nrilog "github.com/containerd/nri/pkg/log"

	"github.com/cgpol/cgpol/pkg/cgroup"
	"github.com/cgpol/cgpol/pkg/compile"
	"github.com/cgpol/cgpol/pkg/enforce"
	"github.com/cgpol/cgpol/pkg/policy"
	"github.com/cgpol/cgpol/test/e2e"
	"github.com/cgpol/cgpol/test/testenv"
)

// nriRuntime is the runtime end of NRI, with the test's pods and containers.
type nriRuntime struct {
	t      *testing.T
	nri    *adaptation.Adaptation
	socket string

	mu      sync.Mutex
	pods    map[string]*api.PodSandbox
	ctrs    map[string]*api.Container
	syncs   int // plugin synchronizations finished
	updates int // plugin count updates; one follows each plugin's registration
	synced  int // updates seen when the last synchronization finished
}

func newNRIRuntime(t *testing.T) *nriRuntime {
	t.Helper()
	nrilog.Set(quietNRILog{})
	dir := t.TempDir()
	rt := &nriRuntime{t: t, socket: filepath.Join(dir, "nri.sock"),
		pods: map[string]*api.PodSandbox{}, ctrs: map[string]*api.Container{}}
	syncFn := func(ctx context.Context, cb adaptation.SyncCB) error {
		rt.mu.Lock()
		var pods []*api.PodSandbox
		var ctrs []*api.Container
		for _, p := range rt.pods {
			pods = append(pods, p)
		}
		for _, c := range rt.ctrs {
			ctrs = append(ctrs, c)
		}
		rt.mu.Unlock()
		_, err := cb(ctx, pods, ctrs)
		rt.mu.Lock()
		rt.syncs++
		rt.synced = rt.updates
		rt.mu.Unlock()
		return err
	}
	updateFn := func(context.Context, []*adaptation.ContainerUpdate) ([]*adaptation.ContainerUpdate, error) {
		return nil, nil
	}
	r, err := adaptation.New("cgpol-test", "0", syncFn, updateFn,
		adaptation.WithSocketPath(rt.socket),
		adaptation.WithPluginPath(filepath.Join(dir, "plugins")),
		adaptation.WithPluginConfigPath(filepath.Join(dir, "conf.d")),
		adaptation.WithMetrics(pluginCounter{rt}))
	if err != nil {
		t.Fatal(err)
	}
	if err := r.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(r.Stop)
	rt.nri = r
	return rt
}

// pluginCounter notes when the adaptation has added a plugin to its list.
type pluginCounter struct{ rt *nriRuntime }

func (c pluginCounter) UpdatePluginCount(int) {
	c.rt.mu.Lock()
	c.rt.updates++
	c.rt.mu.Unlock()
}
func (pluginCounter) RecordPluginInvocation(string, string, error)      {}
func (pluginCounter) RecordPluginLatency(string, string, time.Duration) {}
func (pluginCounter) RecordPluginAdjustments(string, string, *adaptation.ContainerAdjustment, int, int) {
}

// waitSynced waits until n plugin connections have been synchronized and
// the last one joined the runtime's plugins.
func (rt *nriRuntime) waitSynced(n int) {
	rt.t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		rt.mu.Lock()
		done := rt.syncs >= n && rt.updates > rt.synced
		rt.mu.Unlock()
		if done {
			return
		}
		if time.Now().After(deadline) {
			rt.t.Fatalf("the plugin did not connect and synchronize (connection %d)", n)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func (rt *nriRuntime) runPod(name string, annotations map[string]string) *api.PodSandbox {
	rt.t.Helper()
	pod := &api.PodSandbox{Id: randomID(), Name: name, Uid: randomID()[:8], Namespace: "default", Annotations: annotations}
	if err := rt.nri.RunPodSandbox(context.Background(), &adaptation.RunPodSandboxRequest{Pod: pod}); err != nil {
		rt.t.Fatal(err)
	}
	rt.mu.Lock()
	rt.pods[pod.Id] = pod
	rt.mu.Unlock()
	return pod
}

func (rt *nriRuntime) create(pod *api.PodSandbox, name string) (*api.Container, error) {
	ctr := &api.Container{Id: randomID(), PodSandboxId: pod.Id, Name: name, State: api.ContainerState_CONTAINER_CREATED}
	if _, err := rt.nri.CreateContainer(context.Background(), &adaptation.CreateContainerRequest{Pod: pod, Container: ctr}); err != nil {
		return nil, err
	}
	rt.mu.Lock()
	rt.ctrs[ctr.Id] = ctr
	rt.mu.Unlock()
	return ctr, nil
}

// start tells the plugins that ctr, whose first process is pid, starts.
func (rt *nriRuntime) start(pod *api.PodSandbox, ctr *api.Container, pid int) error {
	rt.mu.Lock()
	ctr.Pid = uint32(pid)
	req := &adaptation.StartContainerRequest{Pod: pod, Container: ctr}
	rt.mu.Unlock()
	if err := rt.nri.StartContainer(context.Background(), req); err != nil {
		return err
	}
	rt.mu.Lock()
	ctr.State = api.ContainerState_CONTAINER_RUNNING
	rt.mu.Unlock()
	return nil
}

// remove stops and removes ctr, as the CRI does after its processes are gone.
func (rt *nriRuntime) remove(pod *api.PodSandbox, ctr *api.Container) {
	rt.t.Helper()
	rt.mu.Lock()
	ctr.State = api.ContainerState_CONTAINER_STOPPED
	rt.mu.Unlock()
	ctx := context.Background()
	if _, err := rt.nri.StopContainer(ctx, &adaptation.StopContainerRequest{Pod: pod, Container: ctr}); err != nil {
		rt.t.Fatal(err)
	}
	if err := rt.nri.RemoveContainer(ctx, &adaptation.RemoveContainerRequest{Pod: pod, Container: ctr}); err != nil {
		rt.t.Fatal(err)
	}
	rt.forget(ctr)
}

// forget drops ctr from the runtime's state without telling the plugins.
func (rt *nriRuntime) forget(ctr *api.Container) {
	rt.mu.Lock()
	delete(rt.ctrs, ctr.Id)
	rt.mu.Unlock()
}

// inProcessPlugin runs the plugin in this test process, as an external
// plugin connected to the runtime's socket.
type inProcessPlugin struct {
	stop func()
}

func startPlugin(t *testing.T, rt *nriRuntime, nodeConfig string) *inProcessPlugin {
	t.Helper()
	return startPluginWith(t, rt, options{nodeConfig: nodeConfig})
}

// startPluginWith starts the plugin with these options, plus the harness's
// socket, name, index and log level.
func startPluginWith(t *testing.T, rt *nriRuntime, opts options) *inProcessPlugin {
	t.Helper()
	rt.mu.Lock()
	n := rt.syncs + 1
	rt.mu.Unlock()
	opts.socket, opts.name, opts.idx, opts.logLevel = rt.socket, "cgpol", "10", "debug"
	logs, err := newLogOutput(newTestLog(t), opts)
	if err != nil {
		t.Fatal(err)
	}
	p := newPlugin(opts, logs)
	if err := p.newStub(false); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	p.ctx = ctx
	p.startMetrics(opts.metricsAddr)
	done := make(chan struct{})
	go func() {
		defer close(done)
		p.stub.Run(ctx)
	}()
	stop := sync.OnceFunc(func() {
		cancel()
		<-done
		p.close()
	})
	t.Cleanup(stop)
	rt.waitSynced(n)
	return &inProcessPlugin{stop: stop}
}

// nodeConfig writes a cgpol node configuration that pins under a private
// bpffs, with extra YAML lines, and returns its path and the bpffs root.
func nodeConfig(t *testing.T, extra string) (file, root string) {
	t.Helper()
	root = testenv.BPFFS(t)
	file = filepath.Join(t.TempDir(), "config.yaml")
	if err := os.WriteFile(file, []byte(fmt.Sprintf("bpffs: %s\n%s", root, extra)), 0o644); err != nil {
		t.Fatal(err)
	}
	return file, root
}

// openObjects opens the objects that the plugin pinned under root.
func openObjects(t *testing.T, root string) *enforce.Objects {
	t.Helper()
	objs, err := enforce.Install(root)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(objs.Close)
	return objs
}

// attachment returns the status of the attachment for a container id.
func attachment(t testing.TB, objs *enforce.Objects, container string) (enforce.Status, bool) {
	t.Helper()
	id, ok, err := objs.FindContainer(container)
	if err != nil {
		t.Fatal(err)
	}
	if !ok {
		return enforce.Status{}, false
	}
	st, err := objs.StatusOf(id)
	if err != nil {
		t.Fatal(err)
	}
	return st, true
}

// heldProcess starts a process in cg held before its first instruction, as
// a runtime holds a created container: a shell waits on its stdin, then
// execs name with args. release lets it run; wait returns its output.
func heldProcess(t *testing.T, cg cgroup.Cgroup, name string, args ...string) (pid int, release func(), wait func() string) {
	t.Helper()
	if _, err := os.Stat("/bin/busybox"); err != nil {
		testenv.Unavailable(t, "no /bin/busybox: install busybox-static (make deps)")
	}
	cmd := testenv.CommandIn(t, cg, "/bin/busybox", append([]string{"sh", "-c", `read go && exec "$0" "$@"`, name}, args...)...)
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	waited := false
	t.Cleanup(func() {
		if !waited {
			cmd.Process.Kill()
			cmd.Wait()
		}
	})
	release = func() {
		fmt.Fprintln(stdin, "go")
		stdin.Close()
	}
	wait = func() string {
		t.Helper()
		waited = true
		if err := cmd.Wait(); err != nil {
			t.Fatalf("%s: %v\n%s", name, err, stderr.String())
		}
		return stdout.String()
	}
	return cmd.Process.Pid, release, wait
}

// startProbe creates and starts a container whose entrypoint is the probe
// with args, in a cgroup named after the container under parent, and
// returns the probe's results.
func startProbe(t *testing.T, rt *nriRuntime, parent cgroup.Cgroup, pod *api.PodSandbox, ctr *api.Container, args ...string) map[string]string {
	t.Helper()
	cg := testenv.NewChildCgroup(t, parent, ctr.Id)
	pid, release, wait := heldProcess(t, cg, testenv.Probe(t), args...)
	if err := rt.start(pod, ctr, pid); err != nil {
		t.Fatalf("start %s: %v", ctr.Name, err)
	}
	release()
	return testenv.ParseProbe(wait())
}

// startSleeper creates and starts a long-running container and returns its cgroup.
func startSleeper(t *testing.T, rt *nriRuntime, parent cgroup.Cgroup, pod *api.PodSandbox, ctr *api.Container) cgroup.Cgroup {
	t.Helper()
	cg := testenv.NewChildCgroup(t, parent, ctr.Id)
	pid, release, _ := heldProcess(t, cg, "/bin/busybox", "sleep", "3600")
	if err := rt.start(pod, ctr, pid); err != nil {
		t.Fatalf("start %s: %v", ctr.Name, err)
	}
	release()
	return cg
}

func connects(ports ...int) []string {
	var args []string
	for _, p := range ports {
		args = append(args, "connect", "tcp", fmt.Sprintf("127.0.0.1:%d", p))
	}
	return args
}

func expectConnects(t *testing.T, who string, got map[string]string, want map[int]string) {
	t.Helper()
	for port, result := range want {
		call := fmt.Sprintf("connect tcp 127.0.0.1:%d", port)
		if got[call] != result {
			t.Errorf("%s: %s: got %q, want %q (all: %v)", who, call, got[call], result, got)
		}
	}
}

func TestNRIAnnotatedPodIsEnforcedFromTheFirstInstruction(t *testing.T) {
	testenv.Privileged(t)
	allowed, denied := testenv.ListenTCP(t, "127.0.0.1"), testenv.ListenTCP(t, "127.0.0.1")
	cfg, root := nodeConfig(t, "")
	rt := newNRIRuntime(t)
	startPlugin(t, rt, cfg)
	objs := openObjects(t, root)
	parent := testenv.NewCgroup(t)

	pod := rt.runPod("shop", map[string]string{policy.KeyAllowPorts: fmt.Sprintf("tcp:%d", allowed)})
	ctr, err := rt.create(pod, "web")
	if err != nil {
		t.Fatal(err)
	}
	got := startProbe(t, rt, parent, pod, ctr, connects(denied, allowed)...)
	expectConnects(t, "web", got, map[int]string{denied: "EPERM", allowed: "ok"})

	st, ok := attachment(t, objs, ctr.Id)
	if !ok {
		t.Fatal("no attachment recorded for the container")
	}
	if st.Manager != manager || st.Name != "default/shop/web" || st.Problem != "" ||
		st.Policy != fmt.Sprintf(`cgpol.io/allow-ports="tcp:%d"`, allowed) {
		t.Errorf("attachment: %+v", st)
	}

	rt.remove(pod, ctr)
	if _, ok := attachment(t, objs, ctr.Id); ok {
		t.Error("the removed container's policy is still attached")
	}
	if entries, _ := os.ReadDir(filepath.Join(objs.Dir, "cgroup")); len(entries) != 0 {
		t.Errorf("pins left after removal: %v", entries)
	}
}

func TestNRIInvalidAnnotationFailsCreate(t *testing.T) {
	testenv.Privileged(t)
	cfg, _ := nodeConfig(t, "")
	rt := newNRIRuntime(t)
	startPlugin(t, rt, cfg)

	for _, tt := range []struct {
		ann  map[string]string
		want string
	}{
		{map[string]string{policy.KeyAllowPorts: "80,99999"},
			`cgpol: invalid annotation cgpol.io/allow-ports="80,99999": item 2 "99999": port 99999 is out of range; want 1-65535`},
		{map[string]string{"cgpol.io/allow-port": "80"},
			`cgpol: invalid annotation cgpol.io/allow-port="80": unknown cgpol annotation`},
		// The error names the scoped key as the user wrote it.
		{map[string]string{"allow-ports.cgpol.io/container.web": "tcp:"},
			`cgpol: invalid annotation allow-ports.cgpol.io/container.web="tcp:": item 1 "tcp:": missing port number`},
		{map[string]string{"allow-ports.cgpol.io/web": "80"},
			`cgpol: invalid annotation allow-ports.cgpol.io/web="80": a scoped cgpol key must be`},
	} {
		pod := rt.runPod("bad", tt.ann)
		_, err := rt.create(pod, "web")
		if err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("%v: CreateContainer: got %v, want an error with %q", tt.ann, err, tt.want)
		}
	}
}

func TestNRIContainerScopedAnnotation(t *testing.T) {
	testenv.Privileged(t)
	podPort, webPort := testenv.ListenTCP(t, "127.0.0.1"), testenv.ListenTCP(t, "127.0.0.1")
	cfg, _ := nodeConfig(t, "")
	rt := newNRIRuntime(t)
	startPlugin(t, rt, cfg)
	parent := testenv.NewCgroup(t)

	pod := rt.runPod("scoped", map[string]string{
		policy.KeyAllowPorts:                          fmt.Sprintf("tcp:%d", podPort),
		policy.ScopedKey(policy.KeyAllowPorts, "web"): fmt.Sprintf("tcp:%d", webPort),
	})
	for _, c := range []struct {
		name string
		want map[int]string
	}{
		{"web", map[int]string{webPort: "ok", podPort: "EPERM"}},
		{"sidecar", map[int]string{webPort: "EPERM", podPort: "ok"}},
	} {
		ctr, err := rt.create(pod, c.name)
		if err != nil {
			t.Fatal(err)
		}
		expectConnects(t, c.name, startProbe(t, rt, parent, pod, ctr, connects(webPort, podPort)...), c.want)
	}
}

func TestNRIPodWithoutPolicy(t *testing.T) {
	testenv.Privileged(t)
	port := testenv.ListenTCP(t, "127.0.0.1")
	parent := testenv.NewCgroup(t)

	t.Run("unrestricted", func(t *testing.T) {
		cfg, root := nodeConfig(t, "")
		rt := newNRIRuntime(t)
		startPlugin(t, rt, cfg)
		pod := rt.runPod("plain", map[string]string{"example.com/owner": "team-a"})
		ctr, err := rt.create(pod, "app")
		if err != nil {
			t.Fatal(err)
		}
		expectConnects(t, "app", startProbe(t, rt, parent, pod, ctr, connects(port)...), map[int]string{port: "ok"})
		// Nothing needed enforcing, so nothing was installed.
		if _, err := enforce.Open(root); err == nil {
			t.Error("cgpol was installed for a pod without a policy")
		}
	})

	t.Run("node default policy", func(t *testing.T) {
		cfg, root := nodeConfig(t, "defaultPolicy: {allow-ports: \"udp:53\"}\nexempt: [{name: tools}]\n")
		rt := newNRIRuntime(t)
		startPlugin(t, rt, cfg)
		objs := openObjects(t, root)
		pod := rt.runPod("plain", nil)
		for _, c := range []struct {
			name   string
			result string
		}{{"app", "EPERM"}, {"tools", "ok"}} {
			ctr, err := rt.create(pod, c.name)
			if err != nil {
				t.Fatal(err)
			}
			expectConnects(t, c.name, startProbe(t, rt, parent, pod, ctr, connects(port)...), map[int]string{port: c.result})
			st, ok := attachment(t, objs, ctr.Id)
			if want := c.result == "EPERM"; ok != want || (ok && st.Policy != `cgpol.io/allow-ports="udp:53"`) {
				t.Errorf("%s: attached %v (%+v), want %v", c.name, ok, st, want)
			}
		}
	})
}

func TestNRIBrokenNodeConfigFailsContainers(t *testing.T) {
	testenv.Privileged(t)
	cfg, _ := nodeConfig(t, "defaultPolicy: {allow-ports: \"http\"}\n")
	rt := newNRIRuntime(t)
	startPlugin(t, rt, cfg)
	pod := rt.runPod("any", nil)
	_, err := rt.create(pod, "app")
	if err == nil || !strings.Contains(err.Error(), "cgpol: cgpol config "+cfg+": defaultPolicy: invalid annotation") {
		t.Errorf("CreateContainer: got %v, want the node configuration's error", err)
	}
}

func TestNRIFailedAttachFailsStart(t *testing.T) {
	testenv.Privileged(t)
	cfg, _ := nodeConfig(t, "")
	rt := newNRIRuntime(t)
	startPlugin(t, rt, cfg)
	pod := rt.runPod("host", map[string]string{policy.KeyAllowPorts: "443"})
	ctr, err := rt.create(pod, "app")
	if err != nil {
		t.Fatal(err)
	}
	// A "container" whose process is this test: its cgroup is not the
	// container's (it holds the plugin, too).
	err = rt.start(pod, ctr, os.Getpid())
	if want := `cgpol: enforce cgpol.io/allow-ports="443": pid ` + fmt.Sprint(os.Getpid()) + ` of container ` + ctr.Id +
		` is in cgroup`; err == nil || !strings.Contains(err.Error(), want) {
		t.Errorf("StartContainer: got %v, want %q", err, want)
	}
}

func TestNRISynchronizeAfterPluginRestart(t *testing.T) {
	testenv.Privileged(t)
	allowed, denied := testenv.ListenTCP(t, "127.0.0.1"), testenv.ListenTCP(t, "127.0.0.1")
	cfg, root := nodeConfig(t, "")
	rt := newNRIRuntime(t)
	first := startPlugin(t, rt, cfg)
	objs := openObjects(t, root)
	parent := testenv.NewCgroup(t)
	pod := rt.runPod("shop", map[string]string{policy.KeyAllowPorts: fmt.Sprintf("tcp:%d", allowed)})

	newCtr := func(name string) *api.Container {
		ctr, err := rt.create(pod, name)
		if err != nil {
			t.Fatal(err)
		}
		return ctr
	}
	removed, forgotten := newCtr("removed"), newCtr("forgotten")
	removedCg := startSleeper(t, rt, parent, pod, removed)
	forgottenCg := startSleeper(t, rt, parent, pod, forgotten)
	for _, c := range []*api.Container{removed, forgotten} {
		if _, ok := attachment(t, objs, c.Id); !ok {
			t.Fatalf("%s: not attached while the plugin runs", c.Name)
		}
	}
	// An attachment that another cgpol tool made, which the plugin must leave.
	other := testenv.NewCgroup(t)
	p, _, _ := policy.FromAnnotations(map[string]string{policy.KeyAllowPorts: "22"})
	if err := objs.Attach(other, compile.Compile(p), enforce.Label{Name: "admin", Manager: "cli"}); err != nil {
		t.Fatal(err)
	}

	first.stop()

	// While no plugin is connected, the runtime goes on without it: a new
	// container starts unrestricted (NRI fails open) ...
	late := newCtr("late")
	lateCg := startSleeper(t, rt, parent, pod, late)
	expectConnects(t, "late, plugin down", testenv.RunProbe(t, lateCg, connects(denied)...), map[int]string{denied: "ok"})
	// ... a removed container's policy stays pinned ...
	rt.remove(pod, removed)
	testenv.RemoveCgroup(t, removedCg.Dir())
	// ... and a container that the runtime forgets keeps its processes.
	rt.forget(forgotten)

	startPlugin(t, rt, cfg)

	if st, ok := attachment(t, objs, late.Id); !ok || st.Manager != manager || st.Problem != "" {
		t.Errorf("late: synchronization did not attach its policy: %v %+v", ok, st)
	}
	expectConnects(t, "late, after synchronization", testenv.RunProbe(t, lateCg, connects(denied, allowed)...),
		map[int]string{denied: "EPERM", allowed: "ok"})
	if _, ok := attachment(t, objs, removed.Id); ok {
		t.Error("removed: synchronization left its policy")
	}
	if _, ok := attachment(t, objs, forgotten.Id); !ok {
		t.Error("forgotten: synchronization removed the policy of a cgroup that still has processes")
	}
	expectConnects(t, "forgotten", testenv.RunProbe(t, forgottenCg, connects(denied)...), map[int]string{denied: "EPERM"})
	if st, err := objs.StatusOf(other.ID); err != nil || st.Manager != "cli" {
		t.Errorf("the cli's attachment: %+v, %v", st, err)
	}
}

func randomID() string {
	b := make([]byte, 32)
	rand.Read(b)
	return hex.EncodeToString(b)
}

// testLog writes the plugin's log lines to the test's log until it ends.
type testLog struct {
	mu   sync.Mutex
	t    *testing.T
	done bool
}

func newTestLog(t *testing.T) *testLog {
	l := &testLog{t: t}
	t.Cleanup(func() {
		l.mu.Lock()
		l.done = true
		l.mu.Unlock()
	})
	return l
}

func (l *testLog) Write(b []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if !l.done {
		l.t.Log(strings.TrimSuffix(string(b), "\n"))
	}
	return len(b), nil
}

// quietNRILog passes on only the adaptation's warnings and errors.
type quietNRILog struct{}

func (quietNRILog) Debugf(context.Context, string, ...any) {}
func (quietNRILog) Infof(context.Context, string, ...any)  {}
func (quietNRILog) Warnf(_ context.Context, format string, args ...any) {
	fmt.Fprintf(os.Stderr, "nri: warning: "+format+"\n", args...)
}
func (quietNRILog) Errorf(_ context.Context, format string, args ...any) {
	fmt.Fprintf(os.Stderr, "nri: error: "+format+"\n", args...)
}

func TestNRIAttachesAfterCgpolIsReinstalled(t *testing.T) {
	testenv.Privileged(t)
	port := testenv.ListenTCP(t, "127.0.0.1")
	cfg, root := nodeConfig(t, "")
	rt := newNRIRuntime(t)
	startPlugin(t, rt, cfg)
	parent := testenv.NewCgroup(t)
	pod := rt.runPod("shop", map[string]string{policy.KeyAllowPorts: "443"})

	first, err := rt.create(pod, "first")
	if err != nil {
		t.Fatal(err)
	}
	expectConnects(t, "first", startProbe(t, rt, parent, pod, first, connects(port)...), map[int]string{port: "EPERM"})
	// An admin removes cgpol under the running plugin.
	if err := enforce.Uninstall(root, true); err != nil {
		t.Fatal(err)
	}
	second, err := rt.create(pod, "second")
	if err != nil {
		t.Fatal(err)
	}
	expectConnects(t, "second", startProbe(t, rt, parent, pod, second, connects(port)...), map[int]string{port: "EPERM"})
}

// With --metrics-addr the plugin serves the kernel's counters for the
// containers it attached, in the Prometheus text format.
func TestNRIServesMetrics(t *testing.T) {
	testenv.Privileged(t)
	cfg, _ := nodeConfig(t, "")
	rt := newNRIRuntime(t)
	addr := fmt.Sprintf("127.0.0.1:%d", testenv.FreePorts(t, 1)[0])
	startPluginWith(t, rt, options{nodeConfig: cfg, metricsAddr: addr})
	get := func() string {
		t.Helper()
		for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(50 * time.Millisecond) {
			resp, err := http.Get("http://" + addr + "/metrics")
			if err == nil {
				body, _ := io.ReadAll(resp.Body)
				resp.Body.Close()
				if resp.StatusCode != http.StatusOK {
					t.Fatalf("GET /metrics: %s: %s", resp.Status, body)
				}
				return string(body)
			}
			if time.Now().After(deadline) {
				t.Fatalf("GET /metrics: %v", err)
			}
		}
	}
	if body := get(); !strings.Contains(body, "cgpol_attached_cgroups 0") {
		t.Errorf("before any container: %q", body)
	}
	denied := testenv.ListenTCP(t, "127.0.0.1")
	parent := testenv.NewCgroup(t)
	pod := rt.runPod("shop", map[string]string{policy.KeyAllowPorts: "tcp:1"})
	ctr, err := rt.create(pod, "web")
	if err != nil {
		t.Fatal(err)
	}
	startProbe(t, rt, parent, pod, ctr, connects(denied)...)
	body := get()
	want := `container="default/shop/web",container_id="` + ctr.Id + `",manager="nri",hook="connect4",verdict="denied"} 1`
	if !strings.Contains(body, want) || !strings.Contains(body, "cgpol_attached_cgroups 1") {
		t.Errorf("metrics lack %q:\n%s", want, body)
	}
}

// The policies of issue 5 go through the plugin like allow-ports: address
// rules, bind, redirect, audit and raw sockets, each checked from the
// container's first instruction.
func TestNRIEnforcesEveryPolicyKind(t *testing.T) {
	testenv.Privileged(t)
	cfg, root := nodeConfig(t, "")
	rt := newNRIRuntime(t)
	startPlugin(t, rt, cfg)
	parent := testenv.NewCgroup(t)
	target := testenv.ServeTCP(t, "127.0.0.1:0", "target")
	for i, c := range []struct {
		ann  map[string]string
		call []string
		want string
	}{
		{map[string]string{policy.KeyAllowCIDRs: "127.0.0.1"}, []string{"connect", "udp", "127.0.0.2:53"}, "EPERM"},
		{map[string]string{policy.KeyAllowCIDRs: "127.0.0.1", policy.KeyMode: "audit"}, []string{"connect", "udp", "127.0.0.2:53"}, "ok"},
		{map[string]string{policy.KeyAllowBind: "8000-9000"}, []string{"bind", "tcp", "127.0.0.1:7999"}, "EPERM"},
		{map[string]string{policy.KeyRedirect: fmt.Sprintf("tcp:1=%s", target)}, []string{"dial", "tcp", "127.0.0.1:1"}, "ok peer=127.0.0.1:1 reply=target"},
		{map[string]string{policy.KeyRawSockets: "deny"}, []string{"socket", "raw", "127.0.0.1:0"}, "EPERM"},
	} {
		pod := rt.runPod(fmt.Sprintf("kind-%d", i), c.ann)
		ctr, err := rt.create(pod, "app")
		if err != nil {
			t.Fatalf("%v: create: %v", c.ann, err)
		}
		key := strings.Join(c.call, " ")
		if got := startProbe(t, rt, parent, pod, ctr, c.call...)[key]; got != c.want {
			t.Errorf("%v: %s = %q, want %q", c.ann, key, got, c.want)
		}
		rt.remove(pod, ctr)
	}
	e2e.AssertNoAttachments(t, root)
}
