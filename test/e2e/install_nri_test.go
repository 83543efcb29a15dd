package e2e

import (
	"os"
	"os/exec"
	"path/filepath"
	"testing"

	"github.com/cgpol/cgpol/test/testenv"
)

// TestMakeInstallNRI stages make install-nri and uninstall-nri: the plugin
// lands in PREFIX/bin under DESTDIR, containerd's plugin_path links to it by
// its final path, and the plugin's configuration is added once and kept.
func TestMakeInstallNRI(t *testing.T) {
	if _, err := exec.LookPath("make"); err != nil {
		testenv.Unavailable(t, "no make")
	}
	dest := t.TempDir()
	makeTarget := func(target string) {
		t.Helper()
		cmd := exec.Command("make", "--no-print-directory", target, "DESTDIR="+dest, "PREFIX=/opt/cgpol", "BIN="+t.TempDir())
		cmd.Dir = testenv.ModuleRoot(t)
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("make %s: %v\n%s", target, err, out)
		}
	}
	makeTarget("install-nri")
	bin := filepath.Join(dest, "opt/cgpol/bin/cgpol-nri")
	conf := filepath.Join(dest, "etc/nri/conf.d/10-cgpol.conf")
	link := filepath.Join(dest, "opt/nri/plugins/10-cgpol")
	for file, mode := range map[string]os.FileMode{bin: 0o755, conf: 0o644} {
		if st, err := os.Stat(file); err != nil || st.Mode().Perm() != mode {
			t.Errorf("%s: %v, want mode %v", file, err, mode)
		}
	}
	if target, err := os.Readlink(link); err != nil || target != "/opt/cgpol/bin/cgpol-nri" {
		t.Errorf("%s: links to %q (%v), want /opt/cgpol/bin/cgpol-nri", link, target, err)
	}

	// The configuration is the admin's once installed.
	os.WriteFile(conf, []byte("logLevel: debug\n"), 0o644)
	makeTarget("install-nri")
	if data, _ := os.ReadFile(conf); string(data) != "logLevel: debug\n" {
		t.Errorf("make install-nri replaced the existing configuration: %q", data)
	}

	makeTarget("uninstall-nri")
	for _, file := range []string{bin, link} {
		if _, err := os.Lstat(file); !os.IsNotExist(err) {
			t.Errorf("%s: still there after uninstall-nri (%v)", file, err)
		}
	}
	if _, err := os.Stat(conf); err != nil {
		t.Errorf("uninstall-nri removed the configuration: %v", err)
	}
}
