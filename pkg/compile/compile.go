// Package compile turns a typed policy into the BPF map entries that enforce
// it, and entries read back from the kernel into the policy they enforce.
package compile

import (
	"fmt"

	"github.com/cgpol/cgpol/bpf"
	"github.com/cgpol/cgpol/pkg/policy"
)

// Entries are what the kernel needs to enforce one policy.
type Entries struct {
	// Policy becomes the value of the cgroup's slot. Compile leaves its
	// CgroupId and Rules to the code that attaches it.
	Policy bpf.Policy
	// The policy's rule maps; empty unless the flags call for them.
	CIDR4     map[bpf.CIDR4Key]bpf.CIDRValue
	CIDR6     map[bpf.CIDR6Key]bpf.CIDRValue
	PortSets  map[bpf.PortKey]bpf.PortChunk
	Redirects map[bpf.RedirectKey]bpf.RedirectTarget
}

// NewEntries returns empty entries, ready to be filled from the kernel.
func NewEntries() *Entries {
	return &Entries{
		CIDR4:     map[bpf.CIDR4Key]bpf.CIDRValue{},
		CIDR6:     map[bpf.CIDR6Key]bpf.CIDRValue{},
		PortSets:  map[bpf.PortKey]bpf.PortChunk{},
		Redirects: map[bpf.RedirectKey]bpf.RedirectTarget{},
	}
}

// egressSets maps each protocol to its bitmap in struct cgpol_policy.
var egressSets = [...]int{policy.TCP: bpf.SetEgressTCP, policy.UDP: bpf.SetEgressUDP}

// bindSets maps each protocol to its bind port set.
var bindSets = [...]uint16{policy.TCP: bpf.RuleSetBindTCP, policy.UDP: bpf.RuleSetBindUDP}

// Compile returns the entries that enforce p.
func Compile(p policy.Policy) *Entries {
	e := NewEntries()
	if p.EgressPorts != nil {
		e.Policy.Flags |= bpf.FlagEgressPorts
		for _, proto := range policy.Protocols {
			setBitmap(&e.Policy.Ports[egressSets[proto]], p.EgressPorts.Ranges(proto))
		}
	}
	if p.BindPorts != nil {
		e.Policy.Flags |= bpf.FlagBind
		for _, proto := range policy.Protocols {
			addChunks(e.PortSets, bindSets[proto], p.BindPorts.Ranges(proto))
		}
	}
	if p.EgressCIDRs != nil {
		e.Policy.Flags |= bpf.FlagEgressCIDRs
		compileAddressRules(e, *p.EgressCIDRs)
	}
	if len(p.Redirects) > 0 {
		e.Policy.Flags |= bpf.FlagRedirect
		compileRedirects(e, p.Redirects)
	}
	if p.Audit {
		e.Policy.Flags |= bpf.FlagAudit
	}
	if p.DeniesRaw() {
		e.Policy.Flags |= bpf.FlagDenyRaw
	}
	return e
}

// knownFlags are the flags that Compile writes.
const knownFlags = bpf.FlagEgressPorts | bpf.FlagBind | bpf.FlagEgressCIDRs | bpf.FlagRedirect | bpf.FlagAudit | bpf.FlagDenyRaw

// Decompile returns the policy that entries read from the kernel enforce.
// It fails on entries that Compile cannot have written.
func Decompile(e *Entries) (policy.Policy, error) {
	var p policy.Policy
	flags := e.Policy.Flags
	if extra := flags &^ knownFlags; extra != 0 {
		return p, fmt.Errorf("unknown policy flags %#x", extra)
	}
	if flags&bpf.FlagEgressPorts != 0 {
		p.EgressPorts = &policy.PortSet{}
		for _, proto := range policy.Protocols {
			bits := &e.Policy.Ports[egressSets[proto]]
			if bits[0]&1 != 0 {
				return policy.Policy{}, fmt.Errorf("the egress %v bitmap allows port 0", proto)
			}
			p.EgressPorts.Add(proto, bitmapRanges(bits)...)
		}
	} else if e.Policy.Ports != (bpf.Policy{}).Ports {
		return policy.Policy{}, fmt.Errorf("port bitmaps are set, but the policy does not restrict ports")
	}
	sets, err := readPortSets(e.PortSets)
	if err != nil {
		return policy.Policy{}, err
	}
	if flags&bpf.FlagBind != 0 {
		p.BindPorts = &policy.PortSet{}
		for _, proto := range policy.Protocols {
			p.BindPorts.Add(proto, sets[bindSets[proto]]...)
		}
	}
	if flags&bpf.FlagEgressCIDRs != 0 {
		rules, err := decompileAddressRules(e, sets)
		if err != nil {
			return policy.Policy{}, err
		}
		p.EgressCIDRs = &rules
	}
	if flags&bpf.FlagRedirect != 0 {
		if p.Redirects, err = decompileRedirects(e.Redirects); err != nil {
			return policy.Policy{}, err
		}
	}
	p.Audit = flags&bpf.FlagAudit != 0
	switch deny := flags&bpf.FlagDenyRaw != 0; {
	case deny && !p.HasEgressAllowlist():
		p.RawSockets = policy.RawDeny
	case !deny && p.HasEgressAllowlist():
		p.RawSockets = policy.RawAllow
	}
	return p, nil
}
