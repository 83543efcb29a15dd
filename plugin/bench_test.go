package main

import (
	"slices"
	"testing"
	"time"

	"github.com/cgpol/cgpol/pkg/policy"
)

// BenchmarkCRICreateStart measures what the plugin adds to a container's
// CRI CreateContainer+StartContainer: two containerds with NRI on, one with
// cgpol-nri connected and one with no plugin, taking turns in one run. It
// reports the median time of each and their ratio (goal: at most 1.05).
//
//   - policy: the pods carry a policy, which the plugin attaches.
//   - no-policy: they carry none: what NRI and the plugin cost without an
//     attach.
func BenchmarkCRICreateStart(b *testing.B) {
	with, baseline := newNode(b, nodeOptions{}), newNode(b, nodeOptions{})
	with.externalPlugin(b)
	for _, bb := range []struct {
		name   string
		ann    map[string]string
		attach bool
	}{
		{"policy", map[string]string{policy.KeyAllowPorts: "tcp:443,udp:53"}, true},
		{"no-policy", nil, false},
	} {
		b.Run(bb.name, func(b *testing.B) {
			benchCreateStart(b, [2]*node{with, baseline}, bb.ann, bb.attach)
		})
	}
}

// benchCreateStart times create+start on nodes[0] (with the plugin) and
// nodes[1] (without), alternating which goes first.
func benchCreateStart(b *testing.B, nodes [2]*node, ann map[string]string, attach bool) {
	var pods [2]*pod
	var times [2][]float64
	for i, n := range nodes {
		pods[i] = n.cri.runPod(b, "bench", ann, n.parent)
		// A pod's first container pays for things that the next reuse.
		n.cri.removeContainer(b, n.cri.run(b, pods[i], "warmup", "/bin/sleep", "3600"))
	}
	round := 0
	for b.Loop() {
		order := []int{0, 1}
		if round%2 == 1 {
			order = []int{1, 0}
		}
		round++
		var ids [2]string
		for _, i := range order {
			start := time.Now()
			ids[i] = nodes[i].cri.run(b, pods[i], "app", "/bin/sleep", "3600")
			times[i] = append(times[i], float64(time.Since(start).Nanoseconds()))
		}
		b.StopTimer()
		if _, ok := nodes[0].attached(b, ids[0]); ok != attach {
			b.Fatalf("the plugin's attachment: got %v, want %v", ok, attach)
		}
		for i, n := range nodes {
			n.cri.removeContainer(b, ids[i])
		}
		b.StartTimer()
	}
	mw, mb := median(times[0]), median(times[1])
	b.ReportMetric(mw/1e6, "ms/create-start-plugin")
	b.ReportMetric(mb/1e6, "ms/create-start-baseline")
	b.ReportMetric(mw/mb, "ratio")
}

func median(xs []float64) float64 {
	s := slices.Clone(xs)
	slices.Sort(s)
	if len(s) == 0 {
		return 0
	}
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}
