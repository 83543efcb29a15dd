// Package policy is cgpol's policy language: annotation values parsed into
// typed, validated policies. It knows nothing of BPF; package compile turns a
// Policy into map entries.
package policy

import (
	"fmt"
	"maps"
	"slices"
	"strconv"
	"strings"
)

// Prefix starts every cgpol annotation key.
const Prefix = "cgpol.io/"

// The annotation keys. Each narrows what a container may do; a call must
// pass every one that is set.
const (
	// KeyAllowPorts allowlists destination ports: "80,443", "tcp:8000-9000".
	KeyAllowPorts = Prefix + "allow-ports"
	// KeyAllowCIDRs allowlists destinations by address, optionally by port:
	// "0.0.0.0/0 except 10.0.0.0/8; 10.96.0.10 ports udp:53".
	KeyAllowCIDRs = Prefix + "allow-cidrs"
	// KeyAllowBind allowlists the local ports that may be bound: "8000-9000".
	KeyAllowBind = Prefix + "allow-bind"
	// KeyRedirect rewrites destinations: "udp:53=127.0.0.1:5353".
	KeyRedirect = Prefix + "redirect"
	// KeyMode is "enforce" (the default) or "audit": allow, but count and
	// report what enforce would deny.
	KeyMode = Prefix + "mode"
	// KeyRawSockets is "deny" or "allow". Raw sockets bypass the other
	// hooks; they are denied by default under an egress allowlist.
	KeyRawSockets = Prefix + "raw-sockets"
)

// Keys lists every annotation key that cgpol reads.
var Keys = []string{KeyAllowPorts, KeyAllowCIDRs, KeyAllowBind, KeyRedirect, KeyMode, KeyRawSockets}

// RawSockets says what happens to raw inet sockets.
type RawSockets uint8

const (
	RawDefault RawSockets = iota // deny under an egress allowlist, else allow
	RawDeny
	RawAllow
)

// Policy is what one cgroup is allowed to do on the network.
type Policy struct {
	// EgressPorts, when set, allowlists the destination ports of TCP and
	// UDP and denies every other protocol. Nil leaves ports open.
	EgressPorts *PortSet
	// EgressCIDRs, when set, allowlists destinations by address (and port).
	EgressCIDRs *AddressRules
	// BindPorts, when set, allowlists the local ports that bind(2) may use;
	// port 0 is bind's "any ephemeral port".
	BindPorts *PortSet
	// Redirects rewrite destinations, after both the dialled destination and
	// the target pass the allowlists.
	Redirects []Redirect
	// Audit allows every call, but counts and reports those that the policy
	// would deny.
	Audit bool
	// RawSockets says whether raw inet sockets may be created.
	RawSockets RawSockets
}

// HasEgressAllowlist reports whether destinations are restricted.
func (p Policy) HasEgressAllowlist() bool {
	return p.EgressPorts != nil || p.EgressCIDRs != nil
}

// DeniesRaw reports whether raw inet sockets are denied.
func (p Policy) DeniesRaw() bool {
	return p.RawSockets == RawDeny || (p.RawSockets == RawDefault && p.HasEgressAllowlist())
}

// Equal reports whether two policies have the same canonical annotations.
// For ports, bind ports, redirects and modes that is the same behaviour;
// address rules compare as written (package compile compares behaviour).
func (p Policy) Equal(o Policy) bool {
	return maps.Equal(p.Annotations(), o.Annotations())
}

// Annotations renders the policy as the annotations that ask for it, in
// canonical form. raw-sockets appears only where it differs from its default.
func (p Policy) Annotations() map[string]string {
	ann := map[string]string{}
	if p.EgressPorts != nil {
		ann[KeyAllowPorts] = p.EgressPorts.String()
	}
	if p.EgressCIDRs != nil {
		ann[KeyAllowCIDRs] = p.EgressCIDRs.String()
	}
	if p.BindPorts != nil {
		ann[KeyAllowBind] = p.BindPorts.String()
	}
	if len(p.Redirects) > 0 {
		ann[KeyRedirect] = RedirectsString(p.Redirects)
	}
	if p.Audit {
		ann[KeyMode] = "audit"
	}
	if p.DeniesRaw() != p.HasEgressAllowlist() {
		ann[KeyRawSockets] = map[bool]string{true: "deny", false: "allow"}[p.DeniesRaw()]
	}
	return ann
}

// String renders the policy as sorted key=value annotations.
func (p Policy) String() string {
	ann := p.Annotations()
	if len(ann) == 0 {
		return "unrestricted"
	}
	var parts []string
	for _, k := range slices.Sorted(maps.Keys(ann)) {
		parts = append(parts, fmt.Sprintf("%s=%q", k, ann[k]))
	}
	return strings.Join(parts, " ")
}

// FromAnnotations builds the policy that a set of annotations asks for.
// found is false when no key starts with Prefix. A key under Prefix that
// cgpol does not know is an error, so that a typo never leaves a container
// unrestricted.
func FromAnnotations(annotations map[string]string) (p Policy, found bool, err error) {
	for _, key := range slices.Sorted(maps.Keys(annotations)) {
		if !strings.HasPrefix(key, Prefix) {
			continue
		}
		found = true
		value := annotations[key]
		if err := p.set(key, value); err != nil {
			return Policy{}, true, &AnnotationError{Key: key, Value: value, Err: err}
		}
	}
	return p, found, nil
}

// set applies one annotation to p.
func (p *Policy) set(key, value string) error {
	switch key {
	case KeyAllowPorts:
		set, err := ParsePortSet(value)
		p.EgressPorts = &set
		return err
	case KeyAllowCIDRs:
		rules, err := ParseAddressRules(value)
		p.EgressCIDRs = &rules
		return err
	case KeyAllowBind:
		set, err := ParseBindPortSet(value)
		p.BindPorts = &set
		return err
	case KeyRedirect:
		rs, err := ParseRedirects(value)
		p.Redirects = rs
		return err
	case KeyMode:
		switch strings.TrimSpace(strings.ToLower(value)) {
		case "enforce":
			p.Audit = false
		case "audit":
			p.Audit = true
		default:
			return fmt.Errorf("want enforce or audit")
		}
	case KeyRawSockets:
		switch strings.TrimSpace(strings.ToLower(value)) {
		case "deny":
			p.RawSockets = RawDeny
		case "allow":
			p.RawSockets = RawAllow
		default:
			return fmt.Errorf("want deny or allow")
		}
	default:
		return fmt.Errorf("unknown cgpol annotation; known keys: %s", strings.Join(Keys, ", "))
	}
	return nil
}

// AnnotationError is an annotation that cannot be turned into a policy. Its
// message is one line naming the key, the value and the problem.
type AnnotationError struct {
	Key, Value string
	Err        error
}

func (e *AnnotationError) Error() string {
	return fmt.Sprintf("invalid annotation %s=%s: %v", e.Key, quote(e.Value), e.Err)
}

func (e *AnnotationError) Unwrap() error { return e.Err }

// ItemError is one bad item of a comma-separated list, with its 1-based position.
type ItemError struct {
	Item     string
	Position int
	Reason   string
}

func (e *ItemError) Error() string {
	return fmt.Sprintf("item %d %s: %s", e.Position, quote(e.Item), e.Reason)
}

// maxQuoted bounds how much of a bad value an error message repeats.
const maxQuoted = 100

// quote renders a user's text for a one-line error, cut to maxQuoted bytes.
func quote(text string) string {
	if len(text) > maxQuoted {
		return strconv.Quote(text[:maxQuoted]) + "..."
	}
	return strconv.Quote(text)
}

// clip cuts text that is known to be printable to maxQuoted bytes.
func clip(text string) string {
	if len(text) > maxQuoted {
		return text[:maxQuoted] + "..."
	}
	return text
}
