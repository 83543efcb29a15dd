package testenv

import (
	"archive/tar"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
)

// busybox is the static busybox from Debian's busybox-static package.
const busybox = "/bin/busybox"

var rootfs struct {
	sync.Mutex
	dir string
}

// Rootfs returns a minimal container root filesystem, built once per test
// binary: busybox-static with its applets (sh, sleep, cat, ...) in /bin, and
// the static probe at /probe. Tests must not modify it.
func Rootfs(t testing.TB) string {
	t.Helper()
	rootfs.Lock()
	defer rootfs.Unlock()
	if rootfs.dir != "" {
		return rootfs.dir
	}
	if _, err := os.Stat(busybox); err != nil {
		Unavailable(t, "no %s: install Debian's busybox-static (make deps)", busybox)
	}
	probe := Probe(t)
	dir, err := os.MkdirTemp("", "cgpol-rootfs-")
	if err != nil {
		t.Fatal(err)
	}
	os.Chmod(dir, 0o755)
	for _, d := range []string{"bin", "proc", "sys", "dev", "tmp", "etc", "run"} {
		if err := os.MkdirAll(filepath.Join(dir, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	copyFile(t, busybox, filepath.Join(dir, "bin", "busybox"))
	copyFile(t, probe, filepath.Join(dir, "probe"))
	out, err := exec.Command(busybox, "--list").Output()
	if err != nil {
		t.Fatalf("busybox --list: %v", err)
	}
	for _, applet := range strings.Fields(string(out)) {
		if applet != "busybox" {
			os.Symlink("busybox", filepath.Join(dir, "bin", applet))
		}
	}
	os.WriteFile(filepath.Join(dir, "etc", "passwd"), []byte("root:x:0:0:root:/:/bin/sh\nnobody:x:65534:65534:nobody:/:/bin/false\n"), 0o644)
	os.WriteFile(filepath.Join(dir, "etc", "group"), []byte("root:x:0:\nnogroup:x:65534:\n"), 0o644)
	rootfs.dir = dir
	return dir
}

// RootfsTar writes Rootfs as a tar archive (for podman import and image
// layers) and returns its path.
func RootfsTar(t testing.TB) string {
	t.Helper()
	dir := Rootfs(t)
	file := filepath.Join(t.TempDir(), "rootfs.tar")
	f, err := os.Create(file)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	tw := tar.NewWriter(f)
	err = filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil || path == dir {
			return err
		}
		info, err := d.Info()
		if err != nil {
			return err
		}
		link := ""
		if d.Type()&fs.ModeSymlink != 0 {
			if link, err = os.Readlink(path); err != nil {
				return err
			}
		}
		hdr, err := tar.FileInfoHeader(info, link)
		if err != nil {
			return err
		}
		hdr.Name, _ = filepath.Rel(dir, path)
		hdr.Uid, hdr.Gid, hdr.Uname, hdr.Gname = 0, 0, "root", "root"
		if err := tw.WriteHeader(hdr); err != nil {
			return err
		}
		if d.Type().IsRegular() {
			src, err := os.Open(path)
			if err != nil {
				return err
			}
			defer src.Close()
			_, err = io.Copy(tw, src)
			return err
		}
		return nil
	})
	if err == nil {
		err = tw.Close()
	}
	if err != nil {
		t.Fatalf("tar rootfs: %v", err)
	}
	return file
}

func copyFile(t testing.TB, from, to string) {
	t.Helper()
	data, err := os.ReadFile(from)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(to, data, 0o755); err != nil {
		t.Fatal(err)
	}
}
