package main

import (
	"errors"
	"flag"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/cgpol/cgpol/pkg/nodeconfig"
	"github.com/cgpol/cgpol/pkg/policy"
)

func TestReadState(t *testing.T) {
	s, err := readState(strings.NewReader(`{"ociVersion":"1.0.2-dev","id":"web","status":"creating","pid":42,"bundle":"/nonexistent","annotations":{"cgpol.io/allow-ports":"443"}}`))
	if err != nil {
		t.Fatal(err)
	}
	if s.ID != "web" || s.Pid != 42 || s.Status != "creating" || s.Annotations[policy.KeyAllowPorts] != "443" {
		t.Errorf("parsed %+v", s)
	}

	for _, bad := range []string{``, `{`, `[]`, `{"pid":1}`, `{"id":""}`} {
		if _, err := readState(strings.NewReader(bad)); err == nil {
			t.Errorf("state %q accepted", bad)
		}
	}
	if _, err := readState(io.MultiReader(strings.NewReader(`{"id":"x","pad":"`), strings.NewReader(strings.Repeat("a", maxState)), strings.NewReader(`"}`))); err == nil {
		t.Error("an oversized state was accepted")
	}
}

func TestAnnotationsFromTheBundleWhenTheStateHasNone(t *testing.T) {
	bundle := t.TempDir()
	os.WriteFile(filepath.Join(bundle, "config.json"), []byte(`{"ociVersion":"1.0.2","annotations":{"cgpol.io/allow-ports":"80"}}`), 0o644)
	for _, st := range []string{
		`{"id":"a","pid":1,"bundle":"` + bundle + `"}`,
		`{"id":"a","pid":1,"bundle":"` + bundle + `","annotations":{}}`,
	} {
		s, err := readState(strings.NewReader(st))
		if err != nil {
			t.Fatal(err)
		}
		if s.Annotations[policy.KeyAllowPorts] != "80" {
			t.Errorf("%s: annotations %v, want the bundle's", st, s.Annotations)
		}
	}
	// The state's own annotations win: the bundle is not read at all.
	s, err := readState(strings.NewReader(`{"id":"a","bundle":"/nonexistent","annotations":{"x":"y"}}`))
	if err != nil || s.Annotations["x"] != "y" {
		t.Errorf("got %+v, %v", s, err)
	}
	// A bundle that cannot be read is an error, not an unrestricted container.
	if _, err := readState(strings.NewReader(`{"id":"a","bundle":"/nonexistent"}`)); err == nil {
		t.Error("a missing config.json was ignored")
	}
	os.WriteFile(filepath.Join(bundle, "config.json"), []byte(`{"annotations":`), 0o644)
	if _, err := readState(strings.NewReader(`{"id":"a","bundle":"` + bundle + `"}`)); err == nil || !strings.Contains(err.Error(), "config.json") {
		t.Errorf("a broken config.json: %v", err)
	}
}

func TestContainerIdentity(t *testing.T) {
	for _, tt := range []struct {
		ann  map[string]string
		want nodeconfig.Container
	}{
		{nil, nodeconfig.Container{ID: "abc", Name: "abc"}},
		{map[string]string{"io.kubernetes.cri.container-name": "web", "io.kubernetes.cri.sandbox-name": "shop-1", "io.kubernetes.cri.sandbox-namespace": "prod"},
			nodeconfig.Container{ID: "abc", Name: "web", Pod: "shop-1", Namespace: "prod"}},
		{map[string]string{"io.kubernetes.container.name": "db", "io.kubernetes.pod.name": "p", "io.kubernetes.pod.namespace": "ns"},
			nodeconfig.Container{ID: "abc", Name: "db", Pod: "p", Namespace: "ns"}},
		{map[string]string{"nerdctl/name": "cache"}, nodeconfig.Container{ID: "abc", Name: "cache"}},
	} {
		s := &state{ID: "abc", Annotations: tt.ann}
		if got := s.container(); got != tt.want {
			t.Errorf("%v: got %+v, want %+v", tt.ann, got, tt.want)
		}
	}
}

func TestDecide(t *testing.T) {
	def, err := nodeconfig.Parse([]byte("defaultPolicy:\n  allow-ports: \"53\"\nexempt:\n  - name: \"debug-*\"\n"))
	if err != nil {
		t.Fatal(err)
	}
	none := &nodeconfig.Config{}
	for _, tt := range []struct {
		name   string
		cfg    *nodeconfig.Config
		ann    map[string]string
		want   string // the policy's allow-ports, "" for none, or "-" if left alone
		source nodeconfig.Source
		errSub string
	}{
		{"unannotated", none, map[string]string{"other": "x"}, "-", "", ""},
		{"annotated", none, map[string]string{"cgpol.io/allow-ports": "443,80"}, "80,443", nodeconfig.FromAnnotations, ""},
		{"deny all", none, map[string]string{"cgpol.io/allow-ports": ""}, "", nodeconfig.FromAnnotations, ""},
		{"scoped to this container", none, map[string]string{"cgpol.io/allow-ports": "80", "allow-ports.cgpol.io/container.web": "443"}, "443", nodeconfig.FromAnnotations, ""},
		{"scoped to another container", none, map[string]string{"allow-ports.cgpol.io/container.db": "5432"}, "-", "", ""},
		{"node default", def, nil, "53", nodeconfig.FromDefault, ""},
		{"annotation over the default", def, map[string]string{"cgpol.io/allow-ports": "443"}, "443", nodeconfig.FromAnnotations, ""},
		{"bad port", none, map[string]string{"cgpol.io/allow-ports": "80,99999"}, "", "", `invalid annotation cgpol.io/allow-ports="80,99999": item 2 "99999": port 99999 is out of range`},
		{"unknown key", none, map[string]string{"cgpol.io/allow-port": "80"}, "", "", `cgpol.io/allow-port="80": unknown cgpol annotation`},
		{"bad scoped key", none, map[string]string{"allow-ports.cgpol.io/web": "80"}, "", "", "allow-ports.cgpol.io/web"},
		{"bad annotation under a default", def, map[string]string{"cgpol.io/allow-ports": "x"}, "", "", `cgpol.io/allow-ports="x"`},
	} {
		s := &state{ID: "0123", Annotations: tt.ann}
		if strings.HasPrefix(tt.name, "scoped") {
			s.Annotations["io.kubernetes.cri.container-name"] = "web"
		}
		p, err := decide(s, tt.cfg)
		switch {
		case tt.errSub != "":
			if err == nil || !strings.Contains(err.Error(), tt.errSub) {
				t.Errorf("%s: error %v, want one containing %q", tt.name, err, tt.errSub)
			}
			var ae *policy.AnnotationError
			if !errors.As(err, &ae) {
				t.Errorf("%s: %v is not an AnnotationError", tt.name, err)
			}
		case err != nil:
			t.Errorf("%s: %v", tt.name, err)
		case tt.want == "-":
			if p != nil {
				t.Errorf("%s: got plan %v, want the container left alone", tt.name, p.policy)
			}
		case p == nil:
			t.Errorf("%s: left alone, want %q", tt.name, tt.want)
		default:
			if got := p.policy.EgressPorts.String(); got != tt.want || p.source != tt.source {
				t.Errorf("%s: got %q from %s, want %q from %s", tt.name, got, p.source, tt.want, tt.source)
			}
			if p.label.Container != "0123" || p.label.Manager != "hook" {
				t.Errorf("%s: label %+v", tt.name, p.label)
			}
		}
	}
	// The default's exemptions match the container's name.
	p, err := decide(&state{ID: "1", Annotations: map[string]string{"io.kubernetes.cri.container-name": "debug-shell"}}, def)
	if err != nil || p != nil {
		t.Errorf("exempt container: %v, %v", p, err)
	}
}

func TestContainerKeyFitsTheRecord(t *testing.T) {
	if got := containerKey("abc"); got != "abc" {
		t.Errorf("containerKey(abc) = %q", got)
	}
	long := strings.Repeat("f", 200)
	key := containerKey(long)
	if len(key) >= 72 || !strings.HasPrefix(long, key) {
		t.Errorf("containerKey of a 200-byte id: %d bytes", len(key))
	}
}

func TestParseArgs(t *testing.T) {
	for _, tt := range []struct {
		args   []string
		stage  string
		config string
		bpffs  string
		ok     bool
	}{
		{[]string{"createRuntime"}, "createRuntime", nodeconfig.DefaultPath, "", true},
		{[]string{"--config", "/c.yaml", "--bpffs", "/b", "prestart"}, "prestart", "/c.yaml", "/b", true},
		{[]string{"poststop", "--bpffs=/b"}, "poststop", nodeconfig.DefaultPath, "/b", true},
		{[]string{}, "", "", "", false},
		{[]string{"start"}, "", "", "", false},
		{[]string{"createRuntime", "extra"}, "", "", "", false},
		{[]string{"--nope", "createRuntime"}, "", "", "", false},
	} {
		o, stage, err := parseArgs(tt.args, io.Discard)
		if (err == nil) != tt.ok {
			t.Errorf("%q: error %v", tt.args, err)
			continue
		}
		if tt.ok && (stage != tt.stage || o.config != tt.config || o.bpffs != tt.bpffs) {
			t.Errorf("%q: got %q %+v", tt.args, stage, o)
		}
	}
	if _, _, err := parseArgs([]string{"--help"}, io.Discard); !errors.Is(err, flag.ErrHelp) {
		t.Errorf("--help: %v", err)
	}
}

func TestUsageErrorsAreOneLineAndExit2(t *testing.T) {
	var stderr strings.Builder
	if code := run([]string{"bogus"}, strings.NewReader(""), io.Discard, &stderr); code != 2 {
		t.Errorf("exit %d, want 2", code)
	}
	if !strings.HasPrefix(stderr.String(), `cgpol-hook: unknown stage "bogus"`) {
		t.Errorf("stderr %q", stderr.String())
	}
	stderr.Reset()
	if code := run([]string{"createRuntime"}, strings.NewReader("not json"), io.Discard, &stderr); code != 1 {
		t.Errorf("exit %d, want 1", code)
	}
	if lines := strings.Count(stderr.String(), "\n"); lines != 1 || !strings.Contains(stderr.String(), "OCI state") {
		t.Errorf("stderr %q", stderr.String())
	}
}

// FuzzReadState checks that any input either fails to parse or yields a
// state with a container id, and never panics.
func FuzzReadState(f *testing.F) {
	f.Add(`{"ociVersion":"1.0.2-dev","id":"web","status":"creating","pid":42,"bundle":"","annotations":{"cgpol.io/allow-ports":"443"}}`)
	f.Add(`{"id":"x","annotations":{"allow-ports.cgpol.io/container.x":"80","io.kubernetes.cri.container-name":"x"}}`)
	f.Add(`{"id":"x","pid":-1}`)
	f.Fuzz(func(t *testing.T, in string) {
		s, err := readState(strings.NewReader(in))
		if err != nil {
			return
		}
		if s.ID == "" {
			t.Fatalf("state with no id accepted: %q", in)
		}
		if s.Bundle == "" || len(s.Annotations) > 0 {
			decide(s, &nodeconfig.Config{}) // must not panic
		}
	})
}
