package main

import (
	"strings"
	"testing"

	"github.com/containerd/nri/pkg/api"

	"github.com/cgpol/cgpol/pkg/nodeconfig"
)

func TestEffectivePolicy(t *testing.T) {
	withDefault, err := nodeconfig.Parse([]byte(`
defaultPolicy: {allow-ports: "53"}
exempt: [{namespace: kube-system}]
`))
	if err != nil {
		t.Fatal(err)
	}
	none := &nodeconfig.Config{}
	tests := []struct {
		name      string
		cfg       *nodeconfig.Config
		namespace string
		ann       map[string]string
		container string
		want      string // the policy, or the error's text
		source    nodeconfig.Source
	}{
		{"pod-wide", none, "default", map[string]string{"cgpol.io/allow-ports": "443"}, "web",
			`cgpol.io/allow-ports="443"`, nodeconfig.FromAnnotations},
		{"scoped overrides pod-wide", none, "default", map[string]string{
			"cgpol.io/allow-ports":                   "443",
			"allow-ports.cgpol.io/container.web":     "tcp:8080",
			"allow-ports.cgpol.io/container.sidecar": "udp:53",
		}, "web", `cgpol.io/allow-ports="tcp:8080"`, nodeconfig.FromAnnotations},
		{"scoped to another container", none, "default", map[string]string{
			"allow-ports.cgpol.io/container.sidecar": "udp:53",
		}, "web", "unrestricted", nodeconfig.Unrestricted},
		{"empty list denies all", none, "default", map[string]string{"cgpol.io/allow-ports": ""}, "web",
			`cgpol.io/allow-ports=""`, nodeconfig.FromAnnotations},
		{"other annotations", none, "default", map[string]string{"example.com/x": "y"}, "web",
			"unrestricted", nodeconfig.Unrestricted},
		{"node default", withDefault, "default", nil, "web", `cgpol.io/allow-ports="53"`, nodeconfig.FromDefault},
		{"annotation beats node default", withDefault, "default", map[string]string{"cgpol.io/allow-ports": "443"}, "web",
			`cgpol.io/allow-ports="443"`, nodeconfig.FromAnnotations},
		{"exempt from node default", withDefault, "kube-system", nil, "coredns", "unrestricted", nodeconfig.Unrestricted},
		{"bad port", none, "default", map[string]string{"cgpol.io/allow-ports": "80,99999"}, "web",
			`invalid annotation cgpol.io/allow-ports="80,99999": item 2 "99999": port 99999 is out of range`, ""},
		{"unknown key", none, "default", map[string]string{"cgpol.io/allow-port": "80"}, "web",
			`invalid annotation cgpol.io/allow-port="80": unknown cgpol annotation`, ""},
		{"bad scoped key for another container", none, "default", map[string]string{"allow-port.cgpol.io/container.other": "80"}, "web",
			`invalid annotation allow-port.cgpol.io/container.other="80": unknown cgpol annotation cgpol.io/allow-port`, ""},
		{"bad value for another container", withDefault, "kube-system", map[string]string{"allow-ports.cgpol.io/container.other": "x"}, "web",
			"unrestricted", nodeconfig.Unrestricted},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			pod := &api.PodSandbox{Id: "p1", Name: "pod", Namespace: tt.namespace, Annotations: tt.ann}
			ctr := &api.Container{Id: "c1", PodSandboxId: "p1", Name: tt.container}
			p, source, err := effectivePolicy(tt.cfg, pod, ctr)
			if tt.source == "" {
				if err == nil || !strings.Contains(err.Error(), tt.want) {
					t.Fatalf("got %s (%s), err %v; want an error with %q", p, source, err, tt.want)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if p.String() != tt.want || source != tt.source {
				t.Errorf("got %s from %s, want %s from %s", p, source, tt.want, tt.source)
			}
		})
	}
}

func TestLabelName(t *testing.T) {
	ctr := &api.Container{Name: "web"}
	if got := labelName(&api.PodSandbox{Name: "shop", Namespace: "prod"}, ctr); got != "prod/shop/web" {
		t.Errorf("got %q", got)
	}
	if got := labelName(nil, ctr); got != "web" {
		t.Errorf("without a pod: got %q", got)
	}
}
