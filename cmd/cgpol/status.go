package main

import (
	"encoding/json"
	"fmt"
	"slices"
	"text/tabwriter"

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
	objs, err := g.open()
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

// columns group the hooks of the table: v4 and v6 are summed.
var columns = []struct {
	title string
	hooks []string
}{
	{"CONNECT", []string{"connect4", "connect6"}},
	{"SENDMSG", []string{"sendmsg4", "sendmsg6"}},
	{"BIND", []string{"bind4", "bind6"}},
	{"SOCKET", []string{"socket"}},
}

// maxPolicyWidth cuts long policies in the table; -o json has them whole.
const maxPolicyWidth = 72

// printTable prints one row per cgroup, with allowed/denied counts per
// group of hooks ("-" where no hook of the group is linked).
func printTable(g *globals, list []enforce.Status) {
	w := tabwriter.NewWriter(g.stdout, 0, 4, 2, ' ', 0)
	fmt.Fprint(w, "CGROUP\tID\tNAME\tPOLICY")
	for _, c := range columns {
		fmt.Fprintf(w, "\t%s", c.title)
	}
	fmt.Fprintln(w, "\tREDIRECTED")
	for _, s := range list {
		cg, name, pol := s.Cgroup, s.Name, s.Policy
		if cg == "" {
			cg = "(gone)"
		}
		if name == "" {
			name = "-"
		}
		if len(pol) > maxPolicyWidth {
			pol = pol[:maxPolicyWidth-3] + "..."
		}
		fmt.Fprintf(w, "%s\t%d\t%s\t%s", cg, s.CgroupID, name, pol)
		var redirected uint64
		for _, c := range columns {
			var sum enforce.HookStatus
			for _, h := range s.Hooks {
				if slices.Contains(c.hooks, h.Hook) {
					sum.Linked = sum.Linked || h.Linked
					sum.Allowed += h.Allowed
					sum.Denied += h.Denied
					sum.Audited += h.Audited
				}
			}
			cell := "-"
			if sum.Linked {
				cell = fmt.Sprintf("%d/%d", sum.Allowed, sum.Denied)
				if sum.Audited > 0 {
					cell += fmt.Sprintf("/%d", sum.Audited)
				}
			}
			fmt.Fprintf(w, "\t%s", cell)
		}
		for _, h := range s.Hooks {
			redirected += h.Redirected
		}
		fmt.Fprintf(w, "\t%d\n", redirected)
	}
	w.Flush()
	fmt.Fprintf(g.stdout, "%d attached; counts are allowed/denied, then audited (allowed by audit mode) if any.\n", len(list))
	for _, s := range list {
		if s.Problem != "" {
			fmt.Fprintf(g.stdout, "warning: cgroup %d: %s\n", s.CgroupID, s.Problem)
		}
	}
}
