package compile

import (
	"cmp"
	"fmt"
	"net/netip"
	"slices"

	"github.com/cgpol/cgpol/bpf"
	"github.com/cgpol/cgpol/pkg/policy"
)

// An LPM trie answers with its longest matching prefix, one value per
// prefix, while address rules union: a destination is allowed by any rule
// whose CIDRs hold it and whose excepts do not. compileAddressRules
// flattens the rules into that one-value-per-prefix form. For every prefix
// P that some rule names (a CIDR or an except), the value of P is the union
// of the ports of the rules that hold P: some CIDR of the rule contains P and
// no except of the rule does. That is exact: a destination's longest matching
// named prefix P lies inside exactly the named prefixes that contain P.

// boundary is a prefix that rules name, and the rules that name it.
type boundary struct {
	prefix  netip.Prefix
	covers  []int // rules with this CIDR
	excepts []int // rules with this except
}

// ruleSets assigns ids to the distinct port sets of CIDR values.
type ruleSets struct {
	e    *Entries
	ids  map[string]uint16
	next uint16
}

// id returns the rule port set for ranges of one protocol: all, none, or a
// chunked set written to the entries.
func (s *ruleSets) id(ranges []policy.PortRange) uint16 {
	switch {
	case len(ranges) == 0:
		return bpf.RuleSetNone
	case len(ranges) == 1 && ranges[0] == policy.PortRange{Low: 1, High: 65535}:
		return bpf.RuleSetAll
	}
	key := fmt.Sprint(ranges)
	if id, ok := s.ids[key]; ok {
		return id
	}
	id := s.next
	s.next++
	s.ids[key] = id
	addChunks(s.e.PortSets, id, ranges)
	return id
}

func compileAddressRules(e *Entries, rules policy.AddressRules) {
	sets := &ruleSets{e: e, ids: map[string]uint16{}, next: bpf.RuleSetFirstCIDR}
	for _, b := range boundaries(rules, true) {
		key := bpf.CIDR4Key{Prefixlen: uint32(b.prefix.Bits()), Addr: b.prefix.Addr().As4()}
		e.CIDR4[key] = sets.value(b.union)
	}
	for _, b := range boundaries(rules, false) {
		key := bpf.CIDR6Key{Prefixlen: uint32(b.prefix.Bits()), Addr: b.prefix.Addr().As16()}
		e.CIDR6[key] = sets.value(b.union)
	}
}

// value is the trie value for the union of the ports of some rules; nil
// ports means every port.
func (s *ruleSets) value(u *policy.PortSet) bpf.CIDRValue {
	if u == nil {
		return bpf.CIDRValue{Tcp: bpf.RuleSetAll, Udp: bpf.RuleSetAll}
	}
	return bpf.CIDRValue{Tcp: s.id(u.Ranges(policy.TCP)), Udp: s.id(u.Ranges(policy.UDP))}
}

// flatPrefix is a named prefix and the union of the ports that it allows.
type flatPrefix struct {
	prefix netip.Prefix
	union  *policy.PortSet // nil: every port
}

// boundaries flattens the rules of one family (IPv4 or IPv6).
func boundaries(rules policy.AddressRules, v4 bool) []flatPrefix {
	named := map[netip.Prefix]*boundary{}
	get := func(p netip.Prefix) *boundary {
		if named[p] == nil {
			named[p] = &boundary{prefix: p}
		}
		return named[p]
	}
	for i, r := range rules.Rules {
		for _, c := range r.CIDRs {
			if c.Addr().Is4() == v4 {
				get(c).covers = append(get(c).covers, i)
			}
		}
		for _, x := range r.Except {
			if x.Addr().Is4() == v4 {
				get(x).excepts = append(get(x).excepts, i)
			}
		}
	}
	// Sorted by address, then shorter first: every prefix comes after the
	// prefixes that contain it, so a stack holds the current one's ancestors.
	sorted := make([]*boundary, 0, len(named))
	for _, b := range named {
		sorted = append(sorted, b)
	}
	slices.SortFunc(sorted, func(a, b *boundary) int {
		return cmp.Or(a.prefix.Addr().Compare(b.prefix.Addr()), cmp.Compare(a.prefix.Bits(), b.prefix.Bits()))
	})
	covered := make([]int, len(rules.Rules)) // per rule: named CIDRs on the stack
	excepted := make([]int, len(rules.Rules))
	var stack []*boundary
	var out []flatPrefix
	for _, b := range sorted {
		for len(stack) > 0 && !stack[len(stack)-1].prefix.Contains(b.prefix.Addr()) {
			top := stack[len(stack)-1]
			stack = stack[:len(stack)-1]
			for _, r := range top.covers {
				covered[r]--
			}
			for _, r := range top.excepts {
				excepted[r]--
			}
		}
		stack = append(stack, b)
		for _, r := range b.covers {
			covered[r]++
		}
		for _, r := range b.excepts {
			excepted[r]++
		}
		out = append(out, flatPrefix{prefix: b.prefix, union: union(rules, stack, covered, excepted)})
	}
	return out
}

// union returns the ports allowed by the rules that hold the top of the
// stack: an empty set if none does, nil if one allows every port.
func union(rules policy.AddressRules, stack []*boundary, covered, excepted []int) *policy.PortSet {
	var tcp, udp []policy.PortRange
	seen := map[int]bool{}
	for _, b := range stack {
		for _, r := range b.covers {
			if seen[r] || excepted[r] > 0 || covered[r] == 0 {
				continue
			}
			seen[r] = true
			ports := rules.Rules[r].Ports
			if ports == nil {
				return nil
			}
			tcp = append(tcp, ports.Ranges(policy.TCP)...)
			udp = append(udp, ports.Ranges(policy.UDP)...)
		}
	}
	var u policy.PortSet
	u.Add(policy.TCP, tcp...)
	u.Add(policy.UDP, udp...)
	return &u
}

// decompileAddressRules reads tries back into rules that allow the same:
// one rule per named prefix that allows something, excepting the named
// prefixes directly below it.
func decompileAddressRules(e *Entries, sets map[uint16][]policy.PortRange) (policy.AddressRules, error) {
	type entry struct {
		prefix netip.Prefix
		value  bpf.CIDRValue
	}
	var entries []entry
	for k, v := range e.CIDR4 {
		p, err := netip.AddrFrom4(k.Addr).Prefix(int(k.Prefixlen))
		if err != nil || k.Prefixlen > 32 {
			return policy.AddressRules{}, fmt.Errorf("bad IPv4 rule prefix %v/%d", k.Addr, k.Prefixlen)
		}
		entries = append(entries, entry{p, v})
	}
	for k, v := range e.CIDR6 {
		p, err := netip.AddrFrom16(k.Addr).Prefix(int(k.Prefixlen))
		if err != nil || k.Prefixlen > 128 {
			return policy.AddressRules{}, fmt.Errorf("bad IPv6 rule prefix %v/%d", k.Addr, k.Prefixlen)
		}
		entries = append(entries, entry{p, v})
	}
	slices.SortFunc(entries, func(a, b entry) int {
		return cmp.Or(cmp.Compare(a.prefix.Addr().BitLen(), b.prefix.Addr().BitLen()),
			a.prefix.Addr().Compare(b.prefix.Addr()), cmp.Compare(a.prefix.Bits(), b.prefix.Bits()))
	})
	rules := policy.AddressRules{Rules: []policy.AddressRule{}}
	index := map[netip.Prefix]int{} // prefix -> its rule
	var stack []entry
	for _, en := range entries {
		for len(stack) > 0 && !containsPrefix(stack[len(stack)-1].prefix, en.prefix) {
			stack = stack[:len(stack)-1]
		}
		if len(stack) > 0 { // a direct child: an except of its parent's rule
			if i, ok := index[stack[len(stack)-1].prefix]; ok {
				rules.Rules[i].Except = append(rules.Rules[i].Except, en.prefix)
			}
		}
		stack = append(stack, en)
		ports, err := portsOf(en.value, sets)
		if err != nil {
			return policy.AddressRules{}, err
		}
		if ports != nil && len(ports.Ranges(policy.TCP)) == 0 && len(ports.Ranges(policy.UDP)) == 0 {
			continue // allows nothing: only there to cut its parent
		}
		index[en.prefix] = len(rules.Rules)
		rules.Rules = append(rules.Rules, policy.AddressRule{CIDRs: []netip.Prefix{en.prefix}, Ports: ports})
	}
	return rules, nil
}

func containsPrefix(outer, inner netip.Prefix) bool {
	return outer.Addr().BitLen() == inner.Addr().BitLen() && outer.Bits() < inner.Bits() && outer.Contains(inner.Addr())
}

// portsOf turns a trie value back into a port set; nil means every port.
func portsOf(v bpf.CIDRValue, sets map[uint16][]policy.PortRange) (*policy.PortSet, error) {
	if v.Tcp == bpf.RuleSetAll && v.Udp == bpf.RuleSetAll {
		return nil, nil
	}
	var out policy.PortSet
	for proto, id := range map[policy.Protocol]uint16{policy.TCP: v.Tcp, policy.UDP: v.Udp} {
		switch id {
		case bpf.RuleSetNone:
		case bpf.RuleSetAll:
			out.Add(proto, policy.PortRange{Low: 1, High: 65535})
		default:
			ranges, ok := sets[id]
			if !ok || id < bpf.RuleSetFirstCIDR {
				return nil, fmt.Errorf("address rule names port set %d, which does not exist", id)
			}
			out.Add(proto, ranges...)
		}
	}
	return &out, nil
}
