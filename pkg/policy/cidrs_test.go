package policy

import (
	"errors"
	"net/netip"
	"strings"
	"testing"
)

func TestParseAddressRules(t *testing.T) {
	tests := []struct {
		value, canonical string
	}{
		{"", ""},
		{"0.0.0.0/0 except 10.0.0.0/8,172.16.0.0/12, 192.168.0.0/16; ::/0 except fc00::/7",
			"0.0.0.0/0 except 10.0.0.0/8,172.16.0.0/12,192.168.0.0/16; ::/0 except fc00::/7"},
		{"10.96.0.10 ports udp:53, tcp:53", "10.96.0.10/32 ports 53"},
		{"10.0.0.0/8, fd00::/8 EXCEPT 10.1.0.0/16 Ports tcp:443", "10.0.0.0/8,fd00::/8 except 10.1.0.0/16 ports tcp:443"},
		{"  ::1  ", "::1/128"},
		{"0.0.0.0/0 except 10.0.0.0/8 172.16.0.0/12 ports 80 443", "0.0.0.0/0 except 10.0.0.0/8,172.16.0.0/12 ports 80,443"},
	}
	for _, tt := range tests {
		rules, err := ParseAddressRules(tt.value)
		if err != nil {
			t.Errorf("ParseAddressRules(%q): %v", tt.value, err)
			continue
		}
		if got := rules.String(); got != tt.canonical {
			t.Errorf("ParseAddressRules(%q) = %q, want %q", tt.value, got, tt.canonical)
		}
	}
}

func TestParseAddressRulesErrors(t *testing.T) {
	tests := []struct {
		value    string
		position int
		reason   string
	}{
		{"10.0.0.1/8", 1, "host bits set; did you mean 10.0.0.0/8?"},
		{"10.0.0.0/8;", 2, "empty rule"},
		{"10.0.0.0/33", 1, "is not a CIDR"},
		{"example.com", 1, "is not a CIDR"},
		{"10.0.0.0/8 192.168.0/16", 1, "is not a CIDR"},
		{"except 10.0.0.0/8", 1, "missing CIDR"},
		{"10.0.0.0/8 except 192.168.0.0/16", 1, "not inside any of the rule's CIDRs"},
		{"10.0.0.0/8 except fd00::/8", 1, "not inside"},
		{"10.0.0.0/8 ports", 1, "needs a port list"},
		{"10.0.0.0/8 ports 0", 1, "out of range"},
		{"10.0.0.0/8 ports 80 except 10.1.0.0/16", 1, "must come before"},
		{"10.0.0.0/8 except 10.1.0.0/16 except 10.2.0.0/16", 1, "appears twice"},
		{"::ffff:10.0.0.0/104", 1, "IPv4-mapped"},
		{"fe80::1%eth0", 1, "is not a CIDR"},
		{"1.1.1.1/32; 2.2.2.3/31", 2, "host bits"},
	}
	for _, tt := range tests {
		_, err := ParseAddressRules(tt.value)
		var item *ItemError
		if !errors.As(err, &item) || item.Position != tt.position || !strings.Contains(item.Reason, tt.reason) {
			t.Errorf("ParseAddressRules(%q) = %v; want rule %d: %q", tt.value, err, tt.position, tt.reason)
		}
	}
}

func TestAddressRulesAllows(t *testing.T) {
	rules, err := ParseAddressRules("0.0.0.0/0 except 10.0.0.0/8; 10.96.0.10 ports udp:53; ::/0 except fc00::/7")
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		p    Protocol
		addr string
		port uint16
		want bool
	}{
		{TCP, "1.1.1.1", 443, true}, {TCP, "10.1.2.3", 443, false},
		{UDP, "10.96.0.10", 53, true}, {TCP, "10.96.0.10", 53, false}, {UDP, "10.96.0.10", 54, false},
		{TCP, "::ffff:1.1.1.1", 80, true}, {TCP, "::ffff:10.0.0.1", 80, false},
		{TCP, "2001:db8::1", 80, true}, {TCP, "fd00::1", 80, false},
	} {
		if got := rules.Allows(c.p, netip.MustParseAddr(c.addr), c.port); got != c.want {
			t.Errorf("Allows(%v, %s, %d) = %v", c.p, c.addr, c.port, got)
		}
	}
	if (AddressRules{}).Allows(TCP, netip.MustParseAddr("1.1.1.1"), 80) {
		t.Error("no rules allowed something")
	}
}

func FuzzParseAddressRules(f *testing.F) {
	for _, s := range []string{"", "0.0.0.0/0 except 10.0.0.0/8", "10.0.0.1 ports tcp:80; ::/0", "1.2.3.0/24,5.6.0.0/16 except 1.2.3.4 ports 1-100,udp:53"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, value string) {
		rules, err := ParseAddressRules(value)
		if err != nil {
			var item *ItemError
			if !errors.As(err, &item) || item.Position < 1 || strings.ContainsAny(err.Error(), "\n") {
				t.Fatalf("%q: bad error %v", value, err)
			}
			return
		}
		again, err := ParseAddressRules(rules.String())
		if err != nil || again.String() != rules.String() {
			t.Fatalf("%q renders as %q, which parses to %q, %v", value, rules.String(), again.String(), err)
		}
	})
}
