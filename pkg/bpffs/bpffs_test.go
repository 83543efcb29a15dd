package bpffs

import (
	"errors"
	"os"
	"path/filepath"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/cgpol/cgpol/test/testenv"
)

func TestEnsureMountsOnAnEmptyDirectory(t *testing.T) {
	testenv.Privileged(t)
	dir := filepath.Join(t.TempDir(), "a", "b")
	if err := Ensure(dir); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { unix.Unmount(dir, unix.MNT_DETACH) })
	if ok, err := IsBPFFS(dir); !ok || err != nil {
		t.Fatalf("%s is not on bpffs after Ensure: %v", dir, err)
	}
	// Again: already bpffs, and a subdirectory is created on it.
	sub := filepath.Join(dir, "cgpol")
	if err := Ensure(sub); err != nil {
		t.Fatal(err)
	}
	if ok, _ := IsBPFFS(sub); !ok {
		t.Errorf("%s is not on bpffs", sub)
	}
}

func TestEnsureRefusesADirectoryWithFiles(t *testing.T) {
	testenv.Privileged(t)
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "precious"), []byte("x"), 0o600)
	if err := Ensure(dir); err == nil {
		unix.Unmount(dir, unix.MNT_DETACH)
		t.Fatal("Ensure mounted over a directory that holds files")
	}
	if _, err := os.Stat(filepath.Join(dir, "precious")); err != nil {
		t.Errorf("file hidden or gone: %v", err)
	}
}

func TestPublishIsCreateOnly(t *testing.T) {
	root := t.TempDir()
	a, b, final := filepath.Join(root, "a"), filepath.Join(root, "b"), filepath.Join(root, "final")
	for _, d := range []string{a, b} {
		if err := os.Mkdir(d, 0o700); err != nil {
			t.Fatal(err)
		}
	}
	if err := Publish(a, final); err != nil {
		t.Fatal(err)
	}
	if err := Publish(b, final); !os.IsExist(err) {
		t.Errorf("second publish: %v, want an exists error", err)
	}
	if _, err := os.Stat(b); err != nil {
		t.Errorf("the loser's directory was touched: %v", err)
	}
}

func TestLocks(t *testing.T) {
	dir := t.TempDir()
	shared1, err := LockDir(dir, false)
	if err != nil {
		t.Fatal(err)
	}
	shared2, err := LockDir(dir, false)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := TryLockDir(dir); !errors.Is(err, unix.EWOULDBLOCK) {
		t.Errorf("exclusive lock while shared locks are held: %v", err)
	}
	shared1.Unlock()
	shared2.Unlock()
	excl, err := TryLockDir(dir)
	if err != nil {
		t.Fatalf("exclusive lock with no other lock held: %v", err)
	}
	excl.Unlock()

	// A directory removed while its lock was awaited is reported.
	gone := filepath.Join(t.TempDir(), "gone")
	os.Mkdir(gone, 0o700)
	held, _ := LockDir(gone, true)
	done := make(chan error)
	go func() {
		l, err := LockDir(gone, true)
		l.Unlock()
		done <- err
	}()
	os.Remove(gone)
	held.Unlock()
	if err := <-done; !errors.Is(err, ErrMoved) && !errors.Is(err, os.ErrNotExist) {
		t.Errorf("lock of a removed directory: %v", err)
	}
}
