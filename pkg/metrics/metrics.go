// Package metrics renders cgpol's kernel counters in the Prometheus text
// exposition format, for `cgpol metrics` and for cgpol-nri --metrics-addr.
package metrics

import (
	"bufio"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"

	"github.com/cgpol/cgpol/bpf"
	"github.com/cgpol/cgpol/pkg/enforce"
)

// Write writes every metric to w.
func Write(w io.Writer, objs *enforce.Objects) error {
	list, err := objs.Counts()
	if err != nil {
		return err
	}
	lost, err := eventsLost(objs)
	if err != nil {
		return err
	}
	out := bufio.NewWriter(w)
	header(out, "cgpol_calls_total", "counter", "Socket calls that cgpol judged, by attached cgroup, hook and verdict (allowed, denied, audited: allowed by audit mode but against the policy, redirected: allowed to a rewritten destination).")
	for _, s := range list {
		for _, h := range s.Hooks {
			if !h.Linked && h.Allowed+h.Denied+h.Audited+h.Redirected == 0 {
				continue
			}
			for _, v := range []struct {
				verdict string
				n       uint64
			}{{"allowed", h.Allowed}, {"denied", h.Denied}, {"audited", h.Audited}, {"redirected", h.Redirected}} {
				fmt.Fprintf(out, "cgpol_calls_total{%s,hook=%s,verdict=%s} %d\n", cgroupLabels(s), quote(h.Hook), quote(v.verdict), v.n)
			}
		}
	}
	header(out, "cgpol_attached_cgroups", "gauge", "Cgroups with a cgpol policy.")
	fmt.Fprintf(out, "cgpol_attached_cgroups %d\n", len(list))
	header(out, "cgpol_cgroups_denying_all", "gauge", "Attached cgroups whose policy cannot be read, so that every call is denied (an attach that did not finish, or a lost policy).")
	denying := 0
	for _, s := range list {
		if s.Problem != "" {
			denying++
		}
	}
	fmt.Fprintf(out, "cgpol_cgroups_denying_all %d\n", denying)
	header(out, "cgpol_policy_slots", "gauge", "How many cgroups cgpol can enforce on at once.")
	fmt.Fprintf(out, "cgpol_policy_slots %d\n", objs.Policies.MaxEntries())
	header(out, "cgpol_events_lost_total", "counter", "Deny and audit events dropped because the ring buffer was full (nobody reading, or reading too slowly). Counters are never lost.")
	fmt.Fprintf(out, "cgpol_events_lost_total %d\n", lost)
	return out.Flush()
}

// Handler serves the metrics over HTTP.
func Handler(objs *enforce.Objects) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/plain; version=0.0.4; charset=utf-8")
		if err := Write(w, objs); err != nil {
			http.Error(w, err.Error(), http.StatusInternalServerError)
		}
	})
}

func header(w io.Writer, name, kind, help string) {
	fmt.Fprintf(w, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, kind)
}

func cgroupLabels(s enforce.Status) string {
	return fmt.Sprintf("cgroup=%s,cgroup_id=%s,container=%s,container_id=%s,manager=%s",
		quote(s.Cgroup), quote(strconv.FormatUint(s.CgroupID, 10)), quote(s.Name), quote(s.Container), quote(s.Manager))
}

// quote renders a label value: backslash, double quote and newline escaped.
func quote(v string) string {
	r := strings.NewReplacer(`\`, `\\`, `"`, `\"`, "\n", `\n`)
	return `"` + r.Replace(v) + `"`
}

func eventsLost(objs *enforce.Objects) (uint64, error) {
	var perCPU []uint64
	if err := objs.Stats.Lookup(bpf.StatEventsLost, &perCPU); err != nil {
		return 0, fmt.Errorf("read cgpol_stats: %w", err)
	}
	var n uint64
	for _, v := range perCPU {
		n += v
	}
	return n, nil
}
