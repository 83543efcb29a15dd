package policy

import (
	"errors"
	"strings"
	"testing"
)

func TestParsePortSet(t *testing.T) {
	tests := []struct {
		value    string
		tcp, udp string // expected ranges, rendered
	}{
		{"", "", ""},
		{"   ", "", ""},
		{"80", "80", "80"},
		{"80,443", "80 443", "80 443"},
		{" 443 , 80 ", "80 443", "80 443"},
		{"tcp:80", "80", ""},
		{"udp:53", "", "53"},
		{"TCP:80,Udp:53", "80", "53"},
		{"tcp:8000-9000", "8000-9000", ""},
		{"1-65535", "1-65535", "1-65535"},
		{"80,81,82", "80-82", "80-82"},
		{"80-90,85-100", "80-100", "80-100"},
		{"10-20,21-30", "10-30", "10-30"},
		{"tcp:5,udp:5", "5", "5"},
		{"065535", "65535", "65535"},
		{"80 443", "80 443", "80 443"},
		{"tcp:80\tudp:53,\n443", "80 443", "53 443"},
		{"80,,443,", "80 443", "80 443"},
	}
	for _, tt := range tests {
		set, err := ParsePortSet(tt.value)
		if err != nil {
			t.Errorf("ParsePortSet(%q): %v", tt.value, err)
			continue
		}
		if got := render(set.Ranges(TCP)); got != tt.tcp {
			t.Errorf("ParsePortSet(%q) tcp = %q, want %q", tt.value, got, tt.tcp)
		}
		if got := render(set.Ranges(UDP)); got != tt.udp {
			t.Errorf("ParsePortSet(%q) udp = %q, want %q", tt.value, got, tt.udp)
		}
	}
}

func TestParsePortSetErrors(t *testing.T) {
	tests := []struct {
		value    string
		position int
		reason   string
	}{
		{"0", 1, "out of range"},
		{"65536", 1, "out of range"},
		{"99999999999999999999", 1, "out of range"},
		{"http", 1, "not a port number"},
		{"80,x", 2, "not a port number"},
		{"-80", 1, "missing port number"},
		{"80-", 1, "missing port number"},
		{"90-80", 1, "reversed"},
		{"1-2-3", 1, "not a port number"},
		{"sctp:80", 1, "unknown protocol"},
		{"tcp:", 1, "missing port number"},
		{"+80", 1, "not a port number"},
		{"8 0", 2, "out of range"},
		{"tcp: 80", 1, "missing port number"},
		{"80;443", 1, "not a port number"},
		{"tcp:udp:80", 1, "not a port number"},
	}
	for _, tt := range tests {
		_, err := ParsePortSet(tt.value)
		var item *ItemError
		if !errors.As(err, &item) {
			t.Errorf("ParsePortSet(%q) = %v, want an ItemError", tt.value, err)
			continue
		}
		if item.Position != tt.position || !strings.Contains(item.Reason, tt.reason) {
			t.Errorf("ParsePortSet(%q) = %v, want position %d and %q", tt.value, err, tt.position, tt.reason)
		}
	}
}

func TestPortSetString(t *testing.T) {
	tests := map[string]string{
		"":                      "",
		"443,80":                "80,443",
		"tcp:80,udp:80":         "80",
		"tcp:1-100,udp:50-60":   "50-60,tcp:1-49,tcp:61-100",
		"udp:53,tcp:443":        "tcp:443,udp:53",
		"tcp:10-20,udp:15-30":   "15-20,tcp:10-14,udp:21-30",
		"1-65535":               "1-65535",
		"tcp:1-65535,udp:65535": "65535,tcp:1-65534",
	}
	for in, want := range tests {
		set, err := ParsePortSet(in)
		if err != nil {
			t.Fatal(err)
		}
		if got := set.String(); got != want {
			t.Errorf("String of %q = %q, want %q", in, got, want)
		}
	}
}

func TestPortSetContains(t *testing.T) {
	set, err := ParsePortSet("tcp:80,tcp:443,udp:53,1000-2000")
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		p    Protocol
		port uint16
		want bool
	}{
		{TCP, 80, true}, {UDP, 80, false}, {TCP, 443, true}, {TCP, 444, false},
		{UDP, 53, true}, {TCP, 53, false}, {TCP, 999, false}, {TCP, 1000, true},
		{UDP, 1500, true}, {UDP, 2000, true}, {UDP, 2001, false}, {TCP, 0, false},
	} {
		if got := set.Contains(c.p, c.port); got != c.want {
			t.Errorf("Contains(%v, %d) = %v, want %v", c.p, c.port, got, c.want)
		}
	}
}

// FuzzParsePortSet checks that a parsed set allows exactly the ports that its
// items name, and that its String form parses back to the same set.
func FuzzParsePortSet(f *testing.F) {
	for _, seed := range []string{"", "80", "80,443", "tcp:1-1024, udp:53", "0", "1-65535", "90-80", "x", "tcp:", ",,"} {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, value string) {
		set, err := ParsePortSet(value)
		if err != nil {
			var item *ItemError
			if !errors.As(err, &item) || item.Position < 1 {
				t.Fatalf("ParsePortSet(%q) error %v is not an ItemError with a position", value, err)
			}
			if strings.ContainsAny(err.Error(), "\n\r") {
				t.Fatalf("error for %q spans lines: %q", value, err)
			}
			return
		}
		for _, p := range Protocols {
			for _, r := range set.Ranges(p) {
				if r.Low < 1 || r.Low > r.High {
					t.Fatalf("ParsePortSet(%q) gave bad range %v", value, r)
				}
			}
		}
		// Every port named by an item is allowed, for the item's protocols.
		want := [2]map[uint16]bool{{}, {}}
		{
			for _, item := range listItems(value) {
				protos, r, err := parsePortItem(item, 1)
				if err != nil {
					t.Fatalf("item %q failed alone: %v", item, err)
				}
				for _, p := range protos {
					for port := int(r.Low); port <= int(r.High); port++ {
						want[p][uint16(port)] = true
					}
				}
			}
		}
		for _, p := range Protocols {
			for port := 0; port <= 65535; port++ {
				if set.Contains(p, uint16(port)) != want[p][uint16(port)] {
					t.Fatalf("ParsePortSet(%q): %v port %d allowed=%v, want %v", value, p, port, !want[p][uint16(port)], want[p][uint16(port)])
				}
			}
		}
		again, err := ParsePortSet(set.String())
		if err != nil || !again.Equal(set) {
			t.Fatalf("String %q of %q does not parse back: %v", set.String(), value, err)
		}
	})
}

func render(rs []PortRange) string {
	var parts []string
	for _, r := range rs {
		parts = append(parts, r.String())
	}
	return strings.Join(parts, " ")
}
