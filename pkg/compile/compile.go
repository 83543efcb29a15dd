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
	// Flags go into the cgroup's struct cgpol_ref (bpf.Flag*).
	Flags uint32
	// Ports fill the policy's own port map: chunks of allowed ports by set.
	Ports map[bpf.PortKey]bpf.PortChunk
}

// portSets maps each protocol to the port set that holds its egress ports.
var portSets = map[policy.Protocol]uint16{
	policy.TCP: bpf.SetEgressTCP,
	policy.UDP: bpf.SetEgressUDP,
}

// Compile returns the entries that enforce p.
func Compile(p policy.Policy) Entries {
	e := Entries{Flags: bpf.FlagValid, Ports: map[bpf.PortKey]bpf.PortChunk{}}
	if p.EgressPorts != nil {
		e.Flags |= bpf.FlagEgressPorts
		for _, proto := range policy.Protocols {
			addRanges(e.Ports, portSets[proto], p.EgressPorts.Ranges(proto))
		}
	}
	return e
}

// chunksPerSet is the number of chunks that cover ports 0-65535.
const chunksPerSet = 65536 / bpf.PortsPerChunk

// addRanges sets the bits of every port in ranges, in the chunks of one set.
// Only chunks with a bit set get an entry.
func addRanges(chunks map[bpf.PortKey]bpf.PortChunk, set uint16, ranges []policy.PortRange) {
	var dense [chunksPerSet]bpf.PortChunk
	var used [chunksPerSet]bool
	for _, r := range ranges {
		for port := int(r.Low); port <= int(r.High); {
			c, bit := port/bpf.PortsPerChunk, port%bpf.PortsPerChunk
			word, shift := bit/64, bit%64
			// Fill from this bit to the end of its word, or to High.
			n := min(64-shift, int(r.High)-port+1)
			dense[c].Bits[word] |= (^uint64(0) >> (64 - n)) << shift
			used[c] = true
			port += n
		}
	}
	for c := range dense {
		if used[c] {
			chunks[bpf.PortKey{Set: set, Chunk: uint16(c)}] = dense[c]
		}
	}
}

// Decompile returns the policy that entries read from the kernel enforce.
// It fails on entries that Compile cannot have written.
func Decompile(e Entries) (policy.Policy, error) {
	var p policy.Policy
	if e.Flags&bpf.FlagValid == 0 {
		return p, fmt.Errorf("policy is not valid (flags %#x): the cgroup denies everything", e.Flags)
	}
	if e.Flags&bpf.FlagEgressPorts != 0 {
		p.EgressPorts = &policy.PortSet{}
	}
	var ranges [2][]policy.PortRange
	for key, chunk := range e.Ports {
		proto, ok := protocolOf(key.Set)
		if !ok || p.EgressPorts == nil || int(key.Chunk) >= chunksPerSet {
			return policy.Policy{}, fmt.Errorf("unexpected port map entry %+v", key)
		}
		if key.Chunk == 0 && chunk.Bits[0]&1 != 0 {
			return policy.Policy{}, fmt.Errorf("port map allows port 0")
		}
		ranges[proto] = append(ranges[proto], chunkRanges(key.Chunk, chunk)...)
	}
	for _, proto := range policy.Protocols {
		if len(ranges[proto]) > 0 {
			p.EgressPorts.Add(proto, ranges[proto]...)
		}
	}
	return p, nil
}

func protocolOf(set uint16) (policy.Protocol, bool) {
	for proto, s := range portSets {
		if s == set {
			return proto, true
		}
	}
	return 0, false
}

// chunkRanges returns the runs of set bits in one chunk as port ranges.
func chunkRanges(index uint16, chunk bpf.PortChunk) []policy.PortRange {
	var out []policy.PortRange
	base := int(index) * bpf.PortsPerChunk
	for bit := 0; bit < bpf.PortsPerChunk; bit++ {
		if chunk.Bits[bit/64]&(1<<(bit%64)) == 0 {
			continue
		}
		start := bit
		for bit+1 < bpf.PortsPerChunk && chunk.Bits[(bit+1)/64]&(1<<((bit+1)%64)) != 0 {
			bit++
		}
		out = append(out, policy.PortRange{Low: uint16(base + start), High: uint16(base + bit)})
	}
	return out
}
