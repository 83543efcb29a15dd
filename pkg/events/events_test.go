package events

import (
	"errors"
	"net/netip"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/cgpol/cgpol/pkg/cgroup"
	"github.com/cgpol/cgpol/pkg/compile"
	"github.com/cgpol/cgpol/pkg/enforce"
	"github.com/cgpol/cgpol/pkg/policy"
	"github.com/cgpol/cgpol/test/testenv"
)

func setup(t *testing.T, ann map[string]string) (*enforce.Objects, cgroup.Cgroup) {
	t.Helper()
	testenv.Privileged(t)
	objs, err := enforce.Install(testenv.BPFFS(t))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(objs.Close)
	cg := testenv.NewCgroup(t)
	p, _, err := policy.FromAnnotations(ann)
	if err != nil {
		t.Fatal(err)
	}
	if err := objs.Attach(cg, compile.Compile(p), enforce.Label{Name: "web", Container: "c0ffee", Manager: "test"}); err != nil {
		t.Fatal(err)
	}
	return objs, cg
}

// run runs the probe in cg and returns its pid.
func run(t *testing.T, cg cgroup.Cgroup, args ...string) int {
	t.Helper()
	cmd := testenv.CommandIn(t, cg, testenv.Probe(t), args...)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("probe: %v: %s", err, out)
	}
	return cmd.Process.Pid
}

func read(t *testing.T, rd *Reader) Event {
	t.Helper()
	rd.SetDeadline(time.Now().Add(5 * time.Second))
	e, err := rd.Read()
	if err != nil {
		t.Fatalf("read event: %v", err)
	}
	return e
}

func TestDenyEvents(t *testing.T) {
	objs, cg := setup(t, map[string]string{policy.KeyAllowPorts: "tcp:80", policy.KeyAllowBind: "8000"})
	rd, err := NewReader(objs)
	if err != nil {
		t.Fatal(err)
	}
	defer rd.Close()
	before := time.Now()
	pid := run(t, cg, "connect", "tcp", "127.0.0.1:9090", "sendto", "udp", "[::1]:53", "bind", "tcp", "127.0.0.1:7000", "socket", "raw", "127.0.0.1:0")

	want := []struct {
		hook, reason, proto, addr string
		port                      uint16
		line                      string
	}{
		{"connect4", "port", "tcp", "127.0.0.1", 9090, "[DENY connect4] pid=%d comm=probe daddr=127.0.0.1 dport=9090 proto=tcp container=web reason=port"},
		{"sendmsg6", "port", "udp", "::1", 53, "[DENY sendmsg6] pid=%d comm=probe daddr=::1 dport=53 proto=udp container=web reason=port"},
		{"bind4", "bind-port", "tcp", "127.0.0.1", 7000, "[DENY bind4] pid=%d comm=probe laddr=127.0.0.1 lport=7000 proto=tcp container=web reason=bind-port"},
		{"socket", "raw-socket", "icmp", "", 0, "[DENY socket] pid=%d comm=probe type=raw proto=icmp container=web reason=raw-socket"},
	}
	for _, w := range want {
		e := read(t, rd)
		if e.Hook != w.hook || e.Reason != w.reason || e.Protocol != w.proto || e.Addr != w.addr || e.Port != w.port ||
			e.Verdict != "deny" || e.CgroupID != cg.ID || e.ContainerID != "c0ffee" {
			t.Errorf("event %+v, want %+v", e, w)
		}
		if e.PID != 0 { // where the kernel gives cgroup programs the task (6.1 and later)
			if e.PID != uint32(pid) || e.Comm != "probe" || e.TaskCgroupID != cg.ID {
				t.Errorf("event from pid %d comm %q cgroup %d, want %d probe %d", e.PID, e.Comm, e.TaskCgroupID, pid, cg.ID)
			}
			if line := strings.Replace(w.line, "%d", itoa(pid), 1); e.String() != line {
				t.Errorf("line %q\n want %q", e.String(), line)
			}
		}
		if e.Time.Before(before.Add(-time.Second)) || e.Time.After(time.Now().Add(time.Second)) {
			t.Errorf("event time %v is not around now (%v)", e.Time, before)
		}
	}
}

func TestAuditEvents(t *testing.T) {
	objs, cg := setup(t, map[string]string{policy.KeyAllowCIDRs: "127.0.0.1", policy.KeyMode: "audit"})
	rd, err := NewReader(objs)
	if err != nil {
		t.Fatal(err)
	}
	defer rd.Close()
	run(t, cg, "connect", "udp", "127.0.0.2:53", "connect", "udp", "127.0.0.1:53")
	e := read(t, rd)
	if e.Verdict != "audit" || e.Reason != "address" || e.Addr != netip.MustParseAddr("127.0.0.2").String() || !strings.HasPrefix(e.String(), "[AUDIT connect4]") {
		t.Errorf("audit event %+v (%s)", e, e)
	}
	rd.SetDeadline(time.Now().Add(300 * time.Millisecond))
	if e, err := rd.Read(); !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Errorf("an allowed call made an event: %+v, %v", e, err)
	}
}

// With nobody reading, the ring buffer fills and events are dropped and
// counted; the counters lose nothing.
func TestEventsAreLostButCountersAreNot(t *testing.T) {
	objs, cg := setup(t, map[string]string{policy.KeyAllowPorts: ""})
	const calls = 10000 // the buffer holds about 2,700 events
	out, err := testenv.CommandIn(t, cg, testenv.Probe(t), "loop", "udp", "127.0.0.1:9", itoa(calls)).Output()
	if err != nil || !strings.Contains(string(out), "failed=10000 errno=EPERM") {
		t.Fatalf("probe loop: %v: %s", err, out)
	}
	st, err := objs.StatusOf(cg.ID)
	if err != nil {
		t.Fatal(err)
	}
	if st.Hooks[0].Denied != calls {
		t.Errorf("connect4 denied %d, want %d", st.Hooks[0].Denied, calls)
	}
	var perCPU []uint64
	objs.Stats.Lookup(uint32(0), &perCPU)
	var lost uint64
	for _, n := range perCPU {
		lost += n
	}
	if lost == 0 || lost >= calls {
		t.Errorf("%d events lost of %d, want some but not all", lost, calls)
	}
	t.Logf("%d of %d events lost with nobody reading", lost, calls)
}

func itoa(n int) string { return strconv.Itoa(n) }

// A reader starts from now: events from before it are skipped.
func TestReaderSkipsTheBacklog(t *testing.T) {
	objs, cg := setup(t, map[string]string{policy.KeyAllowPorts: ""})
	run(t, cg, "connect", "udp", "127.0.0.1:1")
	rd, err := NewReader(objs)
	if err != nil {
		t.Fatal(err)
	}
	defer rd.Close()
	run(t, cg, "connect", "udp", "127.0.0.1:2")
	if e := read(t, rd); e.Port != 2 {
		t.Errorf("first event is for port %d, want 2 (port 1 was before the reader)", e.Port)
	}
}
