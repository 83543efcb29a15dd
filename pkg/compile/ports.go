package compile

import (
	"fmt"
	"slices"

	"github.com/cgpol/cgpol/bpf"
	"github.com/cgpol/cgpol/pkg/policy"
)

// setBitmap sets the bit of every port in ranges, a word at a time.
func setBitmap(bits *[1024]uint64, ranges []policy.PortRange) {
	for _, r := range ranges {
		setBits(bits[:], int(r.Low), int(r.High))
	}
}

// setBits sets bits low through high of a bitmap.
func setBits(bits []uint64, low, high int) {
	for port := low; port <= high; {
		word, shift := port/64, port%64
		n := min(64-shift, high-port+1) // to the end of the word, or of the range
		bits[word] |= (^uint64(0) >> (64 - n)) << shift
		port += n
	}
}

// bitmapRanges returns the runs of set bits as port ranges.
func bitmapRanges(bits *[1024]uint64) []policy.PortRange {
	return runs(bits[:], 0)
}

// runs returns the runs of set bits of a bitmap whose bit 0 is port base.
func runs(bits []uint64, base int) []policy.PortRange {
	var out []policy.PortRange
	isSet := func(i int) bool { return bits[i/64]&(1<<(i%64)) != 0 }
	n := len(bits) * 64
	for i := 0; i < n; i++ {
		if bits[i/64] == 0 {
			i += 63 - i%64 // skip an empty word
			continue
		}
		if !isSet(i) {
			continue
		}
		start := i
		for i+1 < n && isSet(i+1) {
			i++
		}
		out = append(out, policy.PortRange{Low: uint16(base + start), High: uint16(base + i)})
	}
	return out
}

// chunksPerSet is how many chunks cover ports 0-65535.
const chunksPerSet = 65536 / bpf.PortsPerChunk

// addChunks writes a port set into chunked form; only chunks with a bit set
// get an entry.
func addChunks(chunks map[bpf.PortKey]bpf.PortChunk, set uint16, ranges []policy.PortRange) {
	var dense [1024]uint64
	setBitmap(&dense, ranges)
	words := len(bpf.PortChunk{}.Bits)
	for c := range chunksPerSet {
		var chunk bpf.PortChunk
		copy(chunk.Bits[:], dense[c*words:(c+1)*words])
		if chunk != (bpf.PortChunk{}) {
			chunks[bpf.PortKey{Set: set, Chunk: uint16(c)}] = chunk
		}
	}
}

// readPortSets turns chunks back into sorted port ranges per set.
func readPortSets(chunks map[bpf.PortKey]bpf.PortChunk) (map[uint16][]policy.PortRange, error) {
	bySet := map[uint16][]bpf.PortKey{}
	for k := range chunks {
		if int(k.Chunk) >= chunksPerSet {
			return nil, fmt.Errorf("port set %d has chunk %d, beyond port 65535", k.Set, k.Chunk)
		}
		bySet[k.Set] = append(bySet[k.Set], k)
	}
	out := map[uint16][]policy.PortRange{}
	for set, keys := range bySet {
		slices.SortFunc(keys, func(a, b bpf.PortKey) int { return int(a.Chunk) - int(b.Chunk) })
		var dense [1024]uint64
		for _, k := range keys {
			chunk := chunks[k]
			copy(dense[int(k.Chunk)*len(chunk.Bits):], chunk.Bits[:])
		}
		out[set] = bitmapRanges(&dense)
	}
	return out, nil
}
