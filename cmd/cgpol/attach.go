package main

import (
	"flag"
	"fmt"
	"os"
	"strings"

	"github.com/cgpol/cgpol/pkg/cgroup"
	"github.com/cgpol/cgpol/pkg/compile"
	"github.com/cgpol/cgpol/pkg/enforce"
	"github.com/cgpol/cgpol/pkg/policy"
)

// annotations collects repeated --annotation KEY=VALUE flags.
type annotations map[string]string

func (a annotations) String() string { return fmt.Sprint(map[string]string(a)) }

func (a annotations) Set(kv string) error {
	key, value, ok := strings.Cut(kv, "=")
	if !ok || key == "" {
		return fmt.Errorf("want KEY=VALUE, got %q", kv)
	}
	if file, ok := strings.CutPrefix(value, "@"); ok { // large values, e.g. 10,000 CIDRs
		data, err := os.ReadFile(file)
		if err != nil {
			return fmt.Errorf("annotation %s: %w", key, err)
		}
		value = strings.TrimRight(string(data), "\n")
	}
	if _, dup := a[key]; dup {
		return fmt.Errorf("annotation %s given twice", key)
	}
	a[key] = value
	return nil
}

// target holds the flags that name a cgroup.
type target struct {
	path string
	pid  int
}

func (t *target) register(fs *flag.FlagSet) {
	fs.StringVar(&t.path, "cgroup", "", "the cgroup: its directory, or its path as /proc/PID/cgroup shows it")
	fs.IntVar(&t.pid, "pid", 0, "the cgroup that process `PID` is in (e.g. docker inspect -f '{{.State.Pid}}' NAME)")
}

func (t *target) resolve() (cgroup.Cgroup, error) {
	if (t.path == "") == (t.pid == 0) {
		return cgroup.Cgroup{}, usageError("give exactly one of --cgroup and --pid")
	}
	mount, err := cgroup.Mount()
	if err != nil {
		return cgroup.Cgroup{}, err
	}
	if t.pid != 0 {
		return cgroup.OfPID(mount, t.pid)
	}
	return cgroup.Resolve(mount, t.path)
}

func runAttach(g *globals, args []string) error {
	fs := g.flags()
	var t target
	t.register(fs)
	ann := annotations{}
	fs.Var(ann, "annotation", "a policy annotation `KEY=VALUE`, e.g. cgpol.io/allow-ports=80,443 (repeatable); KEY=@FILE reads the value from FILE")
	allowPorts := fs.String("allow-ports", "", "destination ports to allow, e.g. 80,443 or tcp:8000-9000,udp:53; \"\" allows none")
	name := fs.String("name", "", "a name for status and events, e.g. the container's")
	if err := parse(fs, args); err != nil {
		return err
	}
	fs.Visit(func(f *flag.Flag) {
		if f.Name == "allow-ports" {
			if _, dup := ann[policy.KeyAllowPorts]; dup {
				ann["--allow-ports"] = "" // reported below
			}
			ann[policy.KeyAllowPorts] = *allowPorts
		}
	})
	if _, dup := ann["--allow-ports"]; dup {
		return usageError("give --allow-ports or --annotation %s, not both", policy.KeyAllowPorts)
	}
	p, found, err := policy.FromAnnotations(ann)
	if err != nil {
		return err
	}
	if !found {
		return usageError("no policy given: use --allow-ports or --annotation %s...", policy.Prefix)
	}
	cg, err := t.resolve()
	if err != nil {
		return err
	}
	if err := cgroup.CheckAttachable(cg); err != nil {
		return err // before installing anything
	}
	objs, err := enforce.Install(g.root)
	if err != nil {
		return err
	}
	defer objs.Close()
	if err := objs.Attach(cg, compile.Compile(p), enforce.Label{Name: *name, Manager: "cli"}); err != nil {
		return err
	}
	fmt.Fprintf(g.stdout, "attached %s to %s (cgroup id %d)\n", p, cg.Dir(), cg.ID)
	return nil
}

func runDetach(g *globals, args []string) error {
	fs := g.flags()
	var t target
	t.register(fs)
	id := fs.Uint64("id", 0, "the cgroup `ID`, as status shows it; works for cgroups that are gone")
	if err := parse(fs, args); err != nil {
		return err
	}
	where := fmt.Sprintf("cgroup id %d", *id)
	if *id == 0 {
		cg, err := t.resolve()
		if err != nil {
			return err
		}
		*id, where = cg.ID, cg.Dir()
	} else if t.path != "" || t.pid != 0 {
		return usageError("give exactly one of --cgroup, --pid and --id")
	}
	objs, err := g.open()
	if err != nil {
		return err
	}
	defer objs.Close()
	if err := objs.Detach(*id); err != nil {
		return err
	}
	fmt.Fprintf(g.stdout, "detached %s\n", where)
	return nil
}
