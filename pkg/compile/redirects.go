package compile

import (
	"fmt"
	"net/netip"

	"github.com/cgpol/cgpol/bpf"
	"github.com/cgpol/cgpol/pkg/policy"
)

var ipProto = map[policy.Protocol]uint8{policy.TCP: 6, policy.UDP: 17}

func compileRedirects(e *Entries, rs []policy.Redirect) {
	for _, r := range rs {
		key := bpf.RedirectKey{Port: r.Match.Port(), Protocol: ipProto[r.Protocol], Family: 6}
		if r.Is4() {
			key.Family = 4
		}
		if r.Match.Addr().IsValid() {
			key.Addr = addr16(r.Match.Addr())
		}
		e.Redirects[key] = bpf.RedirectTarget{Addr: addr16(r.Target.Addr()), Port: r.Target.Port()}
	}
}

// addr16 lays out an address as the BPF side does: IPv4 in the first 4 bytes.
func addr16(a netip.Addr) [16]uint8 {
	var out [16]uint8
	if a.Is4() {
		b := a.As4()
		copy(out[:], b[:])
		return out
	}
	return a.As16()
}

func addrOf(b [16]uint8, v4 bool) netip.Addr {
	if v4 {
		return netip.AddrFrom4([4]byte(b[:4]))
	}
	return netip.AddrFrom16(b)
}

func decompileRedirects(m map[bpf.RedirectKey]bpf.RedirectTarget) ([]policy.Redirect, error) {
	var out []policy.Redirect
	for k, t := range m {
		var proto policy.Protocol
		switch k.Protocol {
		case 6:
			proto = policy.TCP
		case 17:
			proto = policy.UDP
		default:
			return nil, fmt.Errorf("redirect for protocol %d", k.Protocol)
		}
		if k.Family != 4 && k.Family != 6 {
			return nil, fmt.Errorf("redirect for family %d", k.Family)
		}
		v4 := k.Family == 4
		r := policy.Redirect{Protocol: proto, Target: netip.AddrPortFrom(addrOf(t.Addr, v4), t.Port)}
		r.Match = netip.AddrPortFrom(netip.Addr{}, k.Port)
		if k.Addr != ([16]uint8{}) {
			r.Match = netip.AddrPortFrom(addrOf(k.Addr, v4), k.Port)
		}
		out = append(out, r)
	}
	return out, nil
}
