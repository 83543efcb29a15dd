package nodeconfig

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/cgpol/cgpol/pkg/policy"
)

func TestParse(t *testing.T) {
	c, err := Parse([]byte(`
bpffs: /run/cgpol/bpf
defaultPolicy:
  allow-ports: ""
exempt:
  - namespace: kube-system
  - name: "coredns*"
`))
	if err != nil {
		t.Fatal(err)
	}
	if c.BPFFS != "/run/cgpol/bpf" || len(c.Exempt) != 2 {
		t.Errorf("parsed %+v", c)
	}
	for _, tt := range []struct {
		ann    map[string]string
		ctr    Container
		source Source
		ports  string
	}{
		{nil, Container{Name: "app", Namespace: "default"}, FromDefault, ""},
		{nil, Container{Name: "kube-proxy", Namespace: "kube-system"}, Unrestricted, "-"},
		{nil, Container{Name: "coredns-abc"}, Unrestricted, "-"},
		{map[string]string{policy.KeyAllowPorts: "443"}, Container{Name: "app"}, FromAnnotations, "443"},
		{map[string]string{policy.KeyAllowPorts: "53"}, Container{Name: "coredns-x"}, FromAnnotations, "53"},
	} {
		p, source, err := c.PolicyFor(tt.ann, tt.ctr)
		ports := "-"
		if p.EgressPorts != nil {
			ports = p.EgressPorts.String()
		}
		if err != nil || source != tt.source || ports != tt.ports {
			t.Errorf("%v %v: got %s %q %v; want %s %q", tt.ann, tt.ctr, source, ports, err, tt.source, tt.ports)
		}
	}
}

func TestNoDefaultLeavesUnannotatedAlone(t *testing.T) {
	c, err := Load(filepath.Join(t.TempDir(), "missing.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	if _, source, err := c.PolicyFor(map[string]string{}, Container{Name: "x"}); source != Unrestricted || err != nil {
		t.Errorf("got %s, %v", source, err)
	}
	// An invalid annotation is an error even without a default.
	if _, _, err := c.PolicyFor(map[string]string{policy.KeyAllowPorts: "x"}, Container{}); err == nil {
		t.Error("invalid annotation accepted")
	}
}

func TestParseErrors(t *testing.T) {
	for config, want := range map[string]string{
		"defaultPolicy:\n  allow-ports: \"0\"\n":         `defaultPolicy: invalid annotation cgpol.io/allow-ports="0"`,
		"defaultPolicy:\n  cgpol.io/allow-ports: \"\"\n": "without the cgpol.io/ prefix",
		"defaultPolicy:\n  allow-port: \"80\"\n":         "unknown cgpol annotation",
		"defaultPolicy: {}\n":                            "defaultPolicy is empty",
		"defaultPolcy:\n  allow-ports: \"\"\n":           `unknown field "defaultPolcy"`,
		"exempt:\n  - {}\n":                              "exempt[0] matches every container",
		"exempt:\n  - name: \"[\"\n":                     "bad pattern",
	} {
		_, err := Parse([]byte(config))
		if err == nil || !strings.Contains(err.Error(), want) || strings.Contains(err.Error(), "\n") {
			t.Errorf("%q: %v, want %q on one line", config, err, want)
		}
	}
	dir := t.TempDir()
	file := filepath.Join(dir, "config.yaml")
	os.WriteFile(file, []byte("defaultPolicy: [\n"), 0o600)
	if _, err := Load(file); err == nil || !strings.Contains(err.Error(), file) {
		t.Errorf("Load of a broken file: %v, want the file named", err)
	}
}
