package metrics

import (
	"bytes"
	"io"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/prometheus/common/expfmt"

	"github.com/cgpol/cgpol/pkg/compile"
	"github.com/cgpol/cgpol/pkg/enforce"
	"github.com/cgpol/cgpol/pkg/policy"
	"github.com/cgpol/cgpol/test/testenv"
)

func TestMetrics(t *testing.T) {
	testenv.Privileged(t)
	objs, err := enforce.Install(testenv.BPFFS(t))
	if err != nil {
		t.Fatal(err)
	}
	defer objs.Close()
	cg := testenv.NewCgroup(t)
	p, _, _ := policy.FromAnnotations(map[string]string{policy.KeyAllowPorts: "udp:53"})
	// A name with characters that need escaping in a label value.
	if err := objs.Attach(cg, compile.Compile(p), enforce.Label{Name: `we"b\1`, Container: "abc", Manager: "test"}); err != nil {
		t.Fatal(err)
	}
	testenv.RunProbe(t, cg, "connect", "udp", "127.0.0.1:53", "connect", "udp", "127.0.0.1:54", "connect", "udp", "127.0.0.1:55")

	srv := httptest.NewServer(Handler(objs))
	defer srv.Close()
	resp, err := srv.Client().Get(srv.URL)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if ct := resp.Header.Get("Content-Type"); !strings.HasPrefix(ct, "text/plain; version=0.0.4") {
		t.Errorf("content type %q", ct)
	}
	var parser expfmt.TextParser
	families, err := parser.TextToMetricFamilies(bytes.NewReader(body))
	if err != nil {
		t.Fatalf("not valid Prometheus text: %v\n%s", err, body)
	}
	got := map[string]float64{}
	for _, m := range families["cgpol_calls_total"].GetMetric() {
		labels := map[string]string{}
		for _, l := range m.GetLabel() {
			labels[l.GetName()] = l.GetValue()
		}
		if labels["container"] != `we"b\1` || labels["cgroup"] != cg.Path || labels["container_id"] != "abc" {
			t.Errorf("labels %v", labels)
		}
		got[labels["hook"]+"/"+labels["verdict"]] = m.GetCounter().GetValue()
	}
	for key, want := range map[string]float64{"connect4/allowed": 1, "connect4/denied": 2, "socket/allowed": 3, "sendmsg4/denied": 0} {
		if got[key] != want {
			t.Errorf("%s = %v, want %v", key, got[key], want)
		}
	}
	if _, ok := got["bind4/allowed"]; ok {
		t.Error("a hook that is not linked has metrics")
	}
	for name, want := range map[string]float64{"cgpol_attached_cgroups": 1, "cgpol_cgroups_denying_all": 0, "cgpol_policy_slots": 16384, "cgpol_events_lost_total": 0} {
		f := families[name]
		if f == nil || len(f.GetMetric()) != 1 {
			t.Errorf("metric %s missing", name)
			continue
		}
		m := f.GetMetric()[0]
		if v := m.GetGauge().GetValue() + m.GetCounter().GetValue(); v != want {
			t.Errorf("%s = %v, want %v", name, v, want)
		}
	}
}
