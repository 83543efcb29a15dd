package enforce

import (
	"errors"
	"fmt"
	"os"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/asm"
	"github.com/cilium/ebpf/features"
	"golang.org/x/sys/unix"

	"github.com/cgpol/cgpol/bpf"
)

// MinKernel is the oldest kernel that has every feature cgpol needs.
const MinKernel = "5.10"

// A kernelFeature is something cgpol needs from the kernel, with the release
// that brought it.
type kernelFeature struct {
	name  string
	linux string
	probe func() error
}

// requiredFeatures are probed, in order, when loading fails.
var requiredFeatures = []kernelFeature{
	{"cgroup sock_addr programs (BPF_PROG_TYPE_CGROUP_SOCK_ADDR)", "4.17", func() error {
		return features.HaveProgramType(ebpf.CGroupSockAddr)
	}},
	{"maps of maps (BPF_MAP_TYPE_HASH_OF_MAPS)", "4.12", func() error {
		return features.HaveMapType(ebpf.HashOfMaps)
	}},
	{"per-CPU cgroup storage (BPF_MAP_TYPE_PERCPU_CGROUP_STORAGE)", "4.20", func() error {
		return features.HaveMapType(ebpf.PerCPUCGroupStorage)
	}},
	{"cgroup storage shared by all programs of a cgroup (cgroup-id keys)", "5.9", probeSharedCgroupStorage},
}

// probeSharedCgroupStorage creates a cgroup storage map keyed by the cgroup
// id alone, which kernels before 5.9 reject.
func probeSharedCgroupStorage() error {
	m, err := ebpf.NewMap(&ebpf.MapSpec{Type: ebpf.CGroupStorage, KeySize: 8, ValueSize: 8})
	if err != nil {
		return err
	}
	m.Close()
	return nil
}

// kernelFeatures returns the optional features (bpf.Feature*) that this
// kernel supports, for the programs' load-time constant.
func kernelFeatures() uint32 {
	var f uint32
	taskInfo := true
	for _, pt := range []ebpf.ProgramType{ebpf.CGroupSockAddr, ebpf.CGroupSock} {
		for _, fn := range []asm.BuiltinFunc{asm.FnGetCurrentPidTgid, asm.FnGetCurrentComm, asm.FnGetCurrentCgroupId} {
			if features.HaveProgramHelper(pt, fn) != nil {
				taskInfo = false
			}
		}
	}
	if taskInfo {
		f |= bpf.FeatureTaskInfo
	}
	if features.HaveProgramHelper(ebpf.CGroupSockAddr, asm.FnSkStorageGet) == nil {
		f |= bpf.FeatureSkMemo
	}
	return f
}

// explainLoadError turns a failure to load the object into the reason a
// user can act on: missing privileges, or the kernel feature that is missing
// and the release that has it.
func explainLoadError(err error) error {
	var verr *ebpf.VerifierError
	if errors.As(err, &verr) && os.Geteuid() == 0 {
		return fmt.Errorf("the kernel's verifier rejected cgpol's programs (a kernel cgpol does not support yet? cgpol needs Linux %s or newer): %w", MinKernel, err)
	}
	if errors.Is(err, unix.EPERM) || errors.Is(err, unix.EACCES) {
		return fmt.Errorf("loading BPF programs was refused: cgpol must run as root (CAP_BPF, CAP_SYS_ADMIN and CAP_NET_ADMIN): %w", err)
	}
	for _, f := range requiredFeatures {
		if ferr := f.probe(); ferr != nil {
			return fmt.Errorf("this kernel lacks %s, which cgpol needs (Linux %s or newer; cgpol supports %s and later): %w", f.name, f.linux, MinKernel, err)
		}
	}
	return fmt.Errorf("load BPF programs: %w", err)
}

// explainLinkError does the same for a failure to create a bpf_link.
func explainLinkError(err error) error {
	if errors.Is(err, unix.EINVAL) || errors.Is(err, ebpf.ErrNotSupported) {
		if ferr := features.HaveProgramType(ebpf.CGroupSockAddr); ferr == nil {
			return fmt.Errorf("%w (cgpol needs bpf_link for cgroups: Linux 5.7 or newer; cgpol supports %s and later)", err, MinKernel)
		}
	}
	if errors.Is(err, unix.EPERM) {
		return fmt.Errorf("%w (cgpol must run as root)", err)
	}
	return err
}
