// Command probe makes one network call per argument and prints what the
// kernel answered, one line each. Tests run it inside cgroups and containers;
// it is built static (CGO_ENABLED=0) so that it runs in a busybox rootfs.
//
//	probe connect tcp 127.0.0.1:8080   connect(2)
//	probe connect udp [::1]:53         connect(2) on a UDP socket
//	probe sendto udp 127.0.0.1:53      sendto(2) on an unconnected UDP socket
//	probe fastopen tcp 127.0.0.1:80    sendto(2) with MSG_FASTOPEN
//	probe loop udp 127.0.0.1:9 N       N UDP connect(2) calls; prints ns per call
//
// Several calls can follow each other: probe connect tcp A sendto udp B.
// Each prints "<call> <proto> <addr>: ok" or ": <ERRNO>", e.g. EPERM.
// A v6 address in brackets, [::ffff:127.0.0.1]:80 included, uses an AF_INET6 socket.
package main

import (
	"errors"
	"fmt"
	"net/netip"
	"os"
	"runtime"
	"strconv"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"
)

func main() {
	args := os.Args[1:]
	if len(args) == 0 {
		fmt.Fprintln(os.Stderr, "usage: probe CALL PROTO ADDR [CALL PROTO ADDR]...")
		os.Exit(2)
	}
	for len(args) >= 3 {
		call, proto, addr := args[0], args[1], args[2]
		args = args[3:]
		ap, err := netip.ParseAddrPort(addr)
		if err != nil {
			fail("bad address %q: %v", addr, err)
		}
		if call == "loop" {
			if len(args) < 1 {
				fail("loop needs a count")
			}
			n, err := strconv.Atoi(args[0])
			if err != nil {
				fail("bad count %q", args[0])
			}
			args = args[1:]
			loop(proto, ap, n)
			continue
		}
		fmt.Printf("%s %s %s: %s\n", call, proto, addr, result(do(call, proto, ap)))
	}
	if len(args) != 0 {
		fail("trailing arguments %q", args)
	}
}

func fail(format string, a ...any) {
	fmt.Fprintf(os.Stderr, "probe: "+format+"\n", a...)
	os.Exit(2)
}

func result(err error) string {
	var errno unix.Errno
	switch {
	case err == nil:
		return "ok"
	case errors.As(err, &errno):
		return unix.ErrnoName(errno)
	}
	return err.Error()
}

// socket opens a socket of the family that ap needs.
func socket(proto string, ap netip.AddrPort) (int, unix.Sockaddr, error) {
	typ := unix.SOCK_STREAM
	switch proto {
	case "tcp":
	case "udp":
		typ = unix.SOCK_DGRAM
	default:
		fail("unknown protocol %q", proto)
	}
	if ap.Addr().Is4() {
		fd, err := unix.Socket(unix.AF_INET, typ|unix.SOCK_CLOEXEC, 0)
		return fd, &unix.SockaddrInet4{Port: int(ap.Port()), Addr: ap.Addr().As4()}, err
	}
	fd, err := unix.Socket(unix.AF_INET6, typ|unix.SOCK_CLOEXEC, 0)
	return fd, &unix.SockaddrInet6{Port: int(ap.Port()), Addr: ap.Addr().As16()}, err
}

func do(call, proto string, ap netip.AddrPort) error {
	fd, sa, err := socket(proto, ap)
	if err != nil {
		return err
	}
	defer unix.Close(fd)
	switch call {
	case "connect":
		return unix.Connect(fd, sa)
	case "sendto":
		return unix.Sendto(fd, []byte("probe"), 0, sa)
	case "fastopen":
		return unix.Sendto(fd, []byte("probe"), unix.MSG_FASTOPEN, sa)
	}
	fail("unknown call %q", call)
	return nil
}

// loop times n connect(2) calls on one socket: for UDP no packet is sent,
// so the cost that a connect program adds shows directly. The calls go
// straight to the kernel (RawSyscall, a prebuilt sockaddr), as tight as a C
// loop, so that the Go runtime does not dilute the ratio.
func loop(proto string, ap netip.AddrPort, n int) {
	fd, _, err := socket(proto, ap)
	if err != nil {
		fail("socket: %v", err)
	}
	defer unix.Close(fd)
	sa, size := rawSockaddr(ap)
	start := time.Now()
	for range n {
		if _, _, errno := unix.RawSyscall(unix.SYS_CONNECT, uintptr(fd), uintptr(sa), size); errno != 0 {
			fail("connect: %v", errno)
		}
	}
	runtime.KeepAlive(sa)
	fmt.Printf("loop %s %s: %.1f ns/op\n", proto, ap, float64(time.Since(start).Nanoseconds())/float64(n))
}

// rawSockaddr builds the kernel's sockaddr for ap once, on the heap.
func rawSockaddr(ap netip.AddrPort) (unsafe.Pointer, uintptr) {
	port := [2]byte{byte(ap.Port() >> 8), byte(ap.Port())}
	if ap.Addr().Is4() {
		sa := &unix.RawSockaddrInet4{Family: unix.AF_INET, Addr: ap.Addr().As4()}
		copy((*[2]byte)(unsafe.Pointer(&sa.Port))[:], port[:])
		return unsafe.Pointer(sa), unsafe.Sizeof(*sa)
	}
	sa := &unix.RawSockaddrInet6{Family: unix.AF_INET6, Addr: ap.Addr().As16()}
	copy((*[2]byte)(unsafe.Pointer(&sa.Port))[:], port[:])
	return unsafe.Pointer(sa), unsafe.Sizeof(*sa)
}
