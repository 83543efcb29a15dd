package main

// End-to-end tests: containerd v2.4.2 with NRI, set up with the shipped
// drop-ins, launches cgpol-nri; the tests drive its CRI as the kubelet
// would, with pods in the host's network namespace and local images.

import (
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/cgpol/cgpol/pkg/policy"
	"github.com/cgpol/cgpol/test/testenv"
)

// tolerate is the annotation that the shipped required-plugins drop-in lets
// pods use to be created while cgpol-nri is down.
const tolerate = "tolerate-missing-plugins.noderesource.dev"

func TestContainerdEndToEnd(t *testing.T) {
	n := newNode(t, nodeOptions{preinstall: true, required: true})
	allowed, denied := testenv.ListenTCP(t, "127.0.0.1"), testenv.ListenTCP(t, "127.0.0.1")
	allowOne := map[string]string{policy.KeyAllowPorts: fmt.Sprintf("tcp:%d", allowed)}
	sleep := []string{"/bin/sleep", "3600"}

	t.Run("annotated pod: the first connect is judged", func(t *testing.T) {
		p := n.cri.runPod(t, "annotated", allowOne, n.parent)
		id := n.cri.run(t, p, "probe", append([]string{"/probe"}, connects(denied, allowed)...)...)
		got := testenv.ParseProbe(n.cri.output(t, p, id, "probe"))
		expectConnects(t, "probe", got, map[int]string{denied: "EPERM", allowed: "ok"})
		line := firstLine(n.pluginLog, `msg="policy attached"`, "container_id="+id)
		for _, want := range []string{"namespace=default", "pod=annotated", "container=probe",
			fmt.Sprintf(`policy="cgpol.io/allow-ports=\"tcp:%d\""`, allowed), "source=annotations"} {
			if !strings.Contains(line, want) {
				t.Errorf("the plugin's log line lacks %s: %s", want, line)
			}
		}
	})

	t.Run("unannotated pod is left alone", func(t *testing.T) {
		p := n.cri.runPod(t, "plain", map[string]string{"example.com/team": "a"}, n.parent)
		id := n.cri.run(t, p, "probe", append([]string{"/probe"}, connects(denied, allowed)...)...)
		got := testenv.ParseProbe(n.cri.output(t, p, id, "probe"))
		expectConnects(t, "probe", got, map[int]string{denied: "ok", allowed: "ok"})
		if _, ok := n.attached(t, id); ok {
			t.Error("a policy was attached to an unannotated pod")
		}
	})

	t.Run("invalid annotation fails CreateContainer", func(t *testing.T) {
		p := n.cri.runPod(t, "invalid", map[string]string{policy.KeyAllowPorts: "80,99999"}, n.parent)
		_, err := n.cri.createContainer(p, "app", sleep...)
		want := `cgpol: invalid annotation cgpol.io/allow-ports="80,99999": item 2 "99999": port 99999 is out of range; want 1-65535`
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Fatalf("CreateContainer: got %v, want an error with %s", err, want)
		}
		t.Logf("the kubelet would report: %v", err)
	})

	t.Run("a failed attach fails the start before the entrypoint runs", func(t *testing.T) {
		port, accepted := countingListener(t)
		p := n.cri.runPod(t, "unenforceable", allowOne, n.parent)
		id, err := n.cri.createContainer(p, "probe", append([]string{"/probe"}, connects(port)...)...)
		if err != nil {
			t.Fatal(err)
		}
		// The node configuration is read for each container: make cgpol
		// unable to install its objects for this one.
		good, err := os.ReadFile(n.nodeConfig)
		if err != nil {
			t.Fatal(err)
		}
		writeFile(t, n.nodeConfig, "bpffs: /proc/cgpol-nowhere\n")
		err = n.cri.startContainer(id)
		writeFile(t, n.nodeConfig, string(good))
		if want := `cgpol: enforce cgpol.io/allow-ports="tcp:`; err == nil || !strings.Contains(err.Error(), want) {
			t.Fatalf("StartContainer: got %v, want an error with %q", err, want)
		}
		t.Logf("the kubelet would report: %v", err)
		time.Sleep(500 * time.Millisecond)
		if n := accepted(); n != 0 {
			t.Errorf("the entrypoint ran: %d connections", n)
		}
		if log, _ := os.ReadFile(filepath.Join(p.config.LogDirectory, "probe.log")); len(log) != 0 {
			t.Errorf("the entrypoint ran and printed: %s", log)
		}
	})

	t.Run("pod removal leaves no pins", func(t *testing.T) {
		p := n.cri.runPod(t, "scoped", map[string]string{
			policy.KeyAllowPorts:                          fmt.Sprintf("tcp:%d", allowed),
			policy.ScopedKey(policy.KeyAllowPorts, "web"): fmt.Sprintf("tcp:%d", denied),
		}, n.parent)
		web, sidecar := n.cri.run(t, p, "web", sleep...), n.cri.run(t, p, "sidecar", sleep...)
		expectConnects(t, "web", n.cri.probe(t, web, connects(denied, allowed)...), map[int]string{denied: "ok", allowed: "EPERM"})
		expectConnects(t, "sidecar", n.cri.probe(t, sidecar, connects(denied, allowed)...), map[int]string{denied: "EPERM", allowed: "ok"})
		for _, id := range []string{web, sidecar} {
			// The cgroupfs driver's layout: <cgroup_parent>/<container id>.
			if st, ok := n.attached(t, id); !ok || st.Cgroup != n.parent.Path+"/"+id {
				t.Errorf("container %s: attached %v at %q, want %s/%s", id, ok, st.Cgroup, n.parent.Path, id)
			}
		}
		n.cri.removePod(t, p)
		for _, id := range []string{web, sidecar} {
			if _, ok := n.attached(t, id); ok {
				t.Errorf("container %s: its policy outlived the pod", id)
			}
		}
		if pins, _ := os.ReadDir(filepath.Join(n.objs.Dir, "cgroup")); len(pins) != 0 {
			t.Errorf("pins left after the pod's removal: %v", pins)
		}
	})

	t.Run("plugin killed: containers stay enforced, synchronization repairs", func(t *testing.T) {
		p := n.cri.runPod(t, "long", allowOne, n.parent)
		web := n.cri.run(t, p, "web", sleep...)
		expectConnects(t, "web", n.cri.probe(t, web, connects(denied)...), map[int]string{denied: "EPERM"})

		pid := n.launchedPlugin(t)
		if err := syscall.Kill(pid, syscall.SIGKILL); err != nil {
			t.Fatal(err)
		}
		waitForLog(t, n.containerd.Log, `connection to plugin \"10-cgpol\" closed`, 1)

		// The policy is pinned: it holds without the plugin.
		expectConnects(t, "web, plugin killed", n.cri.probe(t, web, connects(denied, allowed)...),
			map[int]string{denied: "EPERM", allowed: "ok"})

		// required_plugins does not catch the first container created
		// after the plugin died: NRI (v0.12.3) drops a dead plugin only
		// after the event that finds it dead, and validates that event
		// with the plugin still listed. That container runs unrestricted.
		slipped := n.cri.run(t, p, "slipped", sleep...)
		expectConnects(t, "slipped, plugin down", n.cri.probe(t, slipped, connects(denied)...), map[int]string{denied: "ok"})
		// From then on, no container without the plugin ...
		_, err := n.cri.createContainer(p, "refused", sleep...)
		if want := `required plugin "cgpol" not present`; err == nil || !strings.Contains(err.Error(), want) {
			t.Fatalf("CreateContainer without the plugin: got %v, want %q", err, want)
		}
		t.Logf("the kubelet would report: %v", err)
		// ... unless the pod tolerates it: then it runs unrestricted too.
		tolerant := n.cri.runPod(t, "tolerant", map[string]string{
			policy.KeyAllowPorts: fmt.Sprintf("tcp:%d", allowed), tolerate: "true"}, n.parent)
		late := n.cri.run(t, tolerant, "late", sleep...)
		expectConnects(t, "late, plugin down", n.cri.probe(t, late, connects(denied)...), map[int]string{denied: "ok"})
		if pid, ok := n.findLaunchedPlugin(); ok {
			t.Errorf("containerd relaunched the plugin (pid %d); docs/nri.md says it does not", pid)
		}
		// A container removed meanwhile leaves its pins.
		n.cri.removeContainer(t, web)
		if _, ok := n.attached(t, web); !ok {
			t.Fatal("the removed container's policy is gone although no plugin ran")
		}

		// An external plugin takes over; its synchronization repairs all.
		n.externalPlugin(t)
		for name, id := range map[string]string{"slipped": slipped, "late": late} {
			if st, ok := n.attached(t, id); !ok || st.Manager != manager || st.Problem != "" {
				t.Errorf("%s: not attached after synchronization: %v %+v", name, ok, st)
			}
			expectConnects(t, name+", after synchronization", n.cri.probe(t, id, connects(denied, allowed)...),
				map[int]string{denied: "EPERM", allowed: "ok"})
		}
		if _, ok := n.attached(t, web); ok {
			t.Error("web: it is removed, but synchronization left its policy")
		}
		// And containers are created again.
		again := n.cri.runPod(t, "again", allowOne, n.parent)
		id := n.cri.run(t, again, "probe", append([]string{"/probe"}, connects(denied)...)...)
		expectConnects(t, "probe", testenv.ParseProbe(n.cri.output(t, again, id, "probe")), map[int]string{denied: "EPERM"})
		// Remove the pods while this plugin runs.
		for _, p := range []*pod{again, tolerant, p} {
			n.cri.removePod(t, p)
		}
	})

	if t.Failed() {
		return
	}
	deadline := time.Now().Add(5 * time.Second)
	for {
		st, err := n.objs.List()
		if err != nil {
			t.Fatal(err)
		}
		if len(st) == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("attachments left after every pod was removed: %+v", st)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// TestPluginTimeoutAndContainerdRestart stalls the plugin: NRI drops it
// after plugin_request_timeout, the container in flight goes on without it,
// and containerd kills the plugin and launches it again only when it
// restarts, whose synchronization then repairs.
func TestPluginTimeoutAndContainerdRestart(t *testing.T) {
	n := newNode(t, nodeOptions{preinstall: true, validator: true})
	allowed, denied := testenv.ListenTCP(t, "127.0.0.1"), testenv.ListenTCP(t, "127.0.0.1")
	p := n.cri.runPod(t, "shop", map[string]string{policy.KeyAllowPorts: fmt.Sprintf("tcp:%d", allowed)}, n.parent)
	web := n.cri.run(t, p, "web", "/bin/sleep", "3600")
	pid := n.launchedPlugin(t)

	// The plugin reads the node configuration for every container: make
	// that a FIFO with no writer, and the plugin hangs in CreateContainer.
	good, err := os.ReadFile(n.nodeConfig)
	if err != nil {
		t.Fatal(err)
	}
	os.Remove(n.nodeConfig)
	if err := syscall.Mkfifo(n.nodeConfig, 0o600); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	late := n.cri.run(t, p, "late", "/bin/sleep", "3600")
	took := time.Since(start)
	os.Remove(n.nodeConfig)
	writeFile(t, n.nodeConfig, string(good))
	waitForLog(t, n.containerd.Log, "closing plugin 10-cgpol, failed to handle CreateContainer request: context deadline exceeded", 1)
	if took < 2*time.Second {
		t.Errorf("the container was created in %v, before the plugin timed out (2s)", took)
	}
	expectConnects(t, "late, plugin timed out", n.cri.probe(t, late, connects(denied)...), map[int]string{denied: "ok"})
	// The dropped plugin is gone (containerd kills it), and none comes back.
	deadline := time.Now().Add(10 * time.Second)
	for syscall.Kill(pid, 0) == nil && time.Now().Before(deadline) {
		time.Sleep(50 * time.Millisecond)
	}
	if pid, ok := n.findLaunchedPlugin(); ok {
		t.Errorf("a plugin runs (pid %d) after NRI dropped it", pid)
	}
	// A pod can require the plugin by itself, with the validator enabled.
	strict := n.cri.runPod(t, "strict", map[string]string{"required-plugins.noderesource.dev": "[cgpol]"}, n.parent)
	_, err = n.cri.createContainer(strict, "app", "/bin/sleep", "3600")
	if want := `required plugin "cgpol" not present`; err == nil || !strings.Contains(err.Error(), want) {
		t.Errorf("CreateContainer in a pod that requires the plugin: got %v, want %q", err, want)
	}

	// containerd launches its plugins again when it starts, and the
	// containers run on meanwhile.
	n.containerd.Restart(t)
	n.cri = dialCRI(t, n.containerd.Address)
	waitForLog(t, n.pluginLog, "msg=synchronized", 2)
	for name, id := range map[string]string{"web": web, "late": late} {
		expectConnects(t, name+", after the restart", n.cri.probe(t, id, connects(denied, allowed)...),
			map[int]string{denied: "EPERM", allowed: "ok"})
	}
}

func TestExternalPluginReconnects(t *testing.T) {
	n := newNode(t, nodeOptions{})
	allowed, denied := testenv.ListenTCP(t, "127.0.0.1"), testenv.ListenTCP(t, "127.0.0.1")
	_, log := n.externalPlugin(t)

	n.containerd.Restart(t)
	n.cri = dialCRI(t, n.containerd.Address)
	waitForLog(t, log, "msg=synchronized", 2)

	p := n.cri.runPod(t, "shop", map[string]string{policy.KeyAllowPorts: fmt.Sprintf("tcp:%d", allowed)}, n.parent)
	id := n.cri.run(t, p, "probe", append([]string{"/probe"}, connects(denied, allowed)...)...)
	expectConnects(t, "probe", testenv.ParseProbe(n.cri.output(t, p, id, "probe")), map[int]string{denied: "EPERM", allowed: "ok"})
}

// countingListener listens on a free loopback port and counts the
// connections that it accepts.
func countingListener(t *testing.T) (port int, accepted func() int64) {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	var n atomic.Int64
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			n.Add(1)
			c.Close()
		}
	}()
	return l.Addr().(*net.TCPAddr).Port, n.Load
}
