package compile

import (
	"testing"

	"github.com/cgpol/cgpol/bpf"
	"github.com/cgpol/cgpol/pkg/policy"
)

func mustParse(t testing.TB, spec string) policy.Policy {
	t.Helper()
	p, _, err := policy.FromAnnotations(map[string]string{policy.KeyAllowPorts: spec})
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// allowed is what the BPF side computes: the bit for a port in a set.
func allowed(e *Entries, set int, port int) bool {
	return e.Policy.Ports[set][port/64]&(1<<(port%64)) != 0
}

func TestCompile(t *testing.T) {
	e := Compile(mustParse(t, "tcp:80,443,udp:53,1000-1100,tcp:65535"))
	if e.Policy.Flags != bpf.FlagEgressPorts|bpf.FlagDenyRaw {
		t.Errorf("flags = %#x", e.Policy.Flags)
	}
	for _, c := range []struct {
		set  int
		port int
		want bool
	}{
		{bpf.SetEgressTCP, 80, true}, {bpf.SetEgressUDP, 80, false},
		{bpf.SetEgressTCP, 443, true}, {bpf.SetEgressUDP, 443, true},
		{bpf.SetEgressUDP, 53, true}, {bpf.SetEgressTCP, 53, false},
		{bpf.SetEgressTCP, 1000, true}, {bpf.SetEgressUDP, 1100, true},
		{bpf.SetEgressTCP, 1101, false}, {bpf.SetEgressTCP, 0, false},
		{bpf.SetEgressTCP, 65535, true}, {bpf.SetEgressUDP, 65535, false},
	} {
		if got := allowed(e, c.set, c.port); got != c.want {
			t.Errorf("set %d port %d: allowed = %v, want %v", c.set, c.port, got, c.want)
		}
	}
}

func TestCompileNoPolicy(t *testing.T) {
	if e := Compile(policy.Policy{}); e.Policy.Flags != 0 || e.Policy.Ports != [2][1024]uint64{} {
		t.Errorf("unrestricted policy compiled to flags %#x with ports set", e.Policy.Flags)
	}
	if e := Compile(mustParse(t, "")); e.Policy.Flags != bpf.FlagEgressPorts|bpf.FlagDenyRaw || e.Policy.Ports != [2][1024]uint64{} {
		t.Errorf("allow-no-ports compiled to flags %#x with ports set", e.Policy.Flags)
	}
}

func TestDecompileRejects(t *testing.T) {
	var e Entries
	e.Policy.Flags = 1 << 30
	if _, err := Decompile(&e); err == nil {
		t.Error("unknown flag decompiled without error")
	}
	e = Entries{}
	e.Policy.Ports[0][3] = 1
	if _, err := Decompile(&e); err == nil {
		t.Error("bitmap without the ports flag decompiled without error")
	}
	e = Entries{}
	e.Policy.Flags = bpf.FlagEgressPorts
	e.Policy.Ports[bpf.SetEgressUDP][0] = 1
	if _, err := Decompile(&e); err == nil {
		t.Error("port 0 decompiled without error")
	}
}

// FuzzCompile checks that the compiled bitmaps allow exactly the ports of the
// policy, and that decompiling gives the policy back.
func FuzzCompile(f *testing.F) {
	for _, seed := range []string{"", "80", "tcp:1-65535", "udp:63-65,127-129,1023-1025", "tcp:80,udp:53,8000-9000"} {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, spec string) {
		set, err := policy.ParsePortSet(spec)
		if err != nil {
			return
		}
		p := policy.Policy{EgressPorts: &set}
		e := Compile(p)
		for port := 0; port <= 65535; port++ {
			if allowed(e, bpf.SetEgressTCP, port) != set.Contains(policy.TCP, uint16(port)) ||
				allowed(e, bpf.SetEgressUDP, port) != set.Contains(policy.UDP, uint16(port)) {
				t.Fatalf("%q: port %d compiled wrong", spec, port)
			}
		}
		back, err := Decompile(e)
		if err != nil || !back.Equal(p) {
			t.Fatalf("%q decompiled to %v, %v", spec, back, err)
		}
	})
}

func BenchmarkCompile1000Ranges(b *testing.B) {
	var set policy.PortSet
	for i := range 1000 {
		set.Add(policy.TCP, policy.PortRange{Low: uint16(1 + i*60), High: uint16(30 + i*60)})
	}
	p := policy.Policy{EgressPorts: &set}
	for b.Loop() {
		Compile(p)
	}
}

func TestCompileBindRedirectModeRaw(t *testing.T) {
	p, _, err := policy.FromAnnotations(map[string]string{
		policy.KeyAllowBind:  "0,tcp:8000-9000",
		policy.KeyRedirect:   "udp:53=127.0.0.1:5353, tcp:10.0.0.1:8080=127.0.0.1:3128, udp:53=[::1]:5353",
		policy.KeyMode:       "audit",
		policy.KeyRawSockets: "deny",
	})
	if err != nil {
		t.Fatal(err)
	}
	e := Compile(p)
	want := bpf.FlagBind | bpf.FlagRedirect | bpf.FlagAudit | bpf.FlagDenyRaw
	if e.Policy.Flags != want {
		t.Errorf("flags %#x, want %#x", e.Policy.Flags, want)
	}
	// Port 0 (autobind) is bit 0 of chunk 0 of both bind sets.
	for _, set := range []uint16{bpf.RuleSetBindTCP, bpf.RuleSetBindUDP} {
		if e.PortSets[bpf.PortKey{Set: set}].Bits[0]&1 == 0 {
			t.Errorf("bind set %d does not allow port 0", set)
		}
	}
	if len(e.Redirects) != 3 {
		t.Errorf("%d redirect entries, want 3", len(e.Redirects))
	}
	k := bpf.RedirectKey{Port: 8080, Protocol: 6, Family: 4}
	k.Addr[0], k.Addr[3] = 10, 1
	if tgt, ok := e.Redirects[k]; !ok || tgt.Port != 3128 || tgt.Addr[0] != 127 {
		t.Errorf("10.0.0.1:8080 redirect: %+v, %v", tgt, ok)
	}
	back, err := Decompile(e)
	if err != nil || !back.Equal(p) {
		t.Errorf("decompiled %s, %v; want %s", back, err, p)
	}
}
