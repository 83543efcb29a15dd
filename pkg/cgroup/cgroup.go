// Package cgroup finds the cgroup v2 hierarchy and the cgroups in it: by
// path, by process and by id. It never assumes where cgroup2 is mounted.
package cgroup

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"
)

// ErrNoCgroup2 means that no cgroup2 filesystem is mounted.
var ErrNoCgroup2 = errors.New("no cgroup2 filesystem is mounted (cgpol needs the unified hierarchy; see /proc/self/mountinfo)")

// ErrGone means that a cgroup no longer exists.
var ErrGone = errors.New("cgroup no longer exists")

// Cgroup is one directory of the cgroup v2 hierarchy.
type Cgroup struct {
	Mount string // where the hierarchy is mounted, e.g. /sys/fs/cgroup
	Path  string // path inside the hierarchy, "/" for the root, as /proc/PID/cgroup shows it
	ID    uint64 // the cgroup id: the directory's inode number, as BPF sees it
}

// Dir is the cgroup's directory in the filesystem.
func (c Cgroup) Dir() string {
	return filepath.Join(c.Mount, c.Path)
}

func (c Cgroup) String() string {
	return c.Path
}

// IsRoot reports whether c is the root of the hierarchy.
func (c Cgroup) IsRoot() bool {
	return c.Path == "/"
}

// Contains reports whether o is c or one of its descendants.
func (c Cgroup) Contains(o Cgroup) bool {
	return c.IsRoot() || o.Path == c.Path || strings.HasPrefix(o.Path, c.Path+"/")
}

// Mount returns the mount point of the cgroup v2 hierarchy.
func Mount() (string, error) {
	f, err := os.Open("/proc/self/mountinfo")
	if err != nil {
		return "", fmt.Errorf("find cgroup2 mount: %w", err)
	}
	defer f.Close()
	return parseMountInfo(f)
}

// parseMountInfo returns the first cgroup2 mount point in a mountinfo file.
func parseMountInfo(r io.Reader) (string, error) {
	scanner := bufio.NewScanner(r)
	scanner.Buffer(make([]byte, 0, 64*1024), 1024*1024)
	for scanner.Scan() {
		// id parent major:minor root mountpoint options [optional...] - fstype source superoptions
		fields := strings.Fields(scanner.Text())
		sep := -1
		for i, f := range fields {
			if f == "-" {
				sep = i
				break
			}
		}
		if sep < 5 || sep+1 >= len(fields) || fields[sep+1] != "cgroup2" {
			continue
		}
		return UnescapeMountPath(fields[4]), nil
	}
	if err := scanner.Err(); err != nil {
		return "", fmt.Errorf("read mountinfo: %w", err)
	}
	return "", ErrNoCgroup2
}

// UnescapeMountPath undoes the octal escapes of a path in
// /proc/self/mountinfo (\040 for a space).
func UnescapeMountPath(s string) string {
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '\\' && i+4 <= len(s) {
			if n, err := strconv.ParseUint(s[i+1:i+4], 8, 8); err == nil {
				b.WriteByte(byte(n))
				i += 3
				continue
			}
		}
		b.WriteByte(s[i])
	}
	return b.String()
}

// Resolve finds the cgroup that name refers to: a directory on the cgroup2
// filesystem (/sys/fs/cgroup/system.slice/x.scope), or a path inside the
// hierarchy as /proc/PID/cgroup shows it (/system.slice/x.scope).
func Resolve(mount, name string) (Cgroup, error) {
	if name == "" {
		return Cgroup{}, errors.New("empty cgroup path")
	}
	dir := filepath.Clean(name)
	if !filepath.IsAbs(dir) || !within(mount, dir) {
		dir = filepath.Join(mount, dir)
	}
	return fromDir(mount, dir)
}

// within reports whether path is mount or below it.
func within(mount, path string) bool {
	rel, err := filepath.Rel(mount, path)
	return err == nil && rel != ".." && !strings.HasPrefix(rel, "../")
}

// fromDir checks that dir is a cgroup2 directory and reads its id.
func fromDir(mount, dir string) (Cgroup, error) {
	var st unix.Stat_t
	if err := unix.Stat(dir, &st); err != nil {
		return Cgroup{}, fmt.Errorf("cgroup %s: %w", dir, err)
	}
	var fs unix.Statfs_t
	if err := unix.Statfs(dir, &fs); err != nil {
		return Cgroup{}, fmt.Errorf("cgroup %s: %w", dir, err)
	}
	if fs.Type != unix.CGROUP2_SUPER_MAGIC || st.Mode&unix.S_IFMT != unix.S_IFDIR {
		return Cgroup{}, fmt.Errorf("%s is not a cgroup v2 directory (cgroup2 is mounted at %s)", dir, mount)
	}
	rel, err := filepath.Rel(mount, dir)
	if err != nil || !within(mount, dir) {
		return Cgroup{}, fmt.Errorf("%s is outside the cgroup2 mount %s", dir, mount)
	}
	return Cgroup{Mount: mount, Path: filepath.Clean("/" + rel), ID: st.Ino}, nil
}

// OfPID returns the cgroup v2 that a process is in, from /proc/PID/cgroup.
func OfPID(mount string, pid int) (Cgroup, error) {
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/cgroup", pid))
	if err != nil {
		return Cgroup{}, fmt.Errorf("cgroup of pid %d: %w", pid, err)
	}
	path, err := parseProcCgroup(string(data))
	if err != nil {
		return Cgroup{}, fmt.Errorf("cgroup of pid %d: %w", pid, err)
	}
	return fromDir(mount, filepath.Join(mount, path))
}

// parseProcCgroup returns the cgroup v2 path from a /proc/PID/cgroup file:
// the "0::PATH" line.
func parseProcCgroup(data string) (string, error) {
	for _, line := range strings.Split(data, "\n") {
		if path, ok := strings.CutPrefix(line, "0::"); ok {
			if strings.HasSuffix(path, " (deleted)") {
				return "", ErrGone
			}
			return path, nil
		}
	}
	return "", errors.New("no cgroup v2 (0::) line in /proc/PID/cgroup")
}

// fileidKernfs is the handle type of kernfs (and so cgroupfs) file handles,
// which carry the 64-bit node id, the same number as the cgroup id.
const fileidKernfs = 0xfe

// ByID finds a cgroup by id. It returns ErrGone if no cgroup has that id.
func ByID(mount string, id uint64) (Cgroup, error) {
	mountFD, err := unix.Open(mount, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return Cgroup{}, fmt.Errorf("open cgroup2 mount: %w", err)
	}
	defer unix.Close(mountFD)
	handle := make([]byte, 8)
	binary.NativeEndian.PutUint64(handle, id)
	fd, err := unix.OpenByHandleAt(mountFD, unix.NewFileHandle(fileidKernfs, handle), unix.O_RDONLY|unix.O_CLOEXEC)
	if errors.Is(err, unix.ESTALE) || errors.Is(err, unix.ENOENT) {
		return Cgroup{}, ErrGone
	}
	if err != nil {
		return Cgroup{}, fmt.Errorf("find cgroup %d: %w", id, err)
	}
	defer unix.Close(fd)
	dir, err := os.Readlink(fmt.Sprintf("/proc/self/fd/%d", fd))
	if err != nil {
		return Cgroup{}, fmt.Errorf("find cgroup %d: %w", id, err)
	}
	if strings.HasSuffix(dir, " (deleted)") {
		return Cgroup{}, ErrGone
	}
	cg, err := fromDir(mount, dir)
	if err != nil || cg.ID != id {
		return Cgroup{}, ErrGone
	}
	return cg, nil
}

// Open opens the cgroup's directory, as BPF attach calls want it, and
// checks that it is still the cgroup that was resolved.
func (c Cgroup) Open() (*os.File, error) {
	f, err := os.OpenFile(c.Dir(), unix.O_RDONLY|unix.O_DIRECTORY, 0)
	if err != nil {
		return nil, fmt.Errorf("open cgroup %s: %w", c, err)
	}
	var st unix.Stat_t
	if err := unix.Fstat(int(f.Fd()), &st); err != nil || st.Ino != c.ID {
		f.Close()
		return nil, fmt.Errorf("open cgroup %s: %w", c, ErrGone)
	}
	return f, nil
}
