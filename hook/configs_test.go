package main

import (
	"encoding/json"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"testing"

	"github.com/cgpol/cgpol/pkg/nodeconfig"
)

// hooksFile is a hooks.d file (Podman, CRI-O: oci-hooks(5), version 1.0.0).
type hooksFile struct {
	Version string `json:"version"`
	Hook    struct {
		Path    string   `json:"path"`
		Args    []string `json:"args"`
		Timeout int      `json:"timeout"`
	} `json:"hook"`
	When struct {
		Always      bool              `json:"always"`
		Annotations map[string]string `json:"annotations"`
	} `json:"when"`
	Stages []string `json:"stages"`
}

func readJSON(t *testing.T, file string, v any) {
	t.Helper()
	data, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(data, v); err != nil {
		t.Fatalf("%s: %v", file, err)
	}
}

// TestShippedHooksFiles checks that each hooks.d file runs cgpol-hook at the
// stage it names, and for the containers it should.
func TestShippedHooksFiles(t *testing.T) {
	for _, dir := range []string{"hooks.d", "hooks.d-annotated"} {
		files, _ := filepath.Glob(filepath.Join("..", "configs", dir, "*.json"))
		var stages []string
		for _, file := range files {
			var h hooksFile
			readJSON(t, file, &h)
			if h.Version != "1.0.0" || h.Hook.Path != "/usr/local/bin/cgpol-hook" || len(h.Stages) != 1 || h.Hook.Timeout <= 0 {
				t.Errorf("%s: %+v", file, h)
				continue
			}
			stage := h.Stages[0]
			stages = append(stages, stage)
			opts, argStage, err := parseArgs(h.Hook.Args[1:], nil)
			if err != nil || argStage != stage {
				t.Errorf("%s: args %q run stage %q (%v), want %q", file, h.Hook.Args, argStage, err, stage)
			}
			if dir == "hooks.d" && !h.When.Always {
				t.Errorf("%s: must run for every container, for the node's default policy", file)
			}
			if dir == "hooks.d-annotated" {
				if h.When.Always || !opts.annotatedOnly || len(h.When.Annotations) != 1 {
					t.Errorf("%s: %+v", file, h)
				}
				for key := range h.When.Annotations {
					re := regexp.MustCompile(key)
					for k, want := range map[string]bool{"cgpol.io/allow-ports": true, "allow-ports.cgpol.io/container.web": true,
						"io.kubernetes.cri.container-name": false, "notcgpol.io/x": false} {
						if re.MatchString(k) != want {
							t.Errorf("%s: when %q matches %q: %v", file, key, k, !want)
						}
					}
				}
			}
		}
		slices.Sort(stages)
		if !slices.Equal(stages, []string{"createRuntime", "poststop"}) {
			t.Errorf("configs/%s runs stages %v", dir, stages)
		}
	}

	var snippet struct {
		Hooks map[string][]struct {
			Path string   `json:"path"`
			Args []string `json:"args"`
		} `json:"hooks"`
	}
	readJSON(t, filepath.Join("..", "configs", "runc-hooks.json"), &snippet)
	for _, stage := range []string{"createRuntime", "poststop"} {
		hooks := snippet.Hooks[stage]
		if len(hooks) != 1 {
			t.Fatalf("runc-hooks.json: %d hooks at %s", len(hooks), stage)
		}
		if _, s, err := parseArgs(hooks[0].Args[1:], nil); err != nil || s != stage {
			t.Errorf("runc-hooks.json: %s runs %q (%v)", stage, s, err)
		}
	}
}

// TestShippedConfig checks that the example config loads and, with every
// field commented out, leaves unannotated containers unrestricted.
func TestShippedConfig(t *testing.T) {
	cfg, err := nodeconfig.Load(filepath.Join("..", "configs", "config.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	if _, source, err := cfg.PolicyFor(nil, nodeconfig.Container{ID: "x"}); err != nil || source != nodeconfig.Unrestricted {
		t.Errorf("example config: %s, %v", source, err)
	}
}
