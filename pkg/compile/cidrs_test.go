package compile

import (
	"encoding/binary"
	"math/rand/v2"
	"net/netip"
	"testing"

	"github.com/cgpol/cgpol/bpf"
	"github.com/cgpol/cgpol/pkg/policy"
)

// lpmAllows is what the BPF side computes for an address rule check: the
// longest matching prefix, then its port set for the protocol.
func lpmAllows(e *Entries, p policy.Protocol, addr netip.Addr, port uint16) bool {
	addr = addr.Unmap()
	var value bpf.CIDRValue
	found := false
	for bits := addr.BitLen(); bits >= 0 && !found; bits-- {
		pfx, _ := addr.Prefix(bits)
		if addr.Is4() {
			value, found = e.CIDR4[bpf.CIDR4Key{Prefixlen: uint32(bits), Addr: pfx.Addr().As4()}]
		} else {
			value, found = e.CIDR6[bpf.CIDR6Key{Prefixlen: uint32(bits), Addr: pfx.Addr().As16()}]
		}
	}
	if !found {
		return false
	}
	set := value.Tcp
	if p == policy.UDP {
		set = value.Udp
	}
	switch set {
	case bpf.RuleSetAll:
		return true
	case bpf.RuleSetNone:
		return false
	}
	chunk, ok := e.PortSets[bpf.PortKey{Set: set, Chunk: port / uint16(bpf.PortsPerChunk)}]
	bit := int(port) % bpf.PortsPerChunk
	return ok && chunk.Bits[bit/64]&(1<<(bit%64)) != 0
}

func mustRules(t testing.TB, value string) policy.AddressRules {
	t.Helper()
	r, err := policy.ParseAddressRules(value)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

func TestCompileAddressRules(t *testing.T) {
	rules := mustRules(t, "0.0.0.0/0 except 10.0.0.0/8; 10.96.0.10 ports udp:53; 10.0.0.0/8 except 10.1.0.0/16 ports tcp:443; ::/0 except fc00::/7")
	e := Compile(policy.Policy{EgressCIDRs: &rules})
	if e.Policy.Flags&bpf.FlagEgressCIDRs == 0 || e.Policy.Flags&bpf.FlagDenyRaw == 0 {
		t.Errorf("flags %#x", e.Policy.Flags)
	}
	for _, c := range []struct {
		p    policy.Protocol
		addr string
		port uint16
	}{
		{policy.TCP, "1.1.1.1", 80}, {policy.TCP, "10.2.0.1", 443}, {policy.TCP, "10.2.0.1", 80},
		{policy.TCP, "10.1.0.1", 443}, {policy.UDP, "10.96.0.10", 53}, {policy.TCP, "10.96.0.10", 443},
		{policy.TCP, "10.96.0.10", 53}, {policy.UDP, "10.96.0.11", 53}, {policy.TCP, "fd00::1", 80},
		{policy.UDP, "2001:db8::1", 9}, {policy.TCP, "::ffff:10.2.0.1", 443}, {policy.TCP, "::ffff:8.8.8.8", 1},
	} {
		a := netip.MustParseAddr(c.addr)
		if got, want := lpmAllows(e, c.p, a, c.port), rules.Allows(c.p, a, c.port); got != want {
			t.Errorf("%v %s:%d: compiled %v, rules %v", c.p, c.addr, c.port, got, want)
		}
	}
}

func TestDecompileAddressRulesAllowsTheSame(t *testing.T) {
	rules := mustRules(t, "10.0.0.0/8 except 10.1.0.0/16,10.2.0.0/16 ports 80; 10.1.0.0/16 except 10.1.1.0/24; 0.0.0.0/0 ports udp:53")
	e := Compile(policy.Policy{EgressCIDRs: &rules})
	back, err := Decompile(e)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("decompiled: %s", back.EgressCIDRs)
	e2 := Compile(back)
	r := rand.New(rand.NewPCG(1, 2))
	for range 20000 {
		a := randomAddr(r, []netip.Prefix{netip.MustParsePrefix("10.1.1.0/24"), netip.MustParsePrefix("10.2.0.0/16"), netip.MustParsePrefix("10.0.0.0/8")})
		p := policy.Protocols[r.IntN(2)]
		port := uint16(r.IntN(100))
		if want, got := rules.Allows(p, a, port), lpmAllows(e2, p, a, port); want != got {
			t.Fatalf("%v %s:%d: decompiled rules allow %v, original %v", p, a, port, got, want)
		}
	}
}

// FuzzCompileAddressRules builds random overlapping rules from the fuzz
// input, and checks the compiled tries against the rules' own semantics, and
// the decompiled rules against both.
func FuzzCompileAddressRules(f *testing.F) {
	f.Add([]byte{1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16}, uint64(1))
	f.Add([]byte{0, 0, 0, 0, 255, 255, 255, 255}, uint64(7))
	f.Fuzz(func(t *testing.T, data []byte, seed uint64) {
		rules, universe := randomRules(data)
		e := Compile(policy.Policy{EgressCIDRs: &rules})
		back, err := Decompile(e)
		if err != nil {
			t.Fatalf("decompile %s: %v", rules, err)
		}
		e2 := Compile(back)
		r := rand.New(rand.NewPCG(seed, uint64(len(data))))
		for range 300 {
			a := randomAddr(r, universe)
			p := policy.Protocols[r.IntN(2)]
			port := uint16(1 + r.IntN(8))
			want := rules.Allows(p, a, port)
			if got := lpmAllows(e, p, a, port); got != want {
				t.Fatalf("rules %q: %v %s:%d compiled %v, want %v", rules, p, a, port, got, want)
			}
			if got := lpmAllows(e2, p, a, port); got != want {
				t.Fatalf("rules %q decompiled to %q: %v %s:%d gives %v, want %v", rules, back.EgressCIDRs, p, a, port, got, want)
			}
		}
	})
}

// randomRules makes rules over a few nested IPv4 and IPv6 prefixes, so that
// CIDRs and excepts overlap a lot. It returns the prefixes used.
func randomRules(data []byte) (policy.AddressRules, []netip.Prefix) {
	universe := []netip.Prefix{
		netip.MustParsePrefix("0.0.0.0/0"), netip.MustParsePrefix("10.0.0.0/8"), netip.MustParsePrefix("10.1.0.0/16"),
		netip.MustParsePrefix("10.1.2.0/24"), netip.MustParsePrefix("10.1.2.3/32"), netip.MustParsePrefix("10.128.0.0/9"),
		netip.MustParsePrefix("192.168.0.0/16"), netip.MustParsePrefix("::/0"), netip.MustParsePrefix("fd00::/8"),
		netip.MustParsePrefix("fd00:1::/32"), netip.MustParsePrefix("2001:db8::1/128"),
	}
	rules := policy.AddressRules{Rules: []policy.AddressRule{}}
	for len(data) >= 4 && len(rules.Rules) < 8 {
		c := universe[int(data[0])%len(universe)]
		rule := policy.AddressRule{CIDRs: []netip.Prefix{c}}
		if data[1]%3 == 0 {
			if x := universe[int(data[1]/3)%len(universe)]; x != c && c.Contains(x.Addr()) && x.Bits() > c.Bits() {
				rule.Except = append(rule.Except, x)
			}
		}
		if data[2]%2 == 0 {
			var ports policy.PortSet
			low := uint16(1 + data[3]%8)
			ports.Add(policy.Protocols[data[2]/2%2], policy.PortRange{Low: low, High: low + uint16(data[3]/8%3)})
			rule.Ports = &ports
		}
		rules.Rules = append(rules.Rules, rule)
		data = data[4:]
	}
	return rules, universe
}

// randomAddr returns an address inside or near one of the prefixes.
func randomAddr(r *rand.Rand, universe []netip.Prefix) netip.Addr {
	p := universe[r.IntN(len(universe))]
	b := p.Addr().AsSlice()
	var noise [16]byte
	binary.LittleEndian.PutUint64(noise[:], r.Uint64())
	binary.LittleEndian.PutUint64(noise[8:], r.Uint64())
	for i := range b {
		if i*8 >= p.Bits() || r.IntN(8) == 0 { // keep most of the prefix, flip a bit now and then
			b[i] ^= noise[i] & byte(0xff>>max(0, p.Bits()-i*8))
		}
	}
	a, _ := netip.AddrFromSlice(b)
	if a.Is4() && r.IntN(4) == 0 {
		return netip.AddrFrom16(a.As16()) // IPv4-mapped
	}
	return a
}
