package policy

import (
	"errors"
	"strings"
	"testing"
)

func TestParseRedirects(t *testing.T) {
	tests := map[string]string{
		"":                                 "",
		"udp:53=127.0.0.1:5353":            "udp:53=127.0.0.1:5353",
		"53=127.0.0.1:5353":                "tcp:53=127.0.0.1:5353,udp:53=127.0.0.1:5353",
		"10.0.0.1:8080=127.0.0.1:3128":     "tcp:10.0.0.1:8080=127.0.0.1:3128,udp:10.0.0.1:8080=127.0.0.1:3128",
		"tcp:[2001:db8::1]:443=[::1]:8443": "tcp:[2001:db8::1]:443=[::1]:8443",
		"udp:53=127.0.0.1:5353, udp:53=[::1]:5353":    "udp:53=127.0.0.1:5353,udp:53=[::1]:5353",
		"udp:53=127.0.0.1:5353 tcp:53=127.0.0.1:5353": "tcp:53=127.0.0.1:5353,udp:53=127.0.0.1:5353",
	}
	for in, want := range tests {
		rs, err := ParseRedirects(in)
		if err != nil {
			t.Errorf("ParseRedirects(%q): %v", in, err)
			continue
		}
		if got := RedirectsString(rs); got != want {
			t.Errorf("ParseRedirects(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestParseRedirectsErrors(t *testing.T) {
	tests := []struct {
		value    string
		position int
		reason   string
	}{
		{"53", 1, "want MATCH=TARGET"},
		{"udp:53=127.0.0.1", 1, "not ADDR:PORT"},
		{"udp:53=127.0.0.1:0", 1, "port 0"},
		{"udp:0=127.0.0.1:53", 1, "out of range"},
		{"udp:53=localhost:53", 1, "not ADDR:PORT"},
		{"10.0.0.1:80=[::1]:80", 1, "different IP families"},
		{"udp:53=127.0.0.1:5353,udp:53=127.0.0.2:5353", 2, "redirects udp:53 (any IPv4 address) again"},
		{"udp:53=[::ffff:127.0.0.1]:53", 1, "IPv4-mapped"},
		{"udp:53=0.0.0.0:53", 1, "not a usable address"},
		{"sctp:53=127.0.0.1:53", 1, "not ADDR:PORT"},
	}
	for _, tt := range tests {
		_, err := ParseRedirects(tt.value)
		var item *ItemError
		if !errors.As(err, &item) || item.Position != tt.position || !strings.Contains(item.Reason, tt.reason) {
			t.Errorf("ParseRedirects(%q) = %v; want item %d: %q", tt.value, err, tt.position, tt.reason)
		}
	}
}

func FuzzParseRedirects(f *testing.F) {
	for _, s := range []string{"udp:53=127.0.0.1:5353", "10.0.0.1:8080=127.0.0.1:3128,tcp:[::1]:1=[::1]:2", "53=[fd00::1]:53"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, value string) {
		rs, err := ParseRedirects(value)
		if err != nil {
			var item *ItemError
			if !errors.As(err, &item) || strings.ContainsAny(err.Error(), "\n") {
				t.Fatalf("%q: bad error %v", value, err)
			}
			return
		}
		again, err := ParseRedirects(RedirectsString(rs))
		if err != nil || RedirectsString(again) != RedirectsString(rs) {
			t.Fatalf("%q renders as %q, which parses to %v, %v", value, RedirectsString(rs), again, err)
		}
		for _, r := range rs {
			if r.Target.Port() == 0 || r.Match.Port() == 0 || (r.Match.Addr().IsValid() && r.Match.Addr().Is4() != r.Is4()) {
				t.Fatalf("%q gave a bad redirect %v", value, r)
			}
		}
	})
}
