package policy

import (
	"fmt"
	"net/netip"
	"slices"
	"strconv"
	"strings"
)

// Redirect sends calls to Match to Target instead. A Match without an
// address matches any destination of the target's family on that port.
type Redirect struct {
	Protocol Protocol
	Match    netip.AddrPort // Addr() invalid: any address
	Target   netip.AddrPort
}

// Is4 reports whether the redirect is for IPv4 destinations (including
// IPv4-mapped ones), as opposed to IPv6.
func (r Redirect) Is4() bool {
	return r.Target.Addr().Is4()
}

func (r Redirect) String() string {
	match := strconv.Itoa(int(r.Match.Port()))
	if r.Match.Addr().IsValid() {
		match = r.Match.String()
	}
	return fmt.Sprintf("%s:%s=%s", r.Protocol, match, r.Target)
}

// ParseRedirects parses the value of a redirect annotation: a list of
// MATCH=TARGET separated by commas or whitespace, where MATCH is [tcp:|udp:]PORT or
// [tcp:|udp:]ADDR:PORT ([v6]:PORT for IPv6) and TARGET is ADDR:PORT. A match
// without a protocol means both; a match without an address means any
// address of the target's family. For example:
//
//	udp:53=127.0.0.1:5353, 10.0.0.1:8080=127.0.0.1:3128
func ParseRedirects(value string) ([]Redirect, error) {
	var out []Redirect
	for i, item := range listItems(value) {
		rs, err := parseRedirect(item)
		if err != nil {
			return nil, &ItemError{Item: item, Position: i + 1, Reason: err.Error()}
		}
		for _, r := range rs {
			if j := slices.IndexFunc(out, func(o Redirect) bool { return sameMatch(o, r) }); j >= 0 {
				return nil, &ItemError{Item: item, Position: i + 1,
					Reason: fmt.Sprintf("redirects %s:%s again", r.Protocol, matchText(r))}
			}
			out = append(out, r)
		}
	}
	return out, nil
}

func parseRedirect(item string) ([]Redirect, error) {
	matchText, targetText, ok := strings.Cut(item, "=")
	if !ok {
		return nil, fmt.Errorf("want MATCH=TARGET, e.g. udp:53=127.0.0.1:5353")
	}
	protos := Protocols
	if name, rest, ok := strings.Cut(matchText, ":"); ok {
		switch strings.ToLower(name) {
		case "tcp":
			protos, matchText = []Protocol{TCP}, rest
		case "udp":
			protos, matchText = []Protocol{UDP}, rest
		}
	}
	target, err := parseAddrPort(targetText, "target")
	if err != nil {
		return nil, err
	}
	var match netip.AddrPort
	if strings.ContainsAny(matchText, ":[") {
		if match, err = parseAddrPort(matchText, "match"); err != nil {
			return nil, err
		}
		if match.Addr().Is4() != target.Addr().Is4() {
			return nil, fmt.Errorf("match %s and target %s are of different IP families", match, target)
		}
	} else {
		port, err := parsePort(matchText, 1)
		if err != nil {
			return nil, fmt.Errorf("match: %w", err)
		}
		match = netip.AddrPortFrom(netip.Addr{}, port)
	}
	var out []Redirect
	for _, p := range protos {
		out = append(out, Redirect{Protocol: p, Match: match, Target: target})
	}
	return out, nil
}

func parseAddrPort(text, what string) (netip.AddrPort, error) {
	ap, err := netip.ParseAddrPort(text)
	switch {
	case err != nil:
		return ap, fmt.Errorf("%s %s is not ADDR:PORT (IPv6 as [ADDR]:PORT)", what, quote(text))
	case ap.Port() == 0:
		return ap, fmt.Errorf("%s %s has port 0; want 1-65535", what, quote(text))
	case ap.Addr().Is4In6():
		return ap, fmt.Errorf("%s %s is IPv4-mapped IPv6; write the IPv4 form", what, quote(text))
	case ap.Addr().Zone() != "" || ap.Addr().IsUnspecified():
		return ap, fmt.Errorf("%s %s is not a usable address", what, quote(text))
	}
	return ap, nil
}

func sameMatch(a, b Redirect) bool {
	return a.Protocol == b.Protocol && a.Match == b.Match && a.Is4() == b.Is4()
}

func matchText(r Redirect) string {
	if r.Match.Addr().IsValid() {
		return r.Match.String()
	}
	fam := "IPv6"
	if r.Is4() {
		fam = "IPv4"
	}
	return fmt.Sprintf("%d (any %s address)", r.Match.Port(), fam)
}

// RedirectsString renders redirects in the redirect grammar, sorted.
func RedirectsString(rs []Redirect) string {
	var items []string
	for _, r := range rs {
		items = append(items, r.String())
	}
	slices.Sort(items)
	return strings.Join(items, ",")
}
