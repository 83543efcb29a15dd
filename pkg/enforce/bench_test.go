package enforce

import (
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/cgpol/cgpol/pkg/cgroup"
	"github.com/cgpol/cgpol/pkg/compile"
	"github.com/cgpol/cgpol/pkg/policy"
	"github.com/cgpol/cgpol/test/testenv"
)

// connectsPerRound is how many UDP connect(2) calls one probe run makes.
const connectsPerRound = 200_000

// BenchmarkConnectOverhead measures what enforcement adds to a UDP connect(2)
// loop: a probe in a cgroup with a policy of 1,000 port ranges against the
// same probe in a sibling cgroup with no policy, alternating in one run. The
// port is allowed, so every call takes the full lookup path. It reports the
// median ns per call of each and their ratio (goal: at most 1.10).
func BenchmarkConnectOverhead(b *testing.B) {
	objs := setupBench(b)
	withPolicy := testenv.NewCgroup(b)
	sibling := testenv.NewCgroup(b)
	var set policy.PortSet
	for i := range 1000 { // 1-30, 61-90, ...: 1,000 ranges over the whole port space
		set.Add(policy.UDP, policy.PortRange{Low: uint16(1 + i*60), High: uint16(30 + i*60)})
	}
	if len(set.Ranges(policy.UDP)) != 1000 {
		b.Fatalf("policy has %d ranges, want 1000", len(set.Ranges(policy.UDP)))
	}
	if err := objs.Attach(withPolicy, compile.Compile(policy.Policy{EgressPorts: &set}), Label{Name: "bench"}); err != nil {
		b.Fatal(err)
	}
	port := 1 + 499*60 + 10 // inside the 500th range
	target := fmt.Sprintf("127.0.0.1:%d", port)
	if !set.Contains(policy.UDP, uint16(port)) {
		b.Fatalf("port %d is not allowed by the policy", port)
	}

	var with, without []float64
	for b.Loop() {
		without = append(without, probeLoop(b, sibling, target))
		with = append(with, probeLoop(b, withPolicy, target))
	}
	mw, mo := median(with), median(without)
	b.ReportMetric(mw, "ns/connect-policy")
	b.ReportMetric(mo, "ns/connect-baseline")
	b.ReportMetric(mw/mo, "ratio")
}

func setupBench(b *testing.B) *Objects {
	b.Helper()
	testenv.Privileged(b)
	objs, err := Install(testenv.BPFFS(b))
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(objs.Close)
	return objs
}

// probeLoop runs connectsPerRound UDP connects in cg and returns ns per call.
func probeLoop(b *testing.B, cg cgroup.Cgroup, target string) float64 {
	b.Helper()
	return probeRun(b, cg, "loop", target)
}

// probeRun runs a probe loop ("loop": one destination; "spread": a new one
// each call) and returns ns per call.
func probeRun(b *testing.B, cg cgroup.Cgroup, mode, target string) float64 {
	b.Helper()
	cmd := testenv.CommandIn(b, cg, testenv.Probe(b), mode, "udp", target, strconv.Itoa(connectsPerRound))
	out, err := cmd.Output()
	if err != nil {
		if exit, ok := err.(*exec.ExitError); ok {
			b.Fatalf("probe: %v: %s", err, exit.Stderr)
		}
		b.Fatal(err)
	}
	// "loop udp 127.0.0.1:9: 312.4 ns/op"
	fields := strings.Fields(string(out))
	if len(fields) != 5 || fields[4] != "ns/op" {
		b.Fatalf("probe output %q: calls failed, or not a loop result", out)
	}
	ns, err := strconv.ParseFloat(fields[3], 64)
	if err != nil {
		b.Fatalf("probe output %q: %v", out, err)
	}
	return ns
}

func median(xs []float64) float64 {
	s := slices.Clone(xs)
	slices.Sort(s)
	return s[len(s)/2]
}

// BenchmarkConnectOverheadAtScale reruns the connect benchmark at scale:
// $CGPOL_BENCH_CGROUPS attached cgroups (default 1,000), each with a policy
// of $CGPOL_BENCH_RULES address rules (default 10,000 /24s, inside 127/8 so
// that every destination is local). The probe dials an address that a rule
// allows, so every call takes the address rule path. It also reports the
// kernel memory that each attached cgroup costs, from MemAvailable before
// and after attaching, and the attach time.
func BenchmarkConnectOverheadAtScale(b *testing.B) {
	objs := setupBench(b)
	cgroups, rules := envInt(b, "CGPOL_BENCH_CGROUPS", 1000), envInt(b, "CGPOL_BENCH_RULES", 10000)
	var text []string
	for i := range rules {
		text = append(text, fmt.Sprintf("127.%d.%d.0/24", 1+i/250, i%250))
	}
	p, _, err := policy.FromAnnotations(map[string]string{policy.KeyAllowCIDRs: strings.Join(text, ";")})
	if err != nil {
		b.Fatal(err)
	}
	entries := compile.Compile(p)
	target := "127.20.100.1:53" // in 127.20.100.0/24
	if !p.EgressCIDRs.Allows(policy.UDP, netip.MustParseAddrPort(target).Addr(), 53) {
		b.Fatalf("%s is not allowed by the policy", target)
	}

	dirs := make([]cgroup.Cgroup, cgroups)
	for i := range dirs {
		dirs[i] = testenv.NewCgroup(b)
	}
	before := kernelMemory(b)
	start := time.Now()
	for i, cg := range dirs {
		if err := objs.Attach(cg, entries, Label{Name: fmt.Sprint("bench-", i)}); err != nil {
			b.Fatal(err)
		}
	}
	attachTime := time.Since(start)
	used := kernelMemory(b) - before
	measured := dirs[len(dirs)-1]
	sibling := testenv.NewCgroup(b)

	// "loop" repeats one destination, as the core benchmark does; "spread"
	// makes every call go somewhere new (127.20.0.0-127.20.234.95, all
	// allowed: 127.20.0.0 plus up to 60,000), so that no per-socket memo helps.
	var with, without, withSpread, withoutSpread []float64
	for b.Loop() {
		without = append(without, probeRun(b, sibling, "loop", target))
		with = append(with, probeRun(b, measured, "loop", target))
		withoutSpread = append(withoutSpread, probeRun(b, sibling, "spread", "127.20.0.0:53"))
		withSpread = append(withSpread, probeRun(b, measured, "spread", "127.20.0.0:53"))
	}
	mw, mo := median(with), median(without)
	b.ReportMetric(mw, "ns/connect-policy")
	b.ReportMetric(mo, "ns/connect-baseline")
	b.ReportMetric(mw/mo, "ratio")
	b.ReportMetric(median(withSpread)/median(withoutSpread), "ratio-spread")
	b.ReportMetric(float64(used)/float64(cgroups)/1024, "KiB/cgroup")
	b.ReportMetric(float64(attachTime.Milliseconds())/float64(cgroups), "ms/attach")
}

// BenchmarkMemoryPerCgroup reports the kernel memory that an attached cgroup
// costs with a small policy (allow-ports 80,443): programs are shared, so
// this is its links, storage, slot and policy.
func BenchmarkMemoryPerCgroup(b *testing.B) {
	objs := setupBench(b)
	cgroups := envInt(b, "CGPOL_BENCH_CGROUPS", 1000)
	p, _, _ := policy.FromAnnotations(map[string]string{policy.KeyAllowPorts: "80,443"})
	entries := compile.Compile(p)
	dirs := make([]cgroup.Cgroup, cgroups)
	for i := range dirs {
		dirs[i] = testenv.NewCgroup(b)
	}
	before := kernelMemory(b)
	for _, cg := range dirs {
		if err := objs.Attach(cg, entries, Label{Name: "bench"}); err != nil {
			b.Fatal(err)
		}
	}
	used := kernelMemory(b) - before
	for b.Loop() {
	}
	b.ReportMetric(float64(used)/float64(cgroups)/1024, "KiB/cgroup")
}

func envInt(b *testing.B, name string, fallback int) int {
	b.Helper()
	v := os.Getenv(name)
	if v == "" {
		return fallback
	}
	n, err := strconv.Atoi(v)
	if err != nil || n < 1 {
		b.Fatalf("%s=%q: want a positive number", name, v)
	}
	return n
}

// kernelMemory returns the kernel memory charged to this process's memory
// cgroup, in bytes. The kernel charges BPF maps, their elements and cgroup
// storages to the memory cgroup of the process that made them: this one.
func kernelMemory(b *testing.B) int64 {
	b.Helper()
	data, err := os.ReadFile("/proc/self/cgroup")
	if err != nil {
		b.Fatal(err)
	}
	for _, line := range strings.Split(string(data), "\n") {
		// cgroup v1: "4:memory:/path"
		if parts := strings.SplitN(line, ":", 3); len(parts) == 3 && slices.Contains(strings.Split(parts[1], ","), "memory") {
			return readInt(b, "/sys/fs/cgroup/memory"+parts[2]+"/memory.kmem.usage_in_bytes")
		}
	}
	// cgroup v2: the "kernel" line of memory.stat.
	mount, err := cgroup.Mount()
	if err != nil {
		b.Fatal(err)
	}
	own, err := cgroup.OfPID(mount, os.Getpid())
	if err != nil {
		b.Fatal(err)
	}
	stat, err := os.ReadFile(own.Dir() + "/memory.stat")
	if err != nil {
		b.Fatalf("no memory accounting to measure with: %v", err)
	}
	for _, line := range strings.Split(string(stat), "\n") {
		if v, ok := strings.CutPrefix(line, "kernel "); ok {
			n, _ := strconv.ParseInt(v, 10, 64)
			return n
		}
	}
	b.Fatal("memory.stat has no kernel line")
	return 0
}

func readInt(b *testing.B, file string) int64 {
	b.Helper()
	data, err := os.ReadFile(file)
	if err != nil {
		b.Fatal(err)
	}
	n, err := strconv.ParseInt(strings.TrimSpace(string(data)), 10, 64)
	if err != nil {
		b.Fatal(err)
	}
	return n
}

// BenchmarkOpenAttachDetach times, in one process, what the OCI hook does
// for a container: open the install, attach a 100-port policy to a fresh
// cgroup, and (as poststop does) open again and detach. Process start-up is
// not included; the hook's own benchmark (test/e2e) measures exec to exit.
func BenchmarkOpenAttachDetach(b *testing.B) {
	objs := setupBench(b)
	root := objs.Root
	var items []string
	for i := range 100 {
		items = append(items, fmt.Sprint(20000+2*i))
	}
	p, _, _ := policy.FromAnnotations(map[string]string{policy.KeyAllowPorts: strings.Join(items, ",")})
	var open, attach, detach []float64
	for b.Loop() {
		cg := testenv.NewCgroup(b)
		t0 := time.Now()
		o, err := Open(root)
		if err != nil {
			b.Fatal(err)
		}
		t1 := time.Now()
		if err := o.Attach(cg, compile.Compile(p), Label{Name: "bench", Container: cg.Path}); err != nil {
			b.Fatal(err)
		}
		t2 := time.Now()
		o.Close()
		o, err = Open(root)
		if err != nil {
			b.Fatal(err)
		}
		if err := o.Detach(cg.ID); err != nil {
			b.Fatal(err)
		}
		o.Close()
		t3 := time.Now()
		open = append(open, float64(t1.Sub(t0).Microseconds()))
		attach = append(attach, float64(t2.Sub(t1).Microseconds()))
		detach = append(detach, float64(t3.Sub(t2).Microseconds()))
	}
	b.ReportMetric(median(open), "µs-open")
	b.ReportMetric(median(attach), "µs-attach")
	b.ReportMetric(median(detach), "µs-open+detach")
}
