package enforce

import (
	"bufio"
	"fmt"
	"net/netip"
	"strings"
	"testing"

	"github.com/cilium/ebpf"

	"github.com/cgpol/cgpol/pkg/policy"
	"github.com/cgpol/cgpol/test/testenv"
)

// Issue 5's policies, each checked against real BPF with the probe.

func TestAllowCIDRs(t *testing.T) {
	objs := setup(t)
	// Addresses that stand for "the internet" (8.8.8.8, 2001:db8::1) and for
	// other containers (10/8, 192.168/16, fd00::/8), all local to a
	// namespace of this test: nothing leaves it.
	ns := testenv.NewNetNS(t, "8.8.8.8", "10.1.2.3", "10.9.9.9", "192.168.1.1", "2001:db8::1", "fd00::1")
	var web netip.AddrPort
	ns.Do(t, func() { web = testenv.ServeTCP(t, "8.8.8.8:0", "web") })
	cg := testenv.NewCgroup(t)
	attachAnnotations(t, objs, cg, map[string]string{
		policy.KeyAllowCIDRs: "0.0.0.0/0 except 10.0.0.0/8, 192.168.0.0/16; 10.9.9.9 ports udp:53; ::/0 except fd00::/8",
	})
	in := []string{"-netns", ns.Path}
	expectWith(t, cg, in, map[string]string{
		"connect udp 8.8.8.8:53":            "ok",
		"connect udp 10.1.2.3:53":           "EPERM",
		"connect udp 10.9.9.9:53":           "ok",    // the DNS rule
		"connect udp 10.9.9.9:54":           "EPERM", // not its port
		"connect tcp 10.9.9.9:53":           "EPERM", // not its protocol
		"sendto udp 192.168.1.1:9":          "EPERM",
		"sendto udp 8.8.8.8:9":              "ok",
		"connect udp [2001:db8::1]:9":       "ok",
		"connect udp [fd00::1]:9":           "EPERM",
		"connect udp [::ffff:10.1.2.3]:9":   "EPERM", // IPv4-mapped: the IPv4 rules
		"connect udp [::ffff:8.8.8.8]:9":    "ok",
		"sendto udp [::ffff:192.168.1.1]:9": "EPERM",
		"dial tcp " + web.String():          "ok peer=" + web.String() + " reply=web",
		"fastopen tcp 10.1.2.3:80":          "EPERM",
		"connect udp 127.0.0.1:9":           "ok", // 127/8 is in 0.0.0.0/0
		"socket raw 127.0.0.1:0":            "EPERM",
	})

	// With allow-ports too, a call must pass both.
	attachAnnotations(t, objs, cg, map[string]string{
		policy.KeyAllowCIDRs: "0.0.0.0/0 except 10.0.0.0/8",
		policy.KeyAllowPorts: "53",
	})
	expectWith(t, cg, in, map[string]string{
		"connect udp 8.8.8.8:53":       "ok",
		"connect udp 8.8.8.8:9":        "EPERM", // the port fails allow-ports
		"connect udp 10.1.2.3:53":      "EPERM", // the address fails allow-cidrs
		"connect udp [2001:db8::1]:53": "EPERM", // no IPv6 rule
	})
	st, _ := objs.StatusOf(cg.ID)
	if want := `cgpol.io/allow-cidrs="0.0.0.0/0 except 10.0.0.0/8" cgpol.io/allow-ports="53"`; st.Policy != want {
		t.Errorf("status policy %q, want %q", st.Policy, want)
	}
}

func TestAllowBind(t *testing.T) {
	objs := setup(t)
	cg := testenv.NewCgroup(t)
	ports := testenv.FreePorts(t, 3)
	in, tcpOnly, out := ports[0], ports[1], ports[2]
	attachAnnotations(t, objs, cg, map[string]string{
		policy.KeyAllowBind: fmt.Sprintf("%d, tcp:%d, udp:0", in, tcpOnly),
	})
	expect(t, cg, map[string]string{
		"bind tcp " + addr("127.0.0.1", in):         "ok",
		"bind udp " + addr("::1", in):               "ok",
		"bind tcp " + addr("::1", tcpOnly):          "ok",
		"bind udp " + addr("127.0.0.1", tcpOnly):    "EPERM",
		"bind tcp " + addr("127.0.0.1", out):        "EPERM",
		"bind udp " + addr("127.0.0.1", 0):          "ok",    // autobind, listed
		"bind tcp " + addr("127.0.0.1", 0):          "EPERM", // autobind, not listed for TCP
		"bind tcp " + addr("::ffff:127.0.0.1", out): "EPERM",
		"connect udp " + addr("127.0.0.1", out):     "ok", // egress is not restricted
		"socket raw 127.0.0.1:0":                    "ok", // no egress allowlist: raw stays allowed
	})
}

// A bind policy allows a port; it does not grant CAP_NET_BIND_SERVICE.
func TestAllowBindKeepsCapNetBindService(t *testing.T) {
	objs := setup(t)
	cg := testenv.NewCgroup(t)
	attachAnnotations(t, objs, cg, map[string]string{policy.KeyAllowBind: "80"})
	call := "bind tcp " + addr("127.0.0.1", 80)
	if got := testenv.RunProbeAs(t, cg, 65534, "bind", "tcp", addr("127.0.0.1", 80)); got[call] != "EACCES" {
		t.Errorf("unprivileged bind to an allowed privileged port: %q, want EACCES", got[call])
	}
	expect(t, cg, map[string]string{call: "ok"}) // root has the capability
}

func TestRedirect(t *testing.T) {
	objs := setup(t)
	cg := testenv.NewCgroup(t)
	dialled := testenv.ServeTCP(t, "127.0.0.1:0", "dialled")
	target := testenv.ServeTCP(t, "127.0.0.1:0", "target")
	dialled6 := testenv.ServeTCP(t, "[::1]:0", "dialled6")
	target6 := testenv.ServeTCP(t, "[::1]:0", "target6")
	udpDialled := testenv.ServeUDP(t, "127.0.0.1:0", "dialled")
	udpTarget := testenv.ServeUDP(t, "127.0.0.1:0", "target")
	attachAnnotations(t, objs, cg, map[string]string{policy.KeyRedirect: fmt.Sprintf(
		"tcp:%d=%s, tcp:%d=%s, udp:%d=%s",
		dialled.Port(), target, dialled6.Port(), target6, udpDialled.Port(), udpTarget)})
	mapped := netip.AddrPortFrom(netip.MustParseAddr("::ffff:127.0.0.1"), dialled.Port())
	expect(t, cg, map[string]string{
		// The application reaches the target and sees the address it dialled.
		"dial tcp " + dialled.String():    "ok peer=" + dialled.String() + " reply=target",
		"dial tcp " + dialled6.String():   "ok peer=" + dialled6.String() + " reply=target6",
		"dial tcp " + mapped.String():     "ok peer=" + mapped.String() + " reply=target",
		"echo udp " + udpDialled.String(): "ok from=" + udpDialled.String() + " reply=target",
		// Other destinations are untouched.
		"dial tcp " + target.String(): "ok peer=" + target.String() + " reply=target",
	})
	st, _ := objs.StatusOf(cg.ID)
	var redirected uint64
	for _, h := range st.Hooks {
		redirected += h.Redirected
	}
	if redirected != 4 {
		t.Errorf("redirected count %d, want 4", redirected)
	}
}

// The allowlists judge both the destination the application dialled and
// the redirect target.
func TestRedirectChecksBothEnds(t *testing.T) {
	objs := setup(t)
	cg := testenv.NewCgroup(t)
	dialled := testenv.ServeTCP(t, "127.0.0.1:0", "dialled")
	target := testenv.ServeTCP(t, "127.0.0.1:0", "target")
	redirect := fmt.Sprintf("tcp:%d=%s", dialled.Port(), target)
	call := "dial tcp " + dialled.String()
	for _, c := range []struct {
		allow string
		want  string
	}{
		{fmt.Sprint(dialled.Port()), "EPERM"}, // target not allowed
		{fmt.Sprint(target.Port()), "EPERM"},  // dialled not allowed
		{fmt.Sprintf("%d,%d", dialled.Port(), target.Port()), "ok peer=" + dialled.String() + " reply=target"},
	} {
		attachAnnotations(t, objs, cg, map[string]string{policy.KeyRedirect: redirect, policy.KeyAllowPorts: c.allow})
		expect(t, cg, map[string]string{call: c.want})
	}
	// A rule for one address leaves the same port on others alone.
	attachAnnotations(t, objs, cg, map[string]string{policy.KeyRedirect: fmt.Sprintf("tcp:127.0.0.2:%d=%s", dialled.Port(), target)})
	expect(t, cg, map[string]string{call: "ok peer=" + dialled.String() + " reply=dialled"})
}

func TestAuditModeAllowsAndCounts(t *testing.T) {
	objs := setup(t)
	cg := testenv.NewCgroup(t)
	attachAnnotations(t, objs, cg, map[string]string{policy.KeyAllowPorts: "", policy.KeyMode: "audit"})
	expect(t, cg, map[string]string{
		"connect udp " + addr("127.0.0.1", 9): "ok",
		"sendto udp " + addr("::1", 9):        "ok",
		"socket raw 127.0.0.1:0":              "ok",
	})
	st, _ := objs.StatusOf(cg.ID)
	audited := map[string]uint64{}
	for _, h := range st.Hooks {
		audited[h.Hook] = h.Audited
		if h.Denied != 0 {
			t.Errorf("%s denied %d calls in audit mode", h.Hook, h.Denied)
		}
	}
	if audited["connect4"] != 1 || audited["sendmsg6"] != 1 || audited["socket"] != 1 {
		t.Errorf("audited %v, want connect4, sendmsg6 and socket at 1", audited)
	}
}

func TestSocketCreation(t *testing.T) {
	objs := setup(t)
	ns := testenv.NewNetNS(t)
	in := []string{"-netns", ns.Path, "-ping"} // ping sockets are opened in the test's own namespace
	for _, c := range []struct {
		ann  map[string]string
		want map[string]string
	}{
		{map[string]string{policy.KeyAllowPorts: "80"}, map[string]string{
			"socket raw 127.0.0.1:0": "EPERM", "socket raw [::1]:0": "EPERM",
			"socket icmp 127.0.0.1:0": "EPERM", "socket udplite [::1]:0": "EPERM",
			"socket tcp 127.0.0.1:0": "ok", "socket udp [::1]:0": "ok",
		}},
		{map[string]string{policy.KeyAllowPorts: "80", policy.KeyRawSockets: "allow"}, map[string]string{
			"socket raw 127.0.0.1:0": "ok", "socket icmp 127.0.0.1:0": "EPERM", "socket tcp [::1]:0": "ok",
		}},
		{map[string]string{policy.KeyAllowBind: "80"}, map[string]string{
			"socket raw 127.0.0.1:0": "ok", "socket icmp 127.0.0.1:0": "ok", "socket udplite 127.0.0.1:0": "ok",
		}},
		{map[string]string{policy.KeyAllowBind: "80", policy.KeyRawSockets: "deny"}, map[string]string{
			"socket raw [::1]:0": "EPERM", "socket icmp 127.0.0.1:0": "ok",
		}},
	} {
		cg := testenv.NewCgroup(t)
		attachAnnotations(t, objs, cg, c.ann)
		expectWith(t, cg, in, c.want)
	}
}

// Replacing a policy swaps its rule maps too, and frees the old ones.
func TestReplacingRuleKinds(t *testing.T) {
	objs := setup(t)
	cg := testenv.NewCgroup(t)
	attachAnnotations(t, objs, cg, map[string]string{policy.KeyAllowCIDRs: "127.0.0.1 ports udp:9"})
	expect(t, cg, map[string]string{"connect udp " + addr("127.0.0.1", 9): "ok", "connect udp " + addr("127.0.0.2", 9): "EPERM"})
	first, _ := objs.slotPolicy(mustSlot(t, objs, cg.ID))

	attachAnnotations(t, objs, cg, map[string]string{policy.KeyAllowBind: "9"})
	expect(t, cg, map[string]string{"connect udp " + addr("127.0.0.2", 9): "ok", "bind udp " + addr("127.0.0.1", 10): "EPERM"})
	second, _ := objs.slotPolicy(mustSlot(t, objs, cg.ID))
	if second.Rules != first.Rules^1 {
		t.Errorf("rules index %d after %d, want the other generation", second.Rules, first.Rules)
	}
	var inner ebpf.MapID
	if err := objs.CIDR4.Lookup(first.Rules, &inner); err == nil && inner != 0 {
		t.Errorf("the old generation's address rules are still there")
	}
	if err := objs.Detach(cg.ID); err != nil {
		t.Fatal(err)
	}
	for _, index := range []uint32{first.Rules, second.Rules} {
		for _, m := range []*ebpf.Map{objs.CIDR4, objs.CIDR6, objs.PortSets, objs.Redirects} {
			if err := m.Lookup(index, &inner); err == nil && inner != 0 {
				t.Errorf("rule map %d left at index %d after detach", inner, index)
			}
		}
	}
}

func mustSlot(t *testing.T, objs *Objects, id uint64) uint32 {
	t.Helper()
	ref, ok, err := objs.ref(id)
	if !ok || err != nil || ref.Slot == 0 {
		t.Fatalf("cgroup %d has no slot: %v", id, err)
	}
	return ref.Slot - 1
}

// A socket remembers its last allowed destination under address rules; a
// new policy must not honour that memory.
func TestSocketMemoEndsWithThePolicy(t *testing.T) {
	objs := setup(t)
	cg := testenv.NewCgroup(t)
	attachAnnotations(t, objs, cg, map[string]string{policy.KeyAllowCIDRs: "127.0.0.0/8"})
	cmd := testenv.CommandIn(t, cg, testenv.Probe(t), "reconnect", "udp", "127.0.0.1:9")
	stdin, _ := cmd.StdinPipe()
	stdout, _ := cmd.StdoutPipe()
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer cmd.Process.Kill()
	lines := bufio.NewReader(stdout)
	first, _ := lines.ReadString('\n')
	if !strings.HasSuffix(first, ": ok\n") {
		t.Fatalf("first connect: %q", first)
	}
	// The same address, now outside the rules: the socket's memo must not
	// let it through.
	attachAnnotations(t, objs, cg, map[string]string{policy.KeyAllowCIDRs: "127.0.0.2"})
	stdin.Write([]byte("\n"))
	second, _ := lines.ReadString('\n')
	if !strings.HasSuffix(second, ": EPERM EPERM\n") {
		t.Errorf("after the policy changed: %q, want connect and sendto denied", second)
	}
	cmd.Wait()

	// On one socket, an allowed destination does not vouch for another.
	attachAnnotations(t, objs, cg, map[string]string{policy.KeyAllowCIDRs: "127.0.0.1"})
	out, err := testenv.CommandIn(t, cg, testenv.Probe(t), "spread", "udp", "127.0.0.0:9", "3").Output()
	if err != nil || !strings.Contains(string(out), "failed=2 errno=EPERM") {
		t.Errorf("127.0.0.0, .1, .2 on one socket: %v: %s, want 2 of 3 denied", err, out)
	}
}
