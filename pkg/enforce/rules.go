package enforce

import (
	"errors"
	"fmt"
	"unsafe"

	"github.com/cilium/ebpf"

	"github.com/cgpol/cgpol/bpf"
	"github.com/cgpol/cgpol/pkg/compile"
)

// A policy's rule maps (address tries, port sets, redirects) are inner maps
// of arrays of maps indexed by policy.Rules = slot*2 + generation. A new
// policy writes the generation that the current one does not use, so the
// slot's swap switches policy and rules together.

// Inner map specs. They must match the templates in cgpol.bpf.c in type,
// key and value size and flags; TestInnerMapSpecsMatchTheObject checks it.
var (
	policyMapSpec = &ebpf.MapSpec{
		Name: "cgpol_policy", Type: ebpf.Array, KeySize: 4,
		ValueSize: uint32(unsafe.Sizeof(bpf.Policy{})), MaxEntries: 1,
	}
	cidr4MapSpec = &ebpf.MapSpec{
		Name: "cgpol_rules4", Type: ebpf.LPMTrie, Flags: noPrealloc,
		KeySize: uint32(unsafe.Sizeof(bpf.CIDR4Key{})), ValueSize: uint32(unsafe.Sizeof(bpf.CIDRValue{})),
	}
	cidr6MapSpec = &ebpf.MapSpec{
		Name: "cgpol_rules6", Type: ebpf.LPMTrie, Flags: noPrealloc,
		KeySize: uint32(unsafe.Sizeof(bpf.CIDR6Key{})), ValueSize: uint32(unsafe.Sizeof(bpf.CIDRValue{})),
	}
	portSetMapSpec = &ebpf.MapSpec{
		Name: "cgpol_portset", Type: ebpf.Hash,
		KeySize: uint32(unsafe.Sizeof(bpf.PortKey{})), ValueSize: uint32(unsafe.Sizeof(bpf.PortChunk{})),
	}
	redirectMapSpec = &ebpf.MapSpec{
		Name: "cgpol_redirect", Type: ebpf.Hash,
		KeySize: uint32(unsafe.Sizeof(bpf.RedirectKey{})), ValueSize: uint32(unsafe.Sizeof(bpf.RedirectTarget{})),
	}
)

// noPrealloc is BPF_F_NO_PREALLOC, which LPM tries require.
const noPrealloc = 1

// ruleMaps pairs each outer array of rule maps with its inner spec.
func (o *Objects) ruleMaps() []struct {
	outer *ebpf.Map
	spec  *ebpf.MapSpec
} {
	return []struct {
		outer *ebpf.Map
		spec  *ebpf.MapSpec
	}{{o.CIDR4, cidr4MapSpec}, {o.CIDR6, cidr6MapSpec}, {o.PortSets, portSetMapSpec}, {o.Redirects, redirectMapSpec}}
}

// fillRules writes a policy's rule maps under index, and empties the kinds
// that the policy does not use.
func (o *Objects) fillRules(index uint32, e *compile.Entries) error {
	for _, rm := range o.ruleMaps() {
		var keys, values any
		n := 0
		switch rm.outer {
		case o.CIDR4:
			keys, values, n = split(e.CIDR4)
		case o.CIDR6:
			keys, values, n = split(e.CIDR6)
		case o.PortSets:
			keys, values, n = split(e.PortSets)
		case o.Redirects:
			keys, values, n = split(e.Redirects)
		}
		if n == 0 {
			if err := rm.outer.Delete(index); err != nil && !errors.Is(err, ebpf.ErrKeyNotExist) {
				return fmt.Errorf("clear %s[%d]: %w", rm.spec.Name, index, err)
			}
			continue
		}
		if err := o.publishInner(rm.outer, index, rm.spec, keys, values, n); err != nil {
			return err
		}
	}
	return nil
}

// clearRules drops the rule maps under index; the kernel frees them.
func (o *Objects) clearRules(index uint32) {
	for _, rm := range o.ruleMaps() {
		_ = rm.outer.Delete(index)
	}
}

// publishInner creates an inner map of n entries, fills it, and stores it in
// outer[index], replacing what was there in one update.
func (o *Objects) publishInner(outer *ebpf.Map, index uint32, spec *ebpf.MapSpec, keys, values any, n int) error {
	s := spec.Copy()
	s.MaxEntries = uint32(max(1, n))
	m, err := ebpf.NewMap(s)
	if err != nil {
		return fmt.Errorf("create %s: %w", spec.Name, err)
	}
	defer m.Close() // outer holds it from here on
	if _, err := m.BatchUpdate(keys, values, nil); err != nil {
		if !errors.Is(err, ebpf.ErrNotSupported) {
			return fmt.Errorf("fill %s: %w", spec.Name, err)
		}
		if err := updateEach(m, keys, values); err != nil { // LPM tries have no batch update
			return fmt.Errorf("fill %s: %w", spec.Name, err)
		}
	}
	if err := outer.Update(index, m, ebpf.UpdateAny); err != nil {
		return fmt.Errorf("publish %s[%d]: %w", spec.Name, index, err)
	}
	return nil
}

// split turns a map into parallel key and value slices.
func split[K comparable, V any](m map[K]V) (any, any, int) {
	keys := make([]K, 0, len(m))
	values := make([]V, 0, len(m))
	for k, v := range m {
		keys = append(keys, k)
		values = append(values, v)
	}
	return keys, values, len(m)
}

func updateEach(m *ebpf.Map, keys, values any) error {
	switch ks := keys.(type) {
	case []bpf.CIDR4Key:
		vs := values.([]bpf.CIDRValue)
		for i := range ks {
			if err := m.Update(ks[i], vs[i], ebpf.UpdateAny); err != nil {
				return err
			}
		}
	case []bpf.CIDR6Key:
		vs := values.([]bpf.CIDRValue)
		for i := range ks {
			if err := m.Update(ks[i], vs[i], ebpf.UpdateAny); err != nil {
				return err
			}
		}
	default:
		return fmt.Errorf("no batch update for %T", keys)
	}
	return nil
}

// readRules reads a policy's rule maps back into entries.
func (o *Objects) readRules(index uint32, e *compile.Entries) error {
	for _, rm := range o.ruleMaps() {
		var innerID ebpf.MapID
		if err := rm.outer.Lookup(index, &innerID); err != nil || innerID == 0 {
			continue // this kind is unused
		}
		m, err := ebpf.NewMapFromID(innerID)
		if err != nil {
			return fmt.Errorf("open %s[%d]: %w", rm.spec.Name, index, err)
		}
		switch rm.outer {
		case o.CIDR4:
			err = readAll(m, e.CIDR4)
		case o.CIDR6:
			err = readAll(m, e.CIDR6)
		case o.PortSets:
			err = readAll(m, e.PortSets)
		case o.Redirects:
			err = readAll(m, e.Redirects)
		}
		m.Close()
		if err != nil {
			return fmt.Errorf("read %s[%d]: %w", rm.spec.Name, index, err)
		}
	}
	return nil
}

func readAll[K comparable, V any](m *ebpf.Map, into map[K]V) error {
	var k K
	var v V
	iter := m.Iterate()
	for iter.Next(&k, &v) {
		into[k] = v
	}
	return iter.Err()
}
