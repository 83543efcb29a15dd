package main

import (
	"encoding/json"
	"fmt"
	"text/tabwriter"

	"github.com/cgpol/cgpol/bpf"
	"github.com/cgpol/cgpol/pkg/enforce"
)

func runStatus(g *globals, args []string) error {
	fs := g.flags()
	format := fs.String("o", "table", "output `format`: table or json")
	if err := parse(fs, args); err != nil {
		return err
	}
	if *format != "table" && *format != "json" {
		return usageError("unknown format %q: want table or json", *format)
	}
	objs, err := enforce.Open(g.root)
	if err != nil {
		return err
	}
	defer objs.Close()
	list, err := objs.List()
	if err != nil {
		return err
	}
	if *format == "json" {
		enc := json.NewEncoder(g.stdout)
		enc.SetIndent("", "  ")
		return enc.Encode(list)
	}
	printTable(g, list)
	return nil
}

// printTable prints one row per cgroup, with allowed/denied counts per hook.
func printTable(g *globals, list []enforce.Status) {
	w := tabwriter.NewWriter(g.stdout, 0, 4, 2, ' ', 0)
	fmt.Fprint(w, "CGROUP\tID\tNAME\tPOLICY")
	for _, h := range bpf.Hooks {
		fmt.Fprintf(w, "\t%s", h.Name)
	}
	fmt.Fprintln(w)
	for _, s := range list {
		cg, name := s.Cgroup, s.Name
		if cg == "" {
			cg = "(gone)"
		}
		if name == "" {
			name = "-"
		}
		fmt.Fprintf(w, "%s\t%d\t%s\t%s", cg, s.CgroupID, name, s.Policy)
		for _, h := range s.Hooks {
			cell := fmt.Sprintf("%d/%d", h.Allowed, h.Denied)
			if h.Audited > 0 {
				cell += fmt.Sprintf("/%d", h.Audited)
			}
			if !h.Linked {
				cell = "unlinked"
			}
			fmt.Fprintf(w, "\t%s", cell)
		}
		fmt.Fprintln(w)
	}
	w.Flush()
	fmt.Fprintf(g.stdout, "%d attached; hook counts are allowed/denied (/audited).\n", len(list))
	for _, s := range list {
		if s.Problem != "" {
			fmt.Fprintf(g.stdout, "warning: cgroup %d: %s\n", s.CgroupID, s.Problem)
		}
	}
}
