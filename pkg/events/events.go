// Package events reads cgpol's deny and audit events from the pinned ring
// buffer and names them: hook, reason, process, container and address.
//
// The ring buffer holds what nobody has read yet; when it is full the
// kernel drops new events and counts them (cgpol_events_lost_total). The
// allowed/denied counters are kept apart and never lost. One reader at a
// time: two readers would split the events between them.
package events

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"net/netip"
	"strings"
	"time"

	"github.com/cilium/ebpf/ringbuf"
	"golang.org/x/sys/unix"

	"github.com/cgpol/cgpol/bpf"
	"github.com/cgpol/cgpol/pkg/enforce"
)

// Event is one denial, or one call that audit mode let through.
type Event struct {
	Time         time.Time `json:"time"`
	Verdict      string    `json:"verdict"` // "deny" or "audit"
	Hook         string    `json:"hook"`
	Reason       string    `json:"reason"`
	PID          uint32    `json:"pid,omitempty"`
	Comm         string    `json:"comm,omitempty"`
	CgroupID     uint64    `json:"cgroup_id"`                // the attached cgroup whose policy decided
	TaskCgroupID uint64    `json:"task_cgroup_id,omitempty"` // the caller's cgroup, maybe a child
	Container    string    `json:"container,omitempty"`      // the attachment's name
	ContainerID  string    `json:"container_id,omitempty"`
	Protocol     string    `json:"protocol"`
	SocketType   string    `json:"socket_type,omitempty"` // socket creation only
	Addr         string    `json:"addr,omitempty"`        // destination, or local address for bind
	Port         uint16    `json:"port"`
}

// String renders the event on one line, e.g.
//
//	[DENY connect4] pid=12345 comm=curl daddr=127.0.0.1 dport=9090 proto=tcp container=web reason=port
func (e Event) String() string {
	var b strings.Builder
	fmt.Fprintf(&b, "[%s %s]", strings.ToUpper(e.Verdict), e.Hook)
	if e.PID != 0 {
		fmt.Fprintf(&b, " pid=%d comm=%s", e.PID, e.Comm)
	}
	switch {
	case e.Hook == "socket":
		fmt.Fprintf(&b, " type=%s", e.SocketType)
	case strings.HasPrefix(e.Hook, "bind"):
		fmt.Fprintf(&b, " laddr=%s lport=%d", e.Addr, e.Port)
	default:
		fmt.Fprintf(&b, " daddr=%s dport=%d", e.Addr, e.Port)
	}
	fmt.Fprintf(&b, " proto=%s", e.Protocol)
	if e.Container != "" {
		fmt.Fprintf(&b, " container=%s", e.Container)
	} else {
		fmt.Fprintf(&b, " cgroup=%d", e.CgroupID)
	}
	fmt.Fprintf(&b, " reason=%s", e.Reason)
	return b.String()
}

// Reader reads events as they come.
type Reader struct {
	objs     *enforce.Objects
	rd       *ringbuf.Reader
	bootTime time.Time // wall-clock time of boot, to place boot_ns
	since    uint64    // boot_ns when reading began: older events are skipped
}

// NewReader starts reading the events of an install, from now on: what the
// ring buffer holds from before is skipped.
func NewReader(objs *enforce.Objects) (*Reader, error) {
	rd, err := ringbuf.NewReader(objs.Events)
	if err != nil {
		return nil, fmt.Errorf("read events: %w", err)
	}
	var ts unix.Timespec
	if err := unix.ClockGettime(unix.CLOCK_BOOTTIME, &ts); err != nil {
		rd.Close()
		return nil, fmt.Errorf("read events: %w", err)
	}
	return &Reader{objs: objs, rd: rd, bootTime: time.Now().Add(-time.Duration(ts.Nano())), since: uint64(ts.Nano())}, nil
}

// ErrClosed is returned by Read once the reader is closed.
var ErrClosed = errors.New("event reader closed")

// Read waits for the next event.
func (r *Reader) Read() (Event, error) {
	for {
		rec, err := r.rd.Read()
		if errors.Is(err, ringbuf.ErrClosed) {
			return Event{}, ErrClosed
		}
		if err != nil {
			return Event{}, fmt.Errorf("read event: %w", err)
		}
		var raw bpf.Event
		if err := binary.Read(bytes.NewReader(rec.RawSample), binary.NativeEndian, &raw); err != nil {
			return Event{}, fmt.Errorf("decode event: %w", err)
		}
		if raw.BootNs >= r.since {
			return r.decode(raw), nil
		}
	}
}

// SetDeadline makes Read give up at t (os.ErrDeadlineExceeded).
func (r *Reader) SetDeadline(t time.Time) {
	r.rd.SetDeadline(t)
}

// Close stops reading; a blocked Read returns ErrClosed.
func (r *Reader) Close() error {
	return r.rd.Close()
}

func (r *Reader) decode(raw bpf.Event) Event {
	e := Event{
		Time:         r.bootTime.Add(time.Duration(raw.BootNs)),
		Verdict:      "deny",
		Reason:       bpf.ReasonNames[raw.Reason],
		PID:          raw.Pid,
		Comm:         bpf.CString(raw.Comm[:]),
		CgroupID:     raw.CgroupId,
		TaskCgroupID: raw.TaskCgroupId,
		Protocol:     protocolName(raw.Protocol),
		Port:         raw.Port,
	}
	if raw.Audit != 0 {
		e.Verdict = "audit"
	}
	if h, ok := bpf.HookByID(raw.Hook); ok {
		e.Hook = h.Name
	}
	if e.Reason == "" {
		e.Reason = fmt.Sprintf("reason-%d", raw.Reason)
	}
	if e.Hook == "socket" {
		e.SocketType = socketTypes[raw.Type]
	} else if raw.Family == unix.AF_INET {
		e.Addr = netip.AddrFrom4([4]byte(raw.Addr[:4])).String()
	} else {
		e.Addr = netip.AddrFrom16(raw.Addr).String()
	}
	if st, err := r.objs.Attachment(raw.CgroupId); err == nil {
		e.Container, e.ContainerID = st.Name, st.Container
	}
	return e
}

var socketTypes = map[uint8]string{unix.SOCK_STREAM: "stream", unix.SOCK_DGRAM: "dgram", unix.SOCK_RAW: "raw", unix.SOCK_SEQPACKET: "seqpacket"}

func protocolName(p uint8) string {
	switch p {
	case unix.IPPROTO_TCP:
		return "tcp"
	case unix.IPPROTO_UDP:
		return "udp"
	case unix.IPPROTO_ICMP:
		return "icmp"
	case unix.IPPROTO_ICMPV6:
		return "icmpv6"
	case unix.IPPROTO_UDPLITE:
		return "udplite"
	case unix.IPPROTO_SCTP:
		return "sctp"
	}
	return fmt.Sprint(p)
}
