// Package bpffs prepares the BPF filesystem that cgpol pins its objects in:
// it mounts bpffs where needed, locks directories between cgpol processes and
// publishes a finished directory in one atomic step.
package bpffs

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"

	"golang.org/x/sys/unix"
)

// StandardMount is where bpffs is mounted on a usual Linux host.
const StandardMount = "/sys/fs/bpf"

// IsBPFFS reports whether path is on a BPF filesystem.
func IsBPFFS(path string) (bool, error) {
	var fs unix.Statfs_t
	if err := unix.Statfs(path, &fs); err != nil {
		return false, err
	}
	return fs.Type == unix.BPF_FS_MAGIC, nil
}

// Ensure makes dir a directory on a BPF filesystem, mounting one if needed:
// at StandardMount when dir is below it, else at dir itself, which must then
// be missing or empty. It never mounts over a directory that holds files.
func Ensure(dir string) error {
	dir = filepath.Clean(dir)
	existing := dir
	for {
		if _, err := os.Stat(existing); err == nil {
			break
		} else if !errors.Is(err, os.ErrNotExist) || existing == "/" {
			return fmt.Errorf("bpffs %s: %w", dir, err)
		}
		existing = filepath.Dir(existing)
	}
	onBPF, err := IsBPFFS(existing)
	if err != nil {
		return fmt.Errorf("bpffs %s: %w", existing, err)
	}
	if !onBPF {
		target := dir
		if existing == StandardMount {
			target = StandardMount
		} else if existing == dir {
			if empty, err := isEmptyDir(dir); err != nil || !empty {
				return fmt.Errorf("%s is not on a BPF filesystem and is not an empty directory to mount one on; mount it yourself (mount -t bpf bpf DIR) or choose another --bpffs", dir)
			}
		} else if err := os.MkdirAll(dir, 0o700); err != nil {
			return fmt.Errorf("bpffs %s: %w", dir, err)
		}
		if err := unix.Mount("bpf", target, "bpf", 0, "mode=0700"); err != nil {
			return fmt.Errorf("mount bpffs at %s: %w", target, err)
		}
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("bpffs %s: %w", dir, err)
	}
	return nil
}

func isEmptyDir(dir string) (bool, error) {
	f, err := os.Open(dir)
	if err != nil {
		return false, err
	}
	defer f.Close()
	_, err = f.Readdirnames(1)
	if err == io.EOF {
		return true, nil
	}
	return false, err
}

// Publish renames the directory tmp to final in one step, unless final
// already exists: then it returns an error that satisfies os.IsExist.
func Publish(tmp, final string) error {
	err := unix.Renameat2(unix.AT_FDCWD, tmp, unix.AT_FDCWD, final, unix.RENAME_NOREPLACE)
	if errors.Is(err, unix.ENOTEMPTY) {
		err = unix.EEXIST
	}
	if err != nil {
		return &os.LinkError{Op: "publish", Old: tmp, New: final, Err: err}
	}
	return nil
}

// ErrMoved means that a locked directory was removed or replaced while the
// lock was awaited.
var ErrMoved = errors.New("directory was removed while waiting for its lock")

// Lock is a flock(2) on a directory. It ends with the process, so a killed
// cgpol never leaves a directory locked.
type Lock struct {
	f *os.File
}

// LockDir locks dir, shared or exclusive, waiting for the lock. Once the lock
// is held it checks that dir still names the directory it locked, and
// returns ErrMoved if not.
func LockDir(dir string, exclusive bool) (*Lock, error) {
	how := unix.LOCK_SH
	if exclusive {
		how = unix.LOCK_EX
	}
	return lockDir(dir, how)
}

// TryLockDir is LockDir, exclusive, without waiting. It returns
// unix.EWOULDBLOCK if someone else holds a lock on dir.
func TryLockDir(dir string) (*Lock, error) {
	return lockDir(dir, unix.LOCK_EX|unix.LOCK_NB)
}

func lockDir(dir string, how int) (*Lock, error) {
	f, err := os.OpenFile(dir, unix.O_RDONLY|unix.O_DIRECTORY, 0)
	if err != nil {
		return nil, err
	}
	if err := flock(f, how); err != nil {
		f.Close()
		return nil, fmt.Errorf("lock %s: %w", dir, err)
	}
	var held, now unix.Stat_t
	if unix.Fstat(int(f.Fd()), &held) != nil || unix.Stat(dir, &now) != nil || held.Ino != now.Ino || held.Dev != now.Dev {
		f.Close()
		return nil, fmt.Errorf("lock %s: %w", dir, ErrMoved)
	}
	return &Lock{f: f}, nil
}

func flock(f *os.File, how int) error {
	for {
		err := unix.Flock(int(f.Fd()), how)
		if !errors.Is(err, unix.EINTR) {
			return err
		}
	}
}

// Unlock releases the lock. It is safe on a nil Lock.
func (l *Lock) Unlock() {
	if l != nil {
		l.f.Close()
	}
}
