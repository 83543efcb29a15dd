package e2e

import (
	"os"
	"os/exec"
	"path/filepath"
	"testing"

	"github.com/cgpol/cgpol/test/testenv"
)

// TestMakeInstallHonoursDestdirAndPrefix stages an install and checks that
// every file lands under DESTDIR, and that the hooks.d files and the runc
// snippet run the installed hook.
func TestMakeInstallHonoursDestdirAndPrefix(t *testing.T) {
	if _, err := exec.LookPath("make"); err != nil {
		testenv.Unavailable(t, "no make")
	}
	dest := t.TempDir()
	cmd := exec.Command("make", "--no-print-directory", "install", "DESTDIR="+dest, "PREFIX=/opt/cgpol", "BIN="+t.TempDir())
	cmd.Dir = testenv.ModuleRoot(t)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("make install: %v\n%s", err, out)
	}
	hook := "/opt/cgpol/bin/cgpol-hook"
	for _, f := range []struct {
		path string
		mode os.FileMode
	}{
		{"/opt/cgpol/bin/cgpol", 0o755},
		{hook, 0o755},
		{"/etc/cgpol/config.yaml", 0o644},
		{"/opt/cgpol/share/cgpol/runc-hooks.json", 0o644},
		{"/usr/share/containers/oci/hooks.d/cgpol-createruntime.json", 0o644},
		{"/usr/share/containers/oci/hooks.d/cgpol-poststop.json", 0o644},
		{"/usr/libexec/oci/hooks.d/cgpol-createruntime.json", 0o644},
		{"/usr/libexec/oci/hooks.d/cgpol-poststop.json", 0o644},
	} {
		st, err := os.Stat(filepath.Join(dest, f.path))
		if err != nil {
			t.Errorf("not installed: %v", err)
			continue
		}
		if st.Mode().Perm() != f.mode {
			t.Errorf("%s: mode %v, want %v", f.path, st.Mode().Perm(), f.mode)
		}
	}
	hooksFiles, _ := filepath.Glob(filepath.Join(dest, "usr/*/*/oci/hooks.d/*.json"))
	hooksFiles2, _ := filepath.Glob(filepath.Join(dest, "usr/libexec/oci/hooks.d/*.json"))
	for _, file := range append(hooksFiles, hooksFiles2...) {
		var h struct {
			Hook struct{ Path string } `json:"hook"`
		}
		readJSONFile(t, file, &h)
		if h.Hook.Path != hook {
			t.Errorf("%s runs %q, want %q", file, h.Hook.Path, hook)
		}
	}
	var snippet struct {
		Hooks map[string][]struct{ Path string } `json:"hooks"`
	}
	readJSONFile(t, filepath.Join(dest, "/opt/cgpol/share/cgpol/runc-hooks.json"), &snippet)
	for stage, hooks := range snippet.Hooks {
		if len(hooks) != 1 || hooks[0].Path != hook {
			t.Errorf("runc-hooks.json %s: %+v", stage, hooks)
		}
	}

	// An existing config is the admin's: install keeps it.
	config := filepath.Join(dest, "etc/cgpol/config.yaml")
	os.WriteFile(config, []byte("defaultPolicy:\n  allow-ports: \"\"\n"), 0o644)
	cmd = exec.Command("make", "--no-print-directory", "install", "DESTDIR="+dest, "PREFIX=/opt/cgpol", "BIN="+t.TempDir())
	cmd.Dir = testenv.ModuleRoot(t)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("make install again: %v\n%s", err, out)
	}
	if data, _ := os.ReadFile(config); string(data) != "defaultPolicy:\n  allow-ports: \"\"\n" {
		t.Errorf("make install replaced the existing config: %q", data)
	}
}
