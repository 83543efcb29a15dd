package policy

import (
	"errors"
	"strings"
	"testing"
)

func TestFromAnnotations(t *testing.T) {
	p, found, err := FromAnnotations(map[string]string{
		KeyAllowPorts:            "443, tcp:80",
		"io.kubernetes.pod/name": "web",
	})
	if err != nil || !found {
		t.Fatalf("FromAnnotations = %v, %v", found, err)
	}
	if got := p.EgressPorts.String(); got != "443,tcp:80" {
		t.Errorf("ports = %q", got)
	}

	p, found, err = FromAnnotations(map[string]string{"other.io/x": "1"})
	if err != nil || found || p.EgressPorts != nil {
		t.Errorf("no cgpol keys: got %+v, %v, %v", p, found, err)
	}

	p, found, err = FromAnnotations(map[string]string{KeyAllowPorts: ""})
	if err != nil || !found || p.EgressPorts == nil || p.EgressPorts.String() != "" {
		t.Errorf("empty allow-ports must allow no port: %+v, %v, %v", p, found, err)
	}
}

func TestFromAnnotationsErrors(t *testing.T) {
	tests := []struct {
		ann  map[string]string
		want string
	}{
		{map[string]string{KeyAllowPorts: "80,x"},
			`invalid annotation cgpol.io/allow-ports="80,x": item 2 "x": "x" is not a port number; want 1-65535`},
		{map[string]string{KeyAllowPorts: "70000"},
			`invalid annotation cgpol.io/allow-ports="70000": item 1 "70000": port 70000 is out of range; want 1-65535`},
		{map[string]string{"cgpol.io/allow-port": "80"},
			`invalid annotation cgpol.io/allow-port="80": unknown cgpol annotation; known keys: cgpol.io/allow-ports`},
		{map[string]string{KeyAllowPorts: "80\n,x"},
			`invalid annotation cgpol.io/allow-ports="80\n,x": item 2 "x"`},
	}
	for _, tt := range tests {
		_, found, err := FromAnnotations(tt.ann)
		var ae *AnnotationError
		if !found || !errors.As(err, &ae) {
			t.Errorf("FromAnnotations(%v) = %v, want an AnnotationError", tt.ann, err)
			continue
		}
		if !strings.HasPrefix(err.Error(), tt.want) || strings.Contains(err.Error(), "\n") {
			t.Errorf("error = %q\n want prefix %q on one line", err, tt.want)
		}
	}
}

func TestAnnotationErrorTruncatesLongValues(t *testing.T) {
	long := strings.Repeat("8", 10000) + "x"
	_, _, err := FromAnnotations(map[string]string{KeyAllowPorts: long})
	if err == nil || len(err.Error()) > 600 {
		t.Fatalf("error for a 10k value is %d bytes", len(err.Error()))
	}
}

func TestPolicyRoundTrip(t *testing.T) {
	p, _, err := FromAnnotations(map[string]string{KeyAllowPorts: "udp:53,tcp:443,80"})
	if err != nil {
		t.Fatal(err)
	}
	again, _, err := FromAnnotations(p.Annotations())
	if err != nil || !again.Equal(p) {
		t.Fatalf("round trip of %s gave %s, %v", p, again, err)
	}
	if got := p.String(); got != `cgpol.io/allow-ports="80,tcp:443,udp:53"` {
		t.Errorf("String = %s", got)
	}
	if (Policy{}).String() != "unrestricted" {
		t.Errorf("zero policy String = %s", Policy{})
	}
}

func TestFromAnnotationsAllKeys(t *testing.T) {
	p, _, err := FromAnnotations(map[string]string{
		KeyAllowPorts: "443",
		KeyAllowCIDRs: "0.0.0.0/0 except 10.0.0.0/8",
		KeyAllowBind:  "0,8000-9000",
		KeyRedirect:   "udp:53=127.0.0.1:5353",
		KeyMode:       "Audit",
		KeyRawSockets: "allow",
	})
	if err != nil {
		t.Fatal(err)
	}
	if !p.Audit || p.DeniesRaw() || p.BindPorts.String() != "0,8000-9000" || len(p.Redirects) != 1 || len(p.EgressCIDRs.Rules) != 1 {
		t.Errorf("parsed %+v", p)
	}
	again, _, err := FromAnnotations(p.Annotations())
	if err != nil || !again.Equal(p) {
		t.Errorf("round trip: %v, %v", again, err)
	}
}

func TestRawSocketsDefault(t *testing.T) {
	for _, tt := range []struct {
		ann  map[string]string
		deny bool
	}{
		{map[string]string{KeyAllowPorts: "80"}, true},
		{map[string]string{KeyAllowCIDRs: "0.0.0.0/0"}, true},
		{map[string]string{KeyAllowBind: "80"}, false},
		{map[string]string{KeyMode: "audit"}, false},
		{map[string]string{KeyAllowPorts: "80", KeyRawSockets: "allow"}, false},
		{map[string]string{KeyAllowBind: "80", KeyRawSockets: "deny"}, true},
	} {
		p, _, err := FromAnnotations(tt.ann)
		if err != nil || p.DeniesRaw() != tt.deny {
			t.Errorf("%v: DeniesRaw = %v, %v; want %v", tt.ann, p.DeniesRaw(), err, tt.deny)
		}
	}
}

func TestModeAndRawErrors(t *testing.T) {
	for ann, want := range map[string]string{
		KeyMode:       `invalid annotation cgpol.io/mode="strict": want enforce or audit`,
		KeyRawSockets: `invalid annotation cgpol.io/raw-sockets="strict": want deny or allow`,
	} {
		_, _, err := FromAnnotations(map[string]string{ann: "strict"})
		if err == nil || err.Error() != want {
			t.Errorf("%s: %v, want %q", ann, err, want)
		}
	}
	_, _, err := FromAnnotations(map[string]string{KeyAllowBind: "0-10,70000"})
	if err == nil || !strings.Contains(err.Error(), `item 2 "70000": port 70000 is out of range; want 0-65535`) {
		t.Errorf("allow-bind: %v", err)
	}
}

// FuzzFromAnnotations feeds one value to every key: the result is either
// one AnnotationError line naming the key, or a policy whose canonical
// annotations parse back to the same policy.
func FuzzFromAnnotations(f *testing.F) {
	for _, s := range []string{"", "80", "audit", "deny", "0.0.0.0/0 except 10.0.0.0/8", "udp:53=127.0.0.1:5353", "0,8000-9000"} {
		f.Add(uint8(0), s)
	}
	f.Fuzz(func(t *testing.T, which uint8, value string) {
		key := Keys[int(which)%len(Keys)]
		p, found, err := FromAnnotations(map[string]string{key: value})
		if !found {
			t.Fatal("a cgpol key was not found")
		}
		if err != nil {
			var ae *AnnotationError
			if !errors.As(err, &ae) || ae.Key != key || strings.ContainsAny(err.Error(), "\n\r") || !strings.HasPrefix(err.Error(), "invalid annotation "+key+"=") {
				t.Fatalf("%s=%q: bad error %q", key, value, err)
			}
			return
		}
		again, _, err := FromAnnotations(p.Annotations())
		if err != nil || !again.Equal(p) {
			t.Fatalf("%s=%q: canonical %v parses to %v, %v", key, value, p.Annotations(), again.Annotations(), err)
		}
	})
}
