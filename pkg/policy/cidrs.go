package policy

import (
	"fmt"
	"net/netip"
	"slices"
	"strings"
)

// AddressRule allows destinations in CIDRs but not in Except, on Ports, as
// Kubernetes NetworkPolicy's ipBlock (cidr, except) and ports do.
type AddressRule struct {
	CIDRs  []netip.Prefix
	Except []netip.Prefix // each inside one of CIDRs
	Ports  *PortSet       // nil: any port
}

// AddressRules is the value of cgpol.io/allow-cidrs: a destination is
// allowed if any rule allows it. No rule allows nothing.
type AddressRules struct {
	Rules []AddressRule
}

// Keywords of the allow-cidrs grammar.
const (
	keywordExcept = "except"
	keywordPorts  = "ports"
)

// ParseAddressRules parses the value of an allow-cidrs annotation: rules
// separated by ";", each
//
//	CIDR[,CIDR...] [except CIDR[,CIDR...]] [ports PORTS]
//
// where lists are separated by commas or whitespace and PORTS is an
// allow-ports list. A bare address is a host route. The empty string allows
// no destination. An error names the rule and its
// 1-based position; the caller adds the key.
func ParseAddressRules(value string) (AddressRules, error) {
	var rules AddressRules
	if strings.TrimSpace(value) == "" {
		return AddressRules{Rules: []AddressRule{}}, nil
	}
	for i, text := range strings.Split(value, ";") {
		rule, err := parseAddressRule(strings.TrimSpace(text))
		if err != nil {
			return AddressRules{}, &ItemError{Item: strings.TrimSpace(text), Position: i + 1, Reason: err.Error()}
		}
		rules.Rules = append(rules.Rules, rule)
	}
	return rules, nil
}

func parseAddressRule(text string) (AddressRule, error) {
	var rule AddressRule
	if text == "" {
		return rule, fmt.Errorf("empty rule")
	}
	// Split the rule at its keywords: CIDRs, then except, then ports.
	parts := map[string][]string{}
	section := ""
	for _, word := range strings.Fields(text) {
		switch strings.ToLower(word) {
		case keywordExcept, keywordPorts:
			next := strings.ToLower(word)
			if _, seen := parts[next]; seen {
				return rule, fmt.Errorf("%q appears twice", next)
			}
			if next == keywordExcept && section == keywordPorts {
				return rule, fmt.Errorf("%q must come before %q", keywordExcept, keywordPorts)
			}
			section = next
			parts[section] = []string{}
			continue
		}
		parts[section] = append(parts[section], word)
	}
	var err error
	if rule.CIDRs, err = parsePrefixes(strings.Join(parts[""], " ")); err != nil {
		return rule, err
	}
	if words, ok := parts[keywordExcept]; ok {
		if rule.Except, err = parsePrefixes(strings.Join(words, " ")); err != nil {
			return rule, fmt.Errorf("except: %w", err)
		}
		for _, e := range rule.Except {
			if !slices.ContainsFunc(rule.CIDRs, func(c netip.Prefix) bool { return contains(c, e) }) {
				return rule, fmt.Errorf("except %s is not inside any of the rule's CIDRs", e)
			}
		}
	}
	if words, ok := parts[keywordPorts]; ok {
		if len(listItems(strings.Join(words, " "))) == 0 {
			return rule, fmt.Errorf("%q needs a port list, e.g. ports tcp:443", keywordPorts)
		}
		set, err := ParsePortSet(strings.Join(words, " "))
		if err != nil {
			return rule, fmt.Errorf("ports: %w", err)
		}
		rule.Ports = &set
	}
	return rule, nil
}

// parsePrefixes parses a list of CIDRs or addresses.
func parsePrefixes(text string) ([]netip.Prefix, error) {
	items := listItems(text)
	if len(items) == 0 {
		return nil, fmt.Errorf("missing CIDR")
	}
	var out []netip.Prefix
	for _, item := range items {
		p, err := parsePrefix(item)
		if err != nil {
			return nil, err
		}
		out = append(out, p)
	}
	return out, nil
}

func parsePrefix(text string) (netip.Prefix, error) {
	var p netip.Prefix
	var err error
	if strings.Contains(text, "%") {
		err = fmt.Errorf("zoned address")
	} else if strings.Contains(text, "/") {
		p, err = netip.ParsePrefix(text)
	} else {
		var a netip.Addr
		if a, err = netip.ParseAddr(text); err == nil {
			p = netip.PrefixFrom(a, a.BitLen())
		}
	}
	if err != nil {
		return netip.Prefix{}, fmt.Errorf("%s is not a CIDR; want e.g. 10.0.0.0/8 or fd00::/8", quote(text))
	}
	if p.Addr().Is4In6() {
		return netip.Prefix{}, fmt.Errorf("%s is IPv4-mapped IPv6; write the IPv4 form (IPv4-mapped destinations are judged by IPv4 rules)", quote(text))
	}
	if p.Masked() != p {
		return netip.Prefix{}, fmt.Errorf("%s has host bits set; did you mean %s?", quote(text), p.Masked())
	}
	return p, nil
}

// contains reports whether prefix outer holds all of inner.
func contains(outer, inner netip.Prefix) bool {
	return outer.Addr().BitLen() == inner.Addr().BitLen() && outer.Bits() <= inner.Bits() && outer.Contains(inner.Addr())
}

// Allows reports whether the rules allow a destination: the reference
// semantics that the compiled LPM tries must agree with.
func (r AddressRules) Allows(p Protocol, addr netip.Addr, port uint16) bool {
	addr = addr.Unmap()
	for _, rule := range r.Rules {
		in := slices.ContainsFunc(rule.CIDRs, func(c netip.Prefix) bool { return c.Contains(addr) })
		out := slices.ContainsFunc(rule.Except, func(c netip.Prefix) bool { return c.Contains(addr) })
		if in && !out && (rule.Ports == nil || rule.Ports.Contains(p, port)) {
			return true
		}
	}
	return false
}

// String renders the rules in the allow-cidrs grammar.
func (r AddressRules) String() string {
	var rules []string
	for _, rule := range r.Rules {
		rules = append(rules, rule.String())
	}
	return strings.Join(rules, "; ")
}

func (r AddressRule) String() string {
	var b strings.Builder
	b.WriteString(joinPrefixes(r.CIDRs))
	if len(r.Except) > 0 {
		b.WriteString(" except " + joinPrefixes(r.Except))
	}
	if r.Ports != nil {
		b.WriteString(" ports " + r.Ports.String())
	}
	return b.String()
}

func joinPrefixes(ps []netip.Prefix) string {
	var s []string
	for _, p := range ps {
		s = append(s, p.String())
	}
	return strings.Join(s, ",")
}
