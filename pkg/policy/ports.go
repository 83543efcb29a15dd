package policy

import (
	"fmt"
	"slices"
	"strconv"
	"strings"
	"unicode"
)

// Protocol is a transport protocol that a port rule applies to.
type Protocol uint8

const (
	TCP Protocol = iota
	UDP
)

// Protocols lists every Protocol, in the order that policies print them.
var Protocols = []Protocol{TCP, UDP}

func (p Protocol) String() string {
	if p == TCP {
		return "tcp"
	}
	return "udp"
}

// PortRange is an inclusive range of ports, 1-65535, Low <= High.
type PortRange struct {
	Low, High uint16
}

func (r PortRange) String() string {
	if r.Low == r.High {
		return strconv.Itoa(int(r.Low))
	}
	return fmt.Sprintf("%d-%d", r.Low, r.High)
}

// PortSet holds the allowed ports of each protocol, as sorted, merged ranges.
// The zero value allows no port.
type PortSet struct {
	ranges [2][]PortRange // indexed by Protocol
}

// Ranges returns the allowed ranges of one protocol, sorted and disjoint.
func (s PortSet) Ranges(p Protocol) []PortRange {
	return s.ranges[p]
}

// Add allows ranges for one protocol, keeping the ranges sorted and merged.
func (s *PortSet) Add(p Protocol, rs ...PortRange) {
	s.ranges[p] = mergeRanges(append(s.ranges[p], rs...))
}

// Contains reports whether the set allows a port for a protocol.
func (s PortSet) Contains(p Protocol, port uint16) bool {
	rs := s.ranges[p]
	i, _ := slices.BinarySearchFunc(rs, port, func(r PortRange, port uint16) int {
		switch {
		case r.High < port:
			return -1
		case r.Low > port:
			return 1
		}
		return 0
	})
	return i < len(rs) && rs[i].Low <= port && port <= rs[i].High
}

// Equal reports whether two sets allow the same ports.
func (s PortSet) Equal(o PortSet) bool {
	return slices.Equal(s.ranges[TCP], o.ranges[TCP]) && slices.Equal(s.ranges[UDP], o.ranges[UDP])
}

// String renders the set in the allow-ports grammar, in its shortest form:
// ranges that both protocols share are written once, without a protocol.
// Parsing the result gives back an equal set. The empty set is "".
func (s PortSet) String() string {
	var items []string
	both := intersect(s.ranges[TCP], s.ranges[UDP])
	for _, r := range both {
		items = append(items, r.String())
	}
	for _, p := range Protocols {
		for _, r := range subtract(s.ranges[p], both) {
			items = append(items, p.String()+":"+r.String())
		}
	}
	return strings.Join(items, ",")
}

// ParsePortSet parses the value of an allow-ports annotation: a list of
// [tcp:|udp:]PORT or [tcp:|udp:]LOW-HIGH items, separated by commas or
// whitespace (Podman splits --annotation values at commas, so "80 443"
// works there as written). An item without a protocol means both. The empty
// string allows no port. An error names the item and its 1-based position;
// the caller adds the key.
func ParsePortSet(value string) (PortSet, error) {
	return parsePortList(value, 1)
}

// ParseBindPortSet parses the value of an allow-bind annotation: the
// allow-ports grammar, where port 0 is allowed too and means bind(2) with
// port 0, which lets the kernel pick an ephemeral port.
func ParseBindPortSet(value string) (PortSet, error) {
	return parsePortList(value, 0)
}

func parsePortList(value string, minPort int) (PortSet, error) {
	var set PortSet
	for i, item := range listItems(value) {
		protos, r, err := parsePortItem(item, minPort)
		if err != nil {
			return PortSet{}, &ItemError{Item: item, Position: i + 1, Reason: err.Error()}
		}
		for _, p := range protos {
			set.ranges[p] = append(set.ranges[p], r)
		}
	}
	for _, p := range Protocols {
		set.ranges[p] = mergeRanges(set.ranges[p])
	}
	return set, nil
}

// listItems splits a list at commas and whitespace. Empty items, as in
// "80,,443", are dropped.
func listItems(value string) []string {
	return strings.FieldsFunc(value, func(r rune) bool { return r == ',' || unicode.IsSpace(r) })
}

func parsePortItem(item string, minPort int) ([]Protocol, PortRange, error) {
	protos := Protocols
	if name, rest, ok := strings.Cut(item, ":"); ok {
		switch strings.ToLower(strings.TrimSpace(name)) {
		case "tcp":
			protos = []Protocol{TCP}
		case "udp":
			protos = []Protocol{UDP}
		default:
			return nil, PortRange{}, fmt.Errorf("unknown protocol %s; want tcp or udp", quote(name))
		}
		item = rest
	}
	lowText, highText, isRange := strings.Cut(item, "-")
	low, err := parsePort(lowText, minPort)
	if err != nil {
		return nil, PortRange{}, err
	}
	high := low
	if isRange {
		if high, err = parsePort(highText, minPort); err != nil {
			return nil, PortRange{}, err
		}
		if low > high {
			return nil, PortRange{}, fmt.Errorf("range %d-%d is reversed; want LOW-HIGH with LOW <= HIGH", low, high)
		}
	}
	return protos, PortRange{Low: low, High: high}, nil
}

func parsePort(text string, minPort int) (uint16, error) {
	text = strings.TrimSpace(text)
	if text == "" {
		return 0, fmt.Errorf("missing port number")
	}
	for _, c := range text {
		if c < '0' || c > '9' {
			return 0, fmt.Errorf("%s is not a port number; want %d-65535", quote(text), minPort)
		}
	}
	n, err := strconv.ParseUint(text, 10, 32)
	if err != nil || n < uint64(minPort) || n > 65535 {
		return 0, fmt.Errorf("port %s is out of range; want %d-65535", clip(text), minPort)
	}
	return uint16(n), nil
}

// mergeRanges sorts ranges and joins those that overlap or touch.
func mergeRanges(rs []PortRange) []PortRange {
	if len(rs) == 0 {
		return nil
	}
	slices.SortFunc(rs, func(a, b PortRange) int { return int(a.Low) - int(b.Low) })
	out := []PortRange{rs[0]}
	for _, r := range rs[1:] {
		last := &out[len(out)-1]
		if int(r.Low) <= int(last.High)+1 {
			last.High = max(last.High, r.High)
			continue
		}
		out = append(out, r)
	}
	return out
}

// intersect returns the ports in both sorted, disjoint range lists.
func intersect(a, b []PortRange) []PortRange {
	var out []PortRange
	for i, j := 0, 0; i < len(a) && j < len(b); {
		low, high := max(a[i].Low, b[j].Low), min(a[i].High, b[j].High)
		if low <= high {
			out = append(out, PortRange{low, high})
		}
		if a[i].High < b[j].High {
			i++
		} else {
			j++
		}
	}
	return out
}

// subtract returns the ports of a that are not in b; both sorted and disjoint.
func subtract(a, b []PortRange) []PortRange {
	var out []PortRange
	j := 0
	for _, r := range a {
		low := int(r.Low)
		for ; j < len(b) && int(b[j].High) < low; j++ {
		}
		for k := j; k < len(b) && int(b[k].Low) <= int(r.High); k++ {
			if int(b[k].Low) > low {
				out = append(out, PortRange{uint16(low), b[k].Low - 1})
			}
			low = int(b[k].High) + 1
		}
		if low <= int(r.High) {
			out = append(out, PortRange{uint16(low), r.High})
		}
	}
	return out
}
