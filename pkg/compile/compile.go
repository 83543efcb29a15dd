// Package compile turns a typed policy into the BPF map entries that enforce
// it, and entries read back from the kernel into the policy they enforce.
package compile

import (
	"fmt"

	"github.com/cgpol/cgpol/bpf"
	"github.com/cgpol/cgpol/pkg/policy"
)

// Entries are what the kernel needs to enforce one policy.
type Entries struct {
	// Policy becomes the value of the cgroup's slot. Compile leaves its
	// CgroupId and PolicyId to the code that attaches it.
	Policy bpf.Policy
}

// portSets maps each protocol to the port set that holds its egress ports.
var portSets = [...]int{policy.TCP: bpf.SetEgressTCP, policy.UDP: bpf.SetEgressUDP}

// Compile returns the entries that enforce p.
func Compile(p policy.Policy) *Entries {
	e := &Entries{}
	if p.EgressPorts != nil {
		e.Policy.Flags |= bpf.FlagEgressPorts
		for _, proto := range policy.Protocols {
			setRanges(&e.Policy.Ports[portSets[proto]], p.EgressPorts.Ranges(proto))
		}
	}
	return e
}

// setRanges sets the bit of every port in ranges, a word at a time.
func setRanges(bits *[1024]uint64, ranges []policy.PortRange) {
	for _, r := range ranges {
		for port := int(r.Low); port <= int(r.High); {
			word, shift := port/64, port%64
			n := min(64-shift, int(r.High)-port+1) // to the end of the word, or of the range
			bits[word] |= (^uint64(0) >> (64 - n)) << shift
			port += n
		}
	}
}

// Decompile returns the policy that entries read from the kernel enforce.
// It fails on entries that Compile cannot have written.
func Decompile(e *Entries) (policy.Policy, error) {
	var p policy.Policy
	known := bpf.FlagEgressPorts
	if extra := e.Policy.Flags &^ known; extra != 0 {
		return p, fmt.Errorf("unknown policy flags %#x", extra)
	}
	if e.Policy.Flags&bpf.FlagEgressPorts == 0 {
		for _, set := range e.Policy.Ports {
			if set != [1024]uint64{} {
				return p, fmt.Errorf("port bitmaps are set, but the policy does not restrict ports")
			}
		}
		return p, nil
	}
	p.EgressPorts = &policy.PortSet{}
	for _, proto := range policy.Protocols {
		bits := &e.Policy.Ports[portSets[proto]]
		if bits[0]&1 != 0 {
			return policy.Policy{}, fmt.Errorf("the %v bitmap allows port 0", proto)
		}
		p.EgressPorts.Add(proto, bitRanges(bits)...)
	}
	return p, nil
}

// bitRanges returns the runs of set bits as port ranges.
func bitRanges(bits *[1024]uint64) []policy.PortRange {
	var out []policy.PortRange
	isSet := func(port int) bool { return bits[port/64]&(1<<(port%64)) != 0 }
	for port := 0; port < 65536; port++ {
		if bits[port/64] == 0 {
			port += 63 - port%64 // skip an empty word
			continue
		}
		if !isSet(port) {
			continue
		}
		start := port
		for port+1 < 65536 && isSet(port+1) {
			port++
		}
		out = append(out, policy.PortRange{Low: uint16(start), High: uint16(port)})
	}
	return out
}
