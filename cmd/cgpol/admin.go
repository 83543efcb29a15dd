package main

import (
	"fmt"

	"github.com/cgpol/cgpol/bpf"
	"github.com/cgpol/cgpol/pkg/enforce"
)

func runInstall(g *globals, args []string) error {
	if err := parse(g.flags(), args); err != nil {
		return err
	}
	objs, err := enforce.Install(g.root)
	if err != nil {
		return err
	}
	defer objs.Close()
	fmt.Fprintf(g.stdout, "cgpol programs and maps are pinned under %s\n", objs.Dir)
	return nil
}

func runUninstall(g *globals, args []string) error {
	fs := g.flags()
	force := fs.Bool("force", false, "detach every attached cgroup first (they become unrestricted)")
	if err := parse(fs, args); err != nil {
		return err
	}
	if err := enforce.Uninstall(g.root, *force); err != nil {
		return err
	}
	fmt.Fprintf(g.stdout, "cgpol is uninstalled from %s\n", g.root)
	return nil
}

func runGC(g *globals, args []string) error {
	if err := parse(g.flags(), args); err != nil {
		return err
	}
	objs, err := g.open()
	if err != nil {
		return err
	}
	defer objs.Close()
	r, err := objs.GC()
	if err != nil {
		return err
	}
	fmt.Fprintf(g.stdout, "gc: detached %d cgroups, released %d unused policy slots, %d stale records, %d unfinished installs\n",
		len(r.Detached), r.Slots, r.Attachments, r.Installs)
	return nil
}

func runVersion(g *globals, args []string) error {
	if err := parse(g.flags(), args); err != nil {
		return err
	}
	fmt.Fprintf(g.stdout, "cgpol %s (BPF ABI %s, needs Linux %s or newer)\n", version, bpf.ABI, enforce.MinKernel)
	return nil
}
