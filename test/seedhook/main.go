// Command seedhook is the baseline of BenchmarkHookLatency: it does what
// cgpol-hook createRuntime does, the way seed-style loaders do it. It loads
// the BPF object anew for every container (the verifier runs each time),
// fills a private copy of the maps and attaches the programs to the
// container's cgroup with BPF_PROG_ATTACH, which holds them without pins
// until the cgroup is removed. Nothing is shared between containers. It is
// a benchmark baseline, not a tool.
package main

import (
	"encoding/json"
	"fmt"
	"os"
	"unsafe"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/link"
	"golang.org/x/sys/unix"

	"github.com/cgpol/cgpol/bpf"
	"github.com/cgpol/cgpol/pkg/cgroup"
	"github.com/cgpol/cgpol/pkg/compile"
	"github.com/cgpol/cgpol/pkg/policy"
)

func main() {
	if err := run(); err != nil {
		fmt.Fprintf(os.Stderr, "seedhook: %v\n", err)
		os.Exit(1)
	}
}

func run() error {
	var st struct {
		Pid         int               `json:"pid"`
		Annotations map[string]string `json:"annotations"`
	}
	if err := json.NewDecoder(os.Stdin).Decode(&st); err != nil {
		return err
	}
	p, _, err := policy.FromAnnotations(st.Annotations)
	if err != nil {
		return err
	}
	mount, err := cgroup.Mount()
	if err != nil {
		return err
	}
	cg, err := cgroup.OfPID(mount, st.Pid)
	if err != nil {
		return err
	}
	if err := cgroup.CheckAttachable(cg); err != nil {
		return err
	}

	spec, err := bpf.Spec()
	if err != nil {
		return err
	}
	coll, err := ebpf.NewCollection(spec)
	if err != nil {
		return err
	}
	defer coll.Close()
	inner, err := ebpf.NewMap(&ebpf.MapSpec{Type: ebpf.Array, KeySize: 4, ValueSize: uint32(unsafe.Sizeof(bpf.Policy{})), MaxEntries: 1})
	if err != nil {
		return err
	}
	defer inner.Close()
	pol := compile.Compile(p).Policy
	pol.CgroupId = cg.ID
	if err := inner.Update(uint32(0), &pol, ebpf.UpdateAny); err != nil {
		return err
	}
	if err := coll.Maps[bpf.MapPolicies].Update(uint32(0), inner, ebpf.UpdateAny); err != nil {
		return err
	}
	f, err := cg.Open()
	if err != nil {
		return err
	}
	defer f.Close()
	for _, h := range bpf.Hooks {
		if err := link.RawAttachProgram(link.RawAttachProgramOptions{
			Target: int(f.Fd()), Program: coll.Programs[h.Program], Attach: h.Attach, Flags: unix.BPF_F_ALLOW_MULTI,
		}); err != nil {
			return fmt.Errorf("attach %s: %w", h.Name, err)
		}
	}
	return coll.Maps[bpf.MapRefs].Update(cg.ID, bpf.Ref{Slot: 1, CgroupId: cg.ID}, ebpf.UpdateExist)
}
