package enforce

import (
	"fmt"
	"os/exec"
	"slices"
	"strconv"
	"strings"
	"testing"

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
	cmd := testenv.CommandIn(b, cg, testenv.Probe(b), "loop", "udp", target, strconv.Itoa(connectsPerRound))
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
