package testenv

import (
	"fmt"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"runtime"
	"strings"
	"syscall"
	"testing"

	"golang.org/x/sys/unix"
)

// NetNS is a network namespace that a test created, with loopback up and a
// veth pair (v0, v1) inside it that holds extra addresses. Traffic to those
// addresses stays inside the namespace.
type NetNS struct {
	Name string
	Path string // for setns(2) and probe -netns
}

// NewNetNS creates a namespace whose v0 holds addrs (host routes, IPv4 or
// IPv6), and deletes it at the end of the test.
func NewNetNS(t testing.TB, addrs ...string) NetNS {
	t.Helper()
	if _, err := exec.LookPath("ip"); err != nil {
		Unavailable(t, "no ip command: install iproute2 (make deps)")
	}
	ns := NetNS{Name: "cgpol-" + randomHex(4)}
	ns.Path = "/var/run/netns/" + ns.Name
	run := func(args ...string) {
		t.Helper()
		if out, err := exec.Command("ip", args...).CombinedOutput(); err != nil {
			t.Fatalf("ip %s: %v: %s", strings.Join(args, " "), err, out)
		}
	}
	run("netns", "add", ns.Name)
	t.Cleanup(func() { exec.Command("ip", "netns", "del", ns.Name).Run() })
	run("-n", ns.Name, "link", "set", "lo", "up")
	run("-n", ns.Name, "link", "add", "v0", "type", "veth", "peer", "name", "v1")
	run("-n", ns.Name, "link", "set", "v0", "up")
	run("-n", ns.Name, "link", "set", "v1", "up")
	for _, a := range addrs {
		ip := netip.MustParseAddr(a)
		args := []string{"-n", ns.Name, "addr", "add", fmt.Sprintf("%s/%d", ip, ip.BitLen()), "dev", "v0"}
		if ip.Is6() {
			args = append(args, "nodad")
		}
		run(args...)
	}
	return ns
}

// Do runs f with the calling goroutine's thread inside the namespace, so
// that sockets f creates belong to it.
func (ns NetNS) Do(t testing.TB, f func()) {
	t.Helper()
	done := make(chan error)
	go func() {
		runtime.LockOSThread() // never unlocked: the thread dies with the goroutine
		fd, err := unix.Open(ns.Path, unix.O_RDONLY|unix.O_CLOEXEC, 0)
		if err == nil {
			err = unix.Setns(fd, unix.CLONE_NEWNET)
			unix.Close(fd)
		}
		if err == nil {
			f()
		}
		done <- err
	}()
	if err := <-done; err != nil {
		t.Fatalf("enter netns %s: %v", ns.Name, err)
	}
}

// ServeTCP listens on addr ("127.0.0.1:0" picks a port) and writes ident
// and a newline to every connection (nothing if ident is empty) until the
// test ends. It returns the address it listens on.
func ServeTCP(t testing.TB, addr, ident string) netip.AddrPort {
	t.Helper()
	l, err := net.Listen("tcp", addr)
	if err != nil {
		t.Fatalf("listen %s: %v", addr, err)
	}
	t.Cleanup(func() { l.Close() })
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			if ident != "" {
				c.Write([]byte(ident + "\n"))
			}
			c.Close()
		}
	}()
	return l.Addr().(*net.TCPAddr).AddrPort()
}

// ServeUDP answers every datagram on addr with ident. It returns the address.
func ServeUDP(t testing.TB, addr, ident string) netip.AddrPort {
	t.Helper()
	c, err := net.ListenPacket("udp", addr)
	if err != nil {
		t.Fatalf("listen %s: %v", addr, err)
	}
	t.Cleanup(func() { c.Close() })
	go func() {
		buf := make([]byte, 512)
		for {
			_, from, err := c.ReadFrom(buf)
			if err != nil {
				return
			}
			c.WriteTo([]byte(ident), from)
		}
	}()
	return c.LocalAddr().(*net.UDPAddr).AddrPort()
}

// RunProbeAs runs the probe in cg as another user, without capabilities.
func RunProbeAs(t testing.TB, cg interface{ Dir() string }, uid int, args ...string) map[string]string {
	t.Helper()
	f, err := os.Open(cg.Dir())
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	cmd := exec.Command(Probe(t), args...)
	cmd.SysProcAttr = &syscall.SysProcAttr{UseCgroupFD: true, CgroupFD: int(f.Fd()),
		Credential: &syscall.Credential{Uid: uint32(uid), Gid: uint32(uid)}}
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("probe as %d %v: %v", uid, args, err)
	}
	return ParseProbe(string(out))
}
