package testenv

import (
	"os"
	"path/filepath"
	"testing"
)

func TestRootfs(t *testing.T) {
	if _, err := os.Stat(busybox); err != nil {
		Unavailable(t, "no %s", busybox)
	}
	dir := Rootfs(t)
	for _, f := range []string{"bin/busybox", "bin/sh", "bin/sleep", "probe"} {
		if _, err := os.Stat(filepath.Join(dir, f)); err != nil {
			t.Errorf("rootfs lacks %s: %v", f, err)
		}
	}
	if st, err := os.Stat(RootfsTar(t)); err != nil || st.Size() < 1<<20 {
		t.Errorf("rootfs tar: %v", err)
	}
}
