// Package enforce keeps cgpol's enforcement state in the kernel: it installs
// the pinned programs and maps, attaches compiled policies to cgroups through
// pinned bpf_links, and reports, repairs and removes that state.
//
// Everything lives under one bpffs root, so enforcement needs no daemon:
//
//	ROOT/v1/prog/<hook>            pinned programs (bpf.Hooks)
//	ROOT/v1/map/<map>              pinned maps (bpf.Map*)
//	ROOT/v1/cgroup/<id>/<hook>     one pinned bpf_link per attached cgroup and hook
//
// v1 is bpf.ABI. Each attached cgroup owns a slot of cgpol_policies, which
// holds its policy; its cgroup storage names the slot. cgpol processes
// coordinate with flock(2) on these directories, which the kernel releases
// if a process dies.
package enforce

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/cilium/ebpf"
	"golang.org/x/sys/unix"

	"github.com/cgpol/cgpol/bpf"
	"github.com/cgpol/cgpol/pkg/bpffs"
)

// DefaultRoot is where cgpol pins its objects unless told otherwise.
const DefaultRoot = "/sys/fs/bpf/cgpol"

const (
	progDir   = "prog"
	mapDir    = "map"
	cgroupDir = "cgroup"
	tmpPrefix = "tmp-" // bpffs forbids dots in names
)

// ErrNotInstalled means that no programs are pinned under the root.
var ErrNotInstalled = errors.New("cgpol is not installed")

// Objects are the pinned programs and maps of an install, opened.
type Objects struct {
	Root string // the bpffs root
	Dir  string // Root/bpf.ABI

	programs    map[string]*ebpf.Program // by bpf.Hook.Name, opened on first use
	Refs        *ebpf.Map                // cgroup storage: struct cgpol_ref
	Counters    *ebpf.Map                // per-CPU cgroup storage: struct cgpol_hook_counters
	Policies    *ebpf.Map                // slot -> array holding struct cgpol_policy
	CIDR4       *ebpf.Map                // policy.Rules -> LPM trie of IPv4 address rules
	CIDR6       *ebpf.Map                // policy.Rules -> LPM trie of IPv6 address rules
	PortSets    *ebpf.Map                // policy.Rules -> chunked port sets (bind, address rules)
	Redirects   *ebpf.Map                // policy.Rules -> redirects
	RevNAT      *ebpf.Map                // (socket, target) -> what was dialled
	SkMemo      *ebpf.Map                // socket -> its last allowed IPv4 destination
	Events      *ebpf.Map                // ring buffer of deny and audit events
	Stats       *ebpf.Map                // per-CPU global counters
	Slots       *ebpf.Map                // slot -> cgroup id that claimed it
	Warm        *ebpf.Map                // free slots that still hold a policy map
	Attachments *ebpf.Map                // cgroup id -> struct cgpol_attachment

	programIDs map[string]ebpf.ProgramID
	dirIno     uint64
}

// Close releases the file descriptors. The pins stay.
func (o *Objects) Close() {
	for _, p := range o.programs {
		p.Close()
	}
	for _, m := range o.maps() {
		if m != nil {
			m.Close()
		}
	}
}

// maps lists every map of an install.
func (o *Objects) maps() []*ebpf.Map {
	return []*ebpf.Map{o.Refs, o.Counters, o.Policies, o.CIDR4, o.CIDR6, o.PortSets, o.Redirects,
		o.RevNAT, o.SkMemo, o.Events, o.Stats, o.Slots, o.Warm, o.Attachments}
}

// Install pins cgpol's programs and maps under root, unless they are pinned
// there already, and opens them. It mounts bpffs if needed. Any number of
// processes may run it at once: each builds a private directory and the
// first to rename it into place wins; the others use the winner's.
func Install(root string) (*Objects, error) {
	objs, err := Open(root)
	if !errors.Is(err, ErrNotInstalled) {
		return objs, err
	}
	if err := bpffs.Ensure(root); err != nil {
		return nil, err
	}
	if err := publish(root); err != nil {
		return nil, err
	}
	return Open(root)
}

// publish loads the object into a private directory and renames it to
// root/bpf.ABI. Losing the race to another process is not an error.
func publish(root string) error {
	tmp, err := os.MkdirTemp(root, tmpPrefix)
	if err != nil {
		return fmt.Errorf("install: %w", err)
	}
	defer os.RemoveAll(tmp)               // a no-op once renamed
	lock, err := bpffs.LockDir(tmp, true) // tells gc that this install is alive
	if err != nil {
		return fmt.Errorf("install: %w", err)
	}
	defer lock.Unlock()

	coll, err := load()
	if err != nil {
		return err
	}
	defer coll.Close()
	for _, sub := range []string{progDir, mapDir, cgroupDir} {
		if err := os.Mkdir(filepath.Join(tmp, sub), 0o700); err != nil {
			return fmt.Errorf("install: %w", err)
		}
	}
	for _, h := range bpf.Hooks {
		if err := coll.Programs[h.Program].Pin(filepath.Join(tmp, progDir, h.Name)); err != nil {
			return fmt.Errorf("install: pin %s: %w", h.Program, err)
		}
	}
	for name, m := range coll.Maps {
		if strings.HasPrefix(name, ".") {
			continue // .rodata: the load-time constants, held by the programs
		}
		if err := m.Pin(filepath.Join(tmp, mapDir, name)); err != nil {
			return fmt.Errorf("install: pin %s: %w", name, err)
		}
	}
	err = bpffs.Publish(tmp, filepath.Join(root, bpf.ABI))
	if os.IsExist(err) {
		return nil
	}
	return err
}

// load loads the programs and maps, explaining a failure in terms of the
// kernel feature that is missing.
func load() (*ebpf.Collection, error) {
	spec, err := bpf.Spec()
	if err != nil {
		return nil, fmt.Errorf("install: read embedded BPF object: %w", err)
	}
	if err := spec.Variables[bpf.VarFeatures].Set(kernelFeatures()); err != nil {
		return nil, fmt.Errorf("install: %w", err)
	}
	coll, err := ebpf.NewCollection(spec)
	if err != nil {
		return nil, explainLoadError(err)
	}
	return coll, nil
}

// Open opens an existing install under root.
func Open(root string) (*Objects, error) {
	dir := filepath.Join(root, bpf.ABI)
	var st unix.Stat_t
	if err := unix.Stat(dir, &st); errors.Is(err, unix.ENOENT) {
		return nil, fmt.Errorf("%w under %s (run: cgpol install)", ErrNotInstalled, root)
	} else if err != nil {
		return nil, fmt.Errorf("open %s: %w", dir, err)
	}
	o := &Objects{Root: root, Dir: dir, dirIno: st.Ino,
		programs: map[string]*ebpf.Program{}, programIDs: map[string]ebpf.ProgramID{}}
	if _, err := os.Stat(filepath.Join(dir, progDir, bpf.Hooks[len(bpf.Hooks)-1].Name)); err != nil {
		return nil, fmt.Errorf("open pinned programs: %w (the install under %s is incomplete: run cgpol uninstall --force, then cgpol install)", err, dir)
	}
	for name, m := range map[string]**ebpf.Map{
		bpf.MapRefs: &o.Refs, bpf.MapCounters: &o.Counters,
		bpf.MapPolicies: &o.Policies, bpf.MapCIDR4: &o.CIDR4, bpf.MapCIDR6: &o.CIDR6,
		bpf.MapPortSets: &o.PortSets, bpf.MapRedirects: &o.Redirects, bpf.MapRevNAT: &o.RevNAT, bpf.MapSkMemo: &o.SkMemo,
		bpf.MapEvents: &o.Events, bpf.MapStats: &o.Stats,
		bpf.MapSlots: &o.Slots, bpf.MapWarm: &o.Warm, bpf.MapAttachments: &o.Attachments,
	} {
		var err error
		if *m, err = ebpf.LoadPinnedMap(filepath.Join(dir, mapDir, name), nil); err != nil {
			o.Close()
			return nil, fmt.Errorf("open pinned map %s: %w (the install under %s is incomplete: run cgpol uninstall --force, then cgpol install)", name, err, dir)
		}
	}
	return o, nil
}

// program opens a hook's pinned program, once, and learns its id.
func (o *Objects) program(h bpf.Hook) (*ebpf.Program, ebpf.ProgramID, error) {
	if p, ok := o.programs[h.Name]; ok {
		return p, o.programIDs[h.Name], nil
	}
	p, err := ebpf.LoadPinnedProgram(filepath.Join(o.Dir, progDir, h.Name), nil)
	if err != nil {
		return nil, 0, fmt.Errorf("open pinned program %s: %w (the install under %s is incomplete: run cgpol uninstall --force, then cgpol install)", h.Name, err, o.Dir)
	}
	info, err := p.Info()
	if err != nil {
		p.Close()
		return nil, 0, fmt.Errorf("open pinned program %s: %w", h.Name, err)
	}
	id, _ := info.ID()
	o.programs[h.Name], o.programIDs[h.Name] = p, id
	return p, id, nil
}

// lock takes the install's lock: shared for work on one cgroup, exclusive
// for work on all of them (gc, uninstall). It fails if the install was
// removed since Open.
func (o *Objects) lock(exclusive bool) (*bpffs.Lock, error) {
	l, err := bpffs.LockDir(o.Dir, exclusive)
	if errors.Is(err, bpffs.ErrMoved) || errors.Is(err, unix.ENOENT) {
		return nil, fmt.Errorf("%w under %s: it was removed while this command ran", ErrNotInstalled, o.Root)
	}
	if err != nil {
		return nil, err
	}
	var st unix.Stat_t
	if unix.Stat(o.Dir, &st) != nil || st.Ino != o.dirIno {
		l.Unlock()
		return nil, fmt.Errorf("%w under %s: it was replaced while this command ran; run it again", ErrNotInstalled, o.Root)
	}
	return l, nil
}
