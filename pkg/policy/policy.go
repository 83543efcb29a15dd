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

// KeyAllowPorts allowlists destination ports, e.g. "80,443" or "tcp:8000-9000".
const KeyAllowPorts = Prefix + "allow-ports"

// Keys lists every annotation key that cgpol reads.
var Keys = []string{KeyAllowPorts}

// Policy is what one cgroup is allowed to do on the network.
type Policy struct {
	// EgressPorts, when set, allowlists the destination ports of TCP and
	// UDP and denies every other protocol. Nil leaves destinations open.
	EgressPorts *PortSet
}

// Equal reports whether two policies allow the same things.
func (p Policy) Equal(o Policy) bool {
	if (p.EgressPorts == nil) != (o.EgressPorts == nil) {
		return false
	}
	return p.EgressPorts == nil || p.EgressPorts.Equal(*o.EgressPorts)
}

// Annotations renders the policy as the annotations that ask for it.
func (p Policy) Annotations() map[string]string {
	ann := map[string]string{}
	if p.EgressPorts != nil {
		ann[KeyAllowPorts] = p.EgressPorts.String()
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
		switch key {
		case KeyAllowPorts:
			set, err := ParsePortSet(value)
			if err != nil {
				return Policy{}, true, &AnnotationError{Key: key, Value: value, Err: err}
			}
			p.EgressPorts = &set
		default:
			return Policy{}, true, &AnnotationError{Key: key, Value: value,
				Err: fmt.Errorf("unknown cgpol annotation; known keys: %s", strings.Join(Keys, ", "))}
		}
	}
	return p, found, nil
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
