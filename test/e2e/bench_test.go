package e2e

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os/exec"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/cgpol/cgpol/pkg/cgroup"
	"github.com/cgpol/cgpol/pkg/enforce"
	"github.com/cgpol/cgpol/test/testenv"
)

// hundredPorts is a policy of 100 separate ports: 20000, 20002, ..., 20198.
func hundredPorts() string {
	var items []string
	for i := range 100 {
		items = append(items, fmt.Sprint(20000+2*i))
	}
	return strings.Join(items, ",")
}

// timeExec runs a program with the state on stdin and returns the wall time
// from exec to exit.
func timeExec(b *testing.B, state []byte, name string, args ...string) time.Duration {
	b.Helper()
	cmd := exec.Command(name, args...)
	var stderr bytes.Buffer
	cmd.Stdin, cmd.Stderr = bytes.NewReader(state), &stderr
	start := time.Now()
	err := cmd.Run()
	elapsed := time.Since(start)
	if err != nil {
		b.Fatalf("%s %v: %v: %s", name, args, err, stderr.String())
	}
	return elapsed
}

// freshContainer makes a fresh cgroup holding a sleeping process, as a
// runtime does before createRuntime, and returns it and the state.
func freshContainer(b *testing.B, id, ports string) (cgroup.Cgroup, []byte) {
	b.Helper()
	cg := testenv.NewCgroup(b)
	cmd := testenv.CommandIn(b, cg, "/bin/sleep", "600")
	if err := cmd.Start(); err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	state, _ := json.Marshal(map[string]any{"ociVersion": "1.0.2", "id": id, "status": "creating", "pid": cmd.Process.Pid,
		"annotations": map[string]string{"cgpol.io/allow-ports": ports}})
	return cg, state
}

func p50(ds []time.Duration) float64 {
	s := slices.Clone(ds)
	slices.Sort(s)
	return float64(s[len(s)/2]) / float64(time.Millisecond)
}

// BenchmarkHookLatency measures cgpol-hook createRuntime from exec to exit
// on a fresh cgroup with a policy of 100 ports, against the same work done
// seed-style (test/seedhook: load the BPF object and attach it anew for
// every container, no pins), alternating in one run. The programs are
// installed before, as on a node that has run a container already. It
// reports both p50s, their ratio (hook/seed-style) and the p50 of poststop.
func BenchmarkHookLatency(b *testing.B) {
	testenv.Privileged(b)
	root := testenv.BPFFS(b)
	hook, seed := testenv.Build(b, "./hook"), testenv.Build(b, "./test/seedhook")
	objs, err := enforce.Install(root)
	if err != nil {
		b.Fatal(err)
	}
	objs.Close()
	ports := hundredPorts()
	denied := testenv.ListenTCP(b, "127.0.0.1")
	addr := fmt.Sprintf("127.0.0.1:%d", denied)

	var hookTimes, seedTimes, stopTimes []time.Duration
	n := 0
	for b.Loop() {
		n++
		id := fmt.Sprintf("bench-%d", n)
		hookCg, state := freshContainer(b, id, ports)
		hookTimes = append(hookTimes, timeExec(b, state, hook, "--bpffs", root, "--config", "/nonexistent", "createRuntime"))
		seedCg, seedState := freshContainer(b, id+"-seed", ports)
		seedTimes = append(seedTimes, timeExec(b, seedState, seed))
		if n == 1 { // both really enforce
			for name, cg := range map[string]cgroup.Cgroup{"hook": hookCg, "seed-style": seedCg} {
				if got := testenv.RunProbe(b, cg, "connect", "tcp", addr)["connect tcp "+addr]; got != "EPERM" {
					b.Fatalf("%s: connect to %s: %q, want EPERM", name, addr, got)
				}
			}
		}
		stopped, _ := json.Marshal(map[string]any{"id": id, "status": "stopped"})
		stopTimes = append(stopTimes, timeExec(b, stopped, hook, "--bpffs", root, "--config", "/nonexistent", "poststop"))
	}
	b.ReportMetric(p50(hookTimes), "hook-p50-ms")
	b.ReportMetric(p50(seedTimes), "seed-p50-ms")
	b.ReportMetric(p50(hookTimes)/p50(seedTimes), "ratio")
	b.ReportMetric(p50(stopTimes), "poststop-p50-ms")
}

// BenchmarkRuncRun measures `runc run` of a trivial container (busybox
// true) whose config.json has cgpol's hooks and a 100-port policy, against
// the same container without hooks, alternating in one run. It reports both
// p50s and their ratio (goal: at most 1.05).
func BenchmarkRuncRun(b *testing.B) {
	r := newRunc(b)
	withHook := r.bundle(b, map[string]string{"cgpol.io/allow-ports": hundredPorts()}, true, "/bin/true")
	without := r.bundle(b, map[string]string{"cgpol.io/allow-ports": hundredPorts()}, false, "/bin/true")
	run := func(id, bundle string) time.Duration {
		cmd := r.command("run", "--bundle", bundle, id)
		var stderr bytes.Buffer
		cmd.Stderr = &stderr
		start := time.Now()
		err := cmd.Run()
		elapsed := time.Since(start)
		if err != nil {
			b.Fatalf("runc run: %v: %s", err, stderr.String())
		}
		return elapsed
	}
	// Warm up: the first run installs cgpol's programs.
	run(containerID(b, "warm"), withHook)

	var with, base []time.Duration
	n := 0
	for b.Loop() {
		n++
		base = append(base, run(containerID(b, fmt.Sprintf("base-%d", n)), without))
		with = append(with, run(containerID(b, fmt.Sprintf("hook-%d", n)), withHook))
	}
	AssertNoAttachments(b, r.bpffs)
	b.ReportMetric(p50(with), "hook-p50-ms")
	b.ReportMetric(p50(base), "baseline-p50-ms")
	b.ReportMetric(p50(with)/p50(base), "ratio")
}
