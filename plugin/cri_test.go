package main

// A small CRI client, as the kubelet would drive containerd, and the node
// that the end-to-end tests and the benchmark share: containerd with NRI,
// local images, the plugin, a private bpffs.

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	cri "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/cgpol/cgpol/pkg/cgroup"
	"github.com/cgpol/cgpol/pkg/enforce"
	"github.com/cgpol/cgpol/test/testenv"
)

// Image names that the node imports; nothing is pulled.
const (
	pauseImage = "localhost/cgpol-test/pause:1"
	probeImage = "localhost/cgpol-test/probe:1"
)

// criClient talks to the CRI of a containerd.
type criClient struct {
	runtime cri.RuntimeServiceClient
	images  cri.ImageServiceClient
	logDir  string // pods' log directories go here
}

func dialCRI(t testing.TB, address string) *criClient {
	t.Helper()
	conn, err := grpc.NewClient("unix://"+address, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	c := &criClient{runtime: cri.NewRuntimeServiceClient(conn), images: cri.NewImageServiceClient(conn), logDir: t.TempDir()}
	deadline := time.Now().Add(30 * time.Second)
	for {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		st, err := c.runtime.Status(ctx, &cri.StatusRequest{})
		cancel()
		if err == nil && runtimeReady(st) {
			return c
		}
		if time.Now().After(deadline) {
			t.Fatalf("the CRI is not ready: %v %v", st, err)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func runtimeReady(st *cri.StatusResponse) bool {
	for _, c := range st.GetStatus().GetConditions() {
		if c.Type == cri.RuntimeReady {
			return c.Status
		}
	}
	return false
}

// pod is a pod sandbox with the config it was made with.
type pod struct {
	id      string
	config  *cri.PodSandboxConfig
	removed bool
}

// runPod runs a pod sandbox in the host's network namespace (no CNI), in
// the cgroup parent given, and removes it at the end of the test.
func (c *criClient) runPod(t testing.TB, name string, annotations map[string]string, parent cgroup.Cgroup) *pod {
	t.Helper()
	uid := randomID()[:16]
	config := &cri.PodSandboxConfig{
		Metadata:     &cri.PodSandboxMetadata{Name: name, Uid: uid, Namespace: "default"},
		Annotations:  annotations,
		LogDirectory: filepath.Join(c.logDir, uid),
		Linux: &cri.LinuxPodSandboxConfig{
			CgroupParent: parent.Path,
			SecurityContext: &cri.LinuxSandboxSecurityContext{
				NamespaceOptions: &cri.NamespaceOption{Network: cri.NamespaceMode_NODE},
			},
		},
	}
	r, err := c.runtime.RunPodSandbox(context.Background(), &cri.RunPodSandboxRequest{Config: config})
	if err != nil {
		t.Fatalf("run pod %s: %v", name, err)
	}
	p := &pod{id: r.PodSandboxId, config: config}
	t.Cleanup(func() { c.removePod(t, p) })
	return p
}

// removePod stops and removes a pod and its containers, as the kubelet does.
func (c *criClient) removePod(t testing.TB, p *pod) {
	t.Helper()
	if p.removed {
		return
	}
	p.removed = true
	ctx := context.Background()
	if _, err := c.runtime.StopPodSandbox(ctx, &cri.StopPodSandboxRequest{PodSandboxId: p.id}); err != nil {
		t.Errorf("stop pod %s: %v", p.config.Metadata.Name, err)
	}
	if _, err := c.runtime.RemovePodSandbox(ctx, &cri.RemovePodSandboxRequest{PodSandboxId: p.id}); err != nil {
		t.Errorf("remove pod %s: %v", p.config.Metadata.Name, err)
	}
}

// createContainer creates a container of the probe image running command.
func (c *criClient) createContainer(p *pod, name string, command ...string) (string, error) {
	r, err := c.runtime.CreateContainer(context.Background(), &cri.CreateContainerRequest{
		PodSandboxId: p.id,
		Config: &cri.ContainerConfig{
			Metadata: &cri.ContainerMetadata{Name: name},
			Image:    &cri.ImageSpec{Image: probeImage},
			Command:  command,
			LogPath:  name + ".log",
		},
		SandboxConfig: p.config,
	})
	if err != nil {
		return "", err
	}
	return r.ContainerId, nil
}

func (c *criClient) startContainer(id string) error {
	_, err := c.runtime.StartContainer(context.Background(), &cri.StartContainerRequest{ContainerId: id})
	return err
}

// run creates and starts a container and fails the test if it cannot.
func (c *criClient) run(t testing.TB, p *pod, name string, command ...string) string {
	t.Helper()
	id, err := c.createContainer(p, name, command...)
	if err != nil {
		t.Fatalf("create %s: %v", name, err)
	}
	if err := c.startContainer(id); err != nil {
		t.Fatalf("start %s: %v", name, err)
	}
	return id
}

// removeContainer stops and removes a container.
func (c *criClient) removeContainer(t testing.TB, id string) {
	t.Helper()
	ctx := context.Background()
	if _, err := c.runtime.StopContainer(ctx, &cri.StopContainerRequest{ContainerId: id}); err != nil {
		t.Fatalf("stop %s: %v", id, err)
	}
	if _, err := c.runtime.RemoveContainer(ctx, &cri.RemoveContainerRequest{ContainerId: id}); err != nil {
		t.Fatalf("remove %s: %v", id, err)
	}
}

// output waits for a container to exit and returns the lines it printed.
func (c *criClient) output(t testing.TB, p *pod, id, name string) string {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		r, err := c.runtime.ContainerStatus(context.Background(), &cri.ContainerStatusRequest{ContainerId: id})
		if err != nil {
			t.Fatal(err)
		}
		if r.Status.State == cri.ContainerState_CONTAINER_EXITED {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s did not exit: %v", name, r.Status.State)
		}
		time.Sleep(50 * time.Millisecond)
	}
	// CRI log lines: "<time> <stream> <P|F> <text>".
	data, err := os.ReadFile(filepath.Join(p.config.LogDirectory, name+".log"))
	if err != nil {
		t.Fatal(err)
	}
	var out strings.Builder
	for _, line := range strings.Split(strings.TrimSpace(string(data)), "\n") {
		if f := strings.SplitN(line, " ", 4); len(f) == 4 {
			out.WriteString(f[3] + "\n")
		}
	}
	return out.String()
}

// probe runs the probe inside a running container (CRI ExecSync, which
// joins the container's cgroup) and returns its results.
func (c *criClient) probe(t testing.TB, id string, args ...string) map[string]string {
	t.Helper()
	r, err := c.runtime.ExecSync(context.Background(), &cri.ExecSyncRequest{
		ContainerId: id, Cmd: append([]string{"/probe"}, args...), Timeout: 20,
	})
	if err != nil {
		t.Fatalf("exec the probe in %s: %v", id, err)
	}
	if r.ExitCode != 0 {
		t.Fatalf("exec the probe in %s: exit %d: %s", id, r.ExitCode, r.Stderr)
	}
	return testenv.ParseProbe(string(r.Stdout))
}

// node is containerd with NRI and cgpol-nri, as the shipped configs set it up.
type node struct {
	containerd *testenv.Containerd
	cri        *criClient
	root       string // the bpffs root of cgpol's pins
	objs       *enforce.Objects
	parent     cgroup.Cgroup // the pods' cgroup parent
	plugin     string        // the plugin binary
	nodeConfig string        // cgpol's node configuration
	pluginLog  string        // the launched plugin's log file
	nriSocket  string
	pluginDir  string
}

// nodeOptions choose how the node is set up.
type nodeOptions struct {
	preinstall bool // containerd launches the plugin from its plugin_path
	required   bool // the shipped drop-in that makes the plugin mandatory
	validator  bool // NRI's default validator, with no plugin required
	// configure, if set, runs before containerd starts and returns more
	// config files for containerd to import.
	configure func(t testing.TB, n *node) (imports []string)
}

// newNode starts containerd with the shipped NRI drop-ins (paths moved into
// temp dirs), imports the images, and waits for the plugin if containerd
// launches it.
func newNode(t testing.TB, o nodeOptions) *node {
	t.Helper()
	testenv.Privileged(t)
	n := &node{parent: testenv.NewRuntimeCgroup(t), plugin: testenv.Build(t, "./plugin")}
	n.root = testenv.BPFFS(t)
	dir := t.TempDir()
	n.nodeConfig = filepath.Join(dir, "cgpol.yaml")
	writeFile(t, n.nodeConfig, "bpffs: "+n.root+"\n")

	n.pluginDir, n.nriSocket = filepath.Join(dir, "plugins"), filepath.Join(dir, "nri.sock")
	confDir := filepath.Join(dir, "conf.d")
	for _, d := range []string{n.pluginDir, confDir} {
		if err := os.Mkdir(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	if o.preinstall {
		if err := os.Symlink(n.plugin, filepath.Join(n.pluginDir, "10-cgpol")); err != nil {
			t.Fatal(err)
		}
		n.pluginLog = filepath.Join(dir, "cgpol-nri.log")
		writeFile(t, filepath.Join(confDir, "10-cgpol.conf"), shipped(t, "configs/nri/10-cgpol.conf",
			"/etc/cgpol/config.yaml", n.nodeConfig,
			"/var/log/cgpol-nri.log", n.pluginLog,
			"logLevel: info", "logLevel: debug"))
	}
	enable := filepath.Join(dir, "cgpol-nri.toml")
	writeFile(t, enable, shipped(t, "configs/containerd/cgpol-nri.toml",
		"/opt/nri/plugins", n.pluginDir,
		"/etc/nri/conf.d", confDir,
		"/var/run/nri/nri.sock", n.nriSocket))
	imports := []string{enable}
	if o.required {
		imports = append(imports, filepath.Join(testenv.ModuleRoot(t), "configs/containerd/cgpol-nri-required.toml"))
	}
	var extra string
	if o.validator {
		extra += "[plugins.\"io.containerd.nri.v1.nri\".default_validator]\n  enable = true\n"
	}
	if o.configure != nil {
		imports = append(imports, o.configure(t, n)...)
	}
	n.containerd = testenv.StartContainerd(t, testenv.ContainerdConfig{Imports: imports, Extra: extra, SandboxImage: pauseImage})
	n.containerd.Import(t, testenv.OCIArchive(t, testenv.RootfsTar(t), []string{"/bin/sleep", "2147483647"}, pauseImage, probeImage))
	n.cri = dialCRI(t, n.containerd.Address)
	if o.preinstall {
		waitForLog(t, n.pluginLog, "msg=synchronized", 1)
	}
	objs, err := enforce.Install(n.root)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(objs.Close)
	n.objs = objs
	t.Cleanup(func() {
		if t.Failed() && n.pluginLog != "" {
			data, _ := os.ReadFile(n.pluginLog)
			t.Logf("cgpol-nri log:\n%s", data)
		}
	})
	return n
}

// shipped returns a file of the repository with old/new replacements made.
func shipped(t testing.TB, file string, oldnew ...string) string {
	t.Helper()
	data, err := os.ReadFile(filepath.Join(testenv.ModuleRoot(t), file))
	if err != nil {
		t.Fatal(err)
	}
	s := string(data)
	for i := 0; i < len(oldnew); i += 2 {
		if !strings.Contains(s, oldnew[i]) {
			t.Fatalf("%s no longer holds %q", file, oldnew[i])
		}
		s = strings.ReplaceAll(s, oldnew[i], oldnew[i+1])
	}
	return s
}

func writeFile(t testing.TB, file, content string) {
	t.Helper()
	if err := os.WriteFile(file, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
}

// waitForLog waits until a log file holds a string at least n times.
func waitForLog(t testing.TB, file, s string, n int) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		data, _ := os.ReadFile(file)
		if strings.Count(string(data), s) >= n {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: no %q (%d times) after 30s:\n%s", file, s, n, data)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// launchedPlugin returns the pid of the plugin that containerd launched.
func (n *node) launchedPlugin(t testing.TB) int {
	t.Helper()
	pid, ok := n.findLaunchedPlugin()
	if !ok {
		t.Fatal("the plugin that containerd launched is not running")
	}
	return pid
}

// findLaunchedPlugin looks for a live process of the plugin that
// containerd launches from its plugin_path.
func (n *node) findLaunchedPlugin() (int, bool) {
	want := filepath.Join(n.pluginDir, "10-cgpol")
	entries, _ := os.ReadDir("/proc")
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		if cmdline, err := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid)); err == nil &&
			strings.SplitN(string(cmdline), "\x00", 2)[0] == want {
			return pid, true
		}
	}
	return 0, false
}

// externalPlugin runs the plugin as an external one on the node's NRI
// socket, and waits until it has synchronized. Its log is returned.
func (n *node) externalPlugin(t testing.TB) (cmd *exec.Cmd, log string) {
	t.Helper()
	log = filepath.Join(t.TempDir(), "external.log")
	cmd = exec.Command(n.plugin, "--socket", n.nriSocket, "--config", n.nodeConfig, "--log-level", "debug", "--log-file", log)
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		cmd.Process.Signal(syscall.SIGTERM)
		cmd.Wait()
		if t.Failed() {
			data, _ := os.ReadFile(log)
			t.Logf("external cgpol-nri log:\n%s", data)
		}
	})
	waitForLog(t, log, "msg=synchronized", 1)
	return cmd, log
}

// attached reports whether a container has the plugin's policy pinned.
func (n *node) attached(t testing.TB, container string) (enforce.Status, bool) {
	t.Helper()
	return attachment(t, n.objs, container)
}

// firstLine returns a file's first line that holds every string of s.
func firstLine(file string, s ...string) string {
	f, err := os.Open(file)
	if err != nil {
		return ""
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
next:
	for sc.Scan() {
		for _, want := range s {
			if !strings.Contains(sc.Text(), want) {
				continue next
			}
		}
		return sc.Text()
	}
	return ""
}
