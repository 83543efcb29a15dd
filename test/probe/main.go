// Command probe makes one network call per argument and prints what the
// kernel answered, one line each. Tests run it inside cgroups and containers;
// it is built static (CGO_ENABLED=0) so that it runs in a busybox rootfs.
//
//	probe connect tcp 127.0.0.1:8080   connect(2)
//	probe connect udp [::1]:53         connect(2) on a UDP socket
//	probe sendto udp 127.0.0.1:53      sendto(2) on an unconnected UDP socket
//	probe fastopen tcp 127.0.0.1:80    sendto(2) with MSG_FASTOPEN
//	probe bind tcp 127.0.0.1:8000      bind(2); port 0 lets the kernel pick
//	probe socket raw 127.0.0.1:0       socket(2) only: tcp, udp, raw, icmp (ping), udplite
//	probe dial tcp 127.0.0.1:8080      connect(2), read a line, getpeername(2):
//	                                   "ok peer=ADDR reply=LINE"
//	probe echo udp 127.0.0.1:5353      sendto(2), then recvfrom(2): "ok from=ADDR reply=DATA"
//	probe reconnect udp 127.0.0.1:9    connect(2), print, wait for a line on stdin, then
//	                                   connect(2) and sendto(2) again on the same socket
//	probe loop udp 127.0.0.1:9 N       N UDP connect(2) calls; prints ns per call
//	                                   and how many failed
//	probe spread udp 127.0.0.0:9 N     the same, but call i goes to the address
//	                                   i % 60000 above the given one: no two in a row alike
//
// Several calls can follow each other: probe connect tcp A sendto udp B.
// Each prints "<call> <proto> <addr>: ok" or ": <ERRNO>", e.g. EPERM.
// A v6 address in brackets, [::ffff:127.0.0.1]:80 included, uses an AF_INET6 socket.
//
// Flags, before the calls: -netns PATH enters a network namespace first;
// -ping opens ICMP ping sockets to every group of the (own) namespace.
package main

import (
	"bufio"
	"errors"
	"flag"
	"fmt"
	"net/netip"
	"os"
	"runtime"
	"strconv"
	"strings"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"
)

func main() {
	netns := flag.String("netns", "", "enter this network namespace (a path) first")
	ping := flag.Bool("ping", false, "allow ICMP ping sockets in the current network namespace")
	flag.Parse()
	runtime.LockOSThread() // setns applies to this thread, which makes every call
	if *netns != "" {
		if err := enterNetns(*netns); err != nil {
			fail("enter netns %s: %v", *netns, err)
		}
	}
	if *ping {
		if err := os.WriteFile("/proc/sys/net/ipv4/ping_group_range", []byte("0 2147483647"), 0); err != nil {
			fail("ping_group_range: %v", err)
		}
	}
	args := flag.Args()
	if len(args) == 0 {
		fmt.Fprintln(os.Stderr, "usage: probe [-netns PATH] [-ping] CALL PROTO ADDR [CALL PROTO ADDR]...")
		os.Exit(2)
	}
	for len(args) >= 3 {
		call, proto, addr := args[0], args[1], args[2]
		args = args[3:]
		ap, err := netip.ParseAddrPort(addr)
		if err != nil {
			fail("bad address %q: %v", addr, err)
		}
		if call == "loop" || call == "spread" {
			if len(args) < 1 {
				fail("loop needs a count")
			}
			n, err := strconv.Atoi(args[0])
			if err != nil {
				fail("bad count %q", args[0])
			}
			args = args[1:]
			loop(proto, ap, n, call == "spread")
			continue
		}
		fmt.Printf("%s %s %s: %s\n", call, proto, addr, do(call, proto, ap))
	}
	if len(args) != 0 {
		fail("trailing arguments %q", args)
	}
}

func enterNetns(path string) error {
	fd, err := unix.Open(path, unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		return err
	}
	defer unix.Close(fd)
	return unix.Setns(fd, unix.CLONE_NEWNET)
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

// kinds maps the socket kinds of the socket call to socket(2) arguments.
var kinds = map[string]struct{ typ, proto4, proto6 int }{
	"tcp":     {unix.SOCK_STREAM, 0, 0},
	"udp":     {unix.SOCK_DGRAM, 0, 0},
	"raw":     {unix.SOCK_RAW, unix.IPPROTO_ICMP, unix.IPPROTO_ICMPV6},
	"icmp":    {unix.SOCK_DGRAM, unix.IPPROTO_ICMP, unix.IPPROTO_ICMPV6},
	"udplite": {unix.SOCK_DGRAM, unix.IPPROTO_UDPLITE, unix.IPPROTO_UDPLITE},
}

// socket opens a socket of a kind, of the family that ap needs.
func socket(kind string, ap netip.AddrPort) (int, unix.Sockaddr, error) {
	k, ok := kinds[kind]
	if !ok {
		fail("unknown protocol %q", kind)
	}
	if ap.Addr().Is4() {
		fd, err := unix.Socket(unix.AF_INET, k.typ|unix.SOCK_CLOEXEC, k.proto4)
		return fd, &unix.SockaddrInet4{Port: int(ap.Port()), Addr: ap.Addr().As4()}, err
	}
	fd, err := unix.Socket(unix.AF_INET6, k.typ|unix.SOCK_CLOEXEC, k.proto6)
	return fd, &unix.SockaddrInet6{Port: int(ap.Port()), Addr: ap.Addr().As16()}, err
}

func do(call, proto string, ap netip.AddrPort) string {
	fd, sa, err := socket(proto, ap)
	if err != nil || call == "socket" {
		if err == nil {
			unix.Close(fd)
		}
		return result(err)
	}
	defer unix.Close(fd)
	switch call {
	case "connect":
		return result(unix.Connect(fd, sa))
	case "sendto":
		return result(unix.Sendto(fd, []byte("probe"), 0, sa))
	case "fastopen":
		return result(unix.Sendto(fd, []byte("probe"), unix.MSG_FASTOPEN, sa))
	case "bind":
		return result(unix.Bind(fd, sa))
	case "dial":
		return dial(fd, sa)
	case "echo":
		return echo(fd, sa)
	case "reconnect":
		fmt.Printf("%s %s %s: %s\n", call, proto, sockaddrString(sa), result(unix.Connect(fd, sa)))
		bufio.NewReader(os.Stdin).ReadString('\n')
		return result(unix.Connect(fd, sa)) + " " + result(unix.Sendto(fd, []byte("probe"), 0, sa))
	}
	fail("unknown call %q", call)
	return ""
}

// dial connects, reads what the server says first, and asks the kernel who
// the peer is.
func dial(fd int, sa unix.Sockaddr) string {
	if err := unix.Connect(fd, sa); err != nil {
		return result(err)
	}
	unix.SetsockoptTimeval(fd, unix.SOL_SOCKET, unix.SO_RCVTIMEO, &unix.Timeval{Sec: 2})
	buf := make([]byte, 256)
	n, err := unix.Read(fd, buf)
	if err != nil {
		return result(err)
	}
	peer, err := unix.Getpeername(fd)
	if err != nil {
		return result(err)
	}
	return fmt.Sprintf("ok peer=%s reply=%s", sockaddrString(peer), strings.TrimSpace(string(buf[:max(n, 0)])))
}

// echo sends a datagram and reports where the answer came from.
func echo(fd int, sa unix.Sockaddr) string {
	if err := unix.Sendto(fd, []byte("probe"), 0, sa); err != nil {
		return result(err)
	}
	unix.SetsockoptTimeval(fd, unix.SOL_SOCKET, unix.SO_RCVTIMEO, &unix.Timeval{Sec: 2})
	buf := make([]byte, 256)
	n, from, err := unix.Recvfrom(fd, buf, 0)
	if err != nil {
		return result(err)
	}
	return fmt.Sprintf("ok from=%s reply=%s", sockaddrString(from), strings.TrimSpace(string(buf[:n])))
}

func sockaddrString(sa unix.Sockaddr) string {
	switch a := sa.(type) {
	case *unix.SockaddrInet4:
		return netip.AddrPortFrom(netip.AddrFrom4(a.Addr), uint16(a.Port)).String()
	case *unix.SockaddrInet6:
		return netip.AddrPortFrom(netip.AddrFrom16(a.Addr), uint16(a.Port)).String()
	}
	return fmt.Sprintf("%T", sa)
}

// loop times n connect(2) calls on one socket: for UDP no packet is sent,
// so the cost that a connect program adds shows directly. The calls go
// straight to the kernel (RawSyscall, a prebuilt sockaddr), as tight as a C
// loop, so that the Go runtime does not dilute the ratio.
func loop(proto string, ap netip.AddrPort, n int, spread bool) {
	fd, _, err := socket(proto, ap)
	if err != nil {
		fail("socket: %v", err)
	}
	defer unix.Close(fd)
	const spreadSize = 60000
	sas := make([]unsafe.Pointer, 1, spreadSize)
	sas[0], _ = rawSockaddr(ap)
	_, size := rawSockaddr(ap)
	if spread {
		if !ap.Addr().Is4() {
			fail("spread takes an IPv4 address")
		}
		base := ap.Addr().As4()
		for i := 1; i < spreadSize; i++ {
			a := base
			a[2], a[3] = base[2]+byte(i>>8), base[3]+byte(i)
			sa, _ := rawSockaddr(netip.AddrPortFrom(netip.AddrFrom4(a), ap.Port()))
			sas = append(sas, sa)
		}
	}
	failed := 0
	var errno unix.Errno
	start := time.Now()
	for i := range n {
		sa := sas[i%len(sas)]
		if _, _, e := unix.RawSyscall(unix.SYS_CONNECT, uintptr(fd), uintptr(sa), size); e != 0 {
			failed, errno = failed+1, e
		}
	}
	elapsed := time.Since(start)
	runtime.KeepAlive(sas)
	fmt.Printf("loop %s %s: %.1f ns/op", proto, ap, float64(elapsed.Nanoseconds())/float64(n))
	if failed > 0 {
		fmt.Printf(" failed=%d errno=%s", failed, unix.ErrnoName(errno))
	}
	fmt.Println()
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
