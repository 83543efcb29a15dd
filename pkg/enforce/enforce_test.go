package enforce

import (
	"errors"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"sync"
	"testing"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/link"

	"github.com/cgpol/cgpol/bpf"
	"github.com/cgpol/cgpol/pkg/cgroup"
	"github.com/cgpol/cgpol/pkg/compile"
	"github.com/cgpol/cgpol/pkg/policy"
	"github.com/cgpol/cgpol/test/testenv"
)

// These tests load the real programs into the kernel, attach them to real
// cgroups and run a probe process in those cgroups against loopback.

func setup(t *testing.T) *Objects {
	t.Helper()
	testenv.Privileged(t)
	objs, err := Install(testenv.BPFFS(t))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(objs.Close)
	return objs
}

func attach(t *testing.T, objs *Objects, cg cgroup.Cgroup, spec string) {
	t.Helper()
	attachAnnotations(t, objs, cg, map[string]string{policy.KeyAllowPorts: spec})
}

// attachAnnotations attaches the policy that annotations ask for.
func attachAnnotations(t *testing.T, objs *Objects, cg cgroup.Cgroup, ann map[string]string) {
	t.Helper()
	p, _, err := policy.FromAnnotations(ann)
	if err != nil {
		t.Fatal(err)
	}
	if err := objs.Attach(cg, compile.Compile(p), Label{Name: t.Name(), Container: "ctr-" + t.Name(), Manager: "test"}); err != nil {
		t.Fatal(err)
	}
}

func addr(ip string, port int) string {
	return netip.AddrPortFrom(netip.MustParseAddr(ip), uint16(port)).String()
}

// expect runs one probe with every call in want and checks each result.
func expect(t *testing.T, cg cgroup.Cgroup, want map[string]string) {
	t.Helper()
	expectWith(t, cg, nil, want)
}

// expectWith is expect with probe flags, e.g. -netns PATH.
func expectWith(t *testing.T, cg cgroup.Cgroup, flags []string, want map[string]string) {
	t.Helper()
	args := append([]string(nil), flags...)
	for call := range want {
		var c, proto, a string
		fmt.Sscan(call, &c, &proto, &a)
		args = append(args, c, proto, a)
	}
	got := testenv.RunProbe(t, cg, args...)
	for call, w := range want {
		if got[call] != w {
			t.Errorf("%s: got %q, want %q", call, got[call], w)
		}
	}
}

var loopbacks = []string{"127.0.0.1", "::1", "::ffff:127.0.0.1"}

func TestAllowPortsTCPAndUDPOverV4V6AndMapped(t *testing.T) {
	objs := setup(t)
	cg := testenv.NewCgroup(t)
	ports := testenv.FreePorts(t, 3)
	tcpOK, udpOK, closed := ports[0], ports[1], ports[2]
	testenv.ListenTCPPort(t, "127.0.0.1", tcpOK)
	testenv.ListenTCPPort(t, "::1", tcpOK)
	attach(t, objs, cg, fmt.Sprintf("tcp:%d,udp:%d", tcpOK, udpOK))

	want := map[string]string{}
	for _, ip := range loopbacks {
		want["connect tcp "+addr(ip, tcpOK)] = "ok"
		want["connect tcp "+addr(ip, closed)] = "EPERM"
		want["connect tcp "+addr(ip, udpOK)] = "EPERM" // udp-only port
		want["connect udp "+addr(ip, udpOK)] = "ok"
		want["connect udp "+addr(ip, tcpOK)] = "EPERM" // tcp-only port
		want["sendto udp "+addr(ip, udpOK)] = "ok"
		want["sendto udp "+addr(ip, closed)] = "EPERM"
		want["fastopen tcp "+addr(ip, tcpOK)] = "ok"
		want["fastopen tcp "+addr(ip, closed)] = "EPERM"
	}
	expect(t, cg, want)

	// The same calls from a sibling without a policy are untouched.
	sibling := testenv.NewCgroup(t)
	expect(t, sibling, map[string]string{
		"connect tcp " + addr("127.0.0.1", closed): "ECONNREFUSED",
		"sendto udp " + addr("::1", closed):        "ok",
		"connect udp " + addr("::1", tcpOK):        "ok",
	})
}

func TestRangesAndProtocolQualifiers(t *testing.T) {
	objs := setup(t)
	cg := testenv.NewCgroup(t)
	// Ranges around the edges of the 512-port chunks.
	attach(t, objs, cg, "tcp:1020-1030, udp:2047-2049, 511-513")
	verdict := map[bool]string{false: "EPERM", true: "ok"}
	tcpVerdict := map[bool]string{false: "EPERM", true: "ECONNREFUSED"} // allowed, but nothing listens
	want := map[string]string{}
	for _, c := range []struct {
		port     int
		tcp, udp bool
	}{
		{510, false, false}, {511, true, true}, {512, true, true}, {513, true, true}, {514, false, false},
		{1019, false, false}, {1020, true, false}, {1024, true, false}, {1030, true, false}, {1031, false, false},
		{2046, false, false}, {2047, false, true}, {2048, false, true}, {2049, false, true}, {2050, false, false},
	} {
		want["connect tcp "+addr("127.0.0.1", c.port)] = tcpVerdict[c.tcp]
		want["connect udp "+addr("::1", c.port)] = verdict[c.udp]
	}
	expect(t, cg, want)
}

func TestEmptyListDeniesEverything(t *testing.T) {
	objs := setup(t)
	cg := testenv.NewCgroup(t)
	port := testenv.ListenTCP(t, "127.0.0.1")
	attach(t, objs, cg, "")
	expect(t, cg, map[string]string{
		"connect tcp " + addr("127.0.0.1", port):         "EPERM",
		"connect udp " + addr("::1", 53):                 "EPERM",
		"sendto udp " + addr("::ffff:127.0.0.1", 53):     "EPERM",
		"fastopen tcp " + addr("::ffff:127.0.0.1", port): "EPERM",
	})
}

func TestChildCgroupsInheritThePolicy(t *testing.T) {
	objs := setup(t)
	cg := testenv.NewCgroup(t)
	child := testenv.NewChildCgroup(t, cg, "child")
	grandchild := testenv.NewChildCgroup(t, child, "grandchild")
	port := testenv.ListenTCP(t, "127.0.0.1")
	attach(t, objs, cg, fmt.Sprintf("tcp:%d", port))
	for _, c := range []cgroup.Cgroup{child, grandchild} {
		expect(t, c, map[string]string{
			"connect tcp " + addr("127.0.0.1", port):   "ok",
			"connect tcp " + addr("127.0.0.1", port+1): "EPERM",
			"sendto udp " + addr("::1", port):          "EPERM",
		})
	}
	// A child cgroup created after the attach is covered too.
	late := testenv.NewChildCgroup(t, cg, "late")
	expect(t, late, map[string]string{"connect udp " + addr("127.0.0.1", port): "EPERM"})
}

func TestNestedPoliciesBothApply(t *testing.T) {
	objs := setup(t)
	outer := testenv.NewCgroup(t)
	inner := testenv.NewChildCgroup(t, outer, "inner")
	attach(t, objs, outer, "udp:1000-2000")
	attach(t, objs, inner, "udp:1500-3000")
	expect(t, inner, map[string]string{
		"connect udp " + addr("::1", 1200): "EPERM", // outer allows, inner does not
		"connect udp " + addr("::1", 1700): "ok",    // both allow
		"connect udp " + addr("::1", 2500): "EPERM", // inner allows, outer does not
	})
}

func TestDetachRestoresAccess(t *testing.T) {
	objs := setup(t)
	cg := testenv.NewCgroup(t)
	attach(t, objs, cg, "")
	call := "connect udp " + addr("127.0.0.1", 9)
	expect(t, cg, map[string]string{call: "EPERM"})
	if err := objs.Detach(cg.ID); err != nil {
		t.Fatal(err)
	}
	expect(t, cg, map[string]string{call: "ok"})
	assertNoState(t, objs)
	if err := objs.Detach(cg.ID); !errors.Is(err, ErrNotAttached) {
		t.Errorf("second detach: %v, want ErrNotAttached", err)
	}
}

func TestReattachReplacesThePolicy(t *testing.T) {
	objs := setup(t)
	cg := testenv.NewCgroup(t)
	attach(t, objs, cg, "udp:100")
	attach(t, objs, cg, "udp:200")
	expect(t, cg, map[string]string{
		"connect udp " + addr("127.0.0.1", 100): "EPERM",
		"connect udp " + addr("127.0.0.1", 200): "ok",
	})
	if n := testenv.CountEntries(t, objs.Slots); n != 1 {
		t.Errorf("%d slots claimed after re-attach, want 1", n)
	}
	st, err := objs.StatusOf(cg.ID)
	if err != nil || st.Policy != `cgpol.io/allow-ports="udp:200"` {
		t.Errorf("status policy = %q, %v", st.Policy, err)
	}
}

// A cgroup whose hooks are linked but whose policy was never written, whose
// slot is empty, or whose slot holds another cgroup's policy, denies.
func TestMissingPolicyDenies(t *testing.T) {
	objs := setup(t)
	call := "connect udp " + addr("127.0.0.1", 9)

	unwritten := testenv.NewCgroup(t)
	dir := objs.cgroupDir(unwritten.ID)
	if err := os.Mkdir(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := objs.linkHooks(unwritten, dir, 0); err != nil {
		t.Fatal(err)
	}
	expect(t, unwritten, map[string]string{call: "EPERM"})

	empty := testenv.NewCgroup(t)
	attach(t, objs, empty, "udp:9")
	expect(t, empty, map[string]string{call: "ok"})
	ref, _, err := objs.ref(empty.ID)
	if err != nil {
		t.Fatal(err)
	}
	if err := objs.Policies.Delete(ref.Slot - 1); err != nil {
		t.Fatal(err)
	}
	expect(t, empty, map[string]string{call: "EPERM"})
	if st, _ := objs.StatusOf(empty.ID); st.Problem == "" || st.Policy != "deny all" {
		t.Errorf("status of a cgroup with an empty slot: %q, %q", st.Policy, st.Problem)
	}

	// A slot that holds a policy owned by another cgroup, as after a slot
	// was reused while a stale storage still named it.
	foreign := testenv.NewCgroup(t)
	attach(t, objs, foreign, "udp:9")
	ref, _, _ = objs.ref(foreign.ID)
	stranger := compile.Compile(policy.Policy{}).Policy // allows everything
	stranger.CgroupId = foreign.ID + 1
	if err := objs.fillSlot(ref.Slot-1, &stranger); err != nil {
		t.Fatal(err)
	}
	expect(t, foreign, map[string]string{call: "EPERM", "connect udp " + addr("::1", 10): "EPERM"})
}

func TestCountersPerHook(t *testing.T) {
	objs := setup(t)
	cg := testenv.NewCgroup(t)
	attach(t, objs, cg, "udp:53")
	testenv.RunProbe(t, cg,
		"connect", "udp", addr("127.0.0.1", 53), "connect", "udp", addr("127.0.0.1", 54),
		"connect", "udp", addr("127.0.0.1", 55), "sendto", "udp", addr("::1", 53))
	st, err := objs.StatusOf(cg.ID)
	if err != nil {
		t.Fatal(err)
	}
	got := map[string][2]uint64{}
	linked := map[string]bool{"connect4": true, "connect6": true, "sendmsg4": true, "sendmsg6": true, "socket": true}
	for _, h := range st.Hooks {
		if h.Linked != linked[h.Hook] {
			t.Errorf("hook %s linked = %v, want %v for an allow-ports policy", h.Hook, h.Linked, linked[h.Hook])
		}
		got[h.Hook] = [2]uint64{h.Allowed, h.Denied}
	}
	// The probe opens one UDP socket per call: 4 socket creations allowed.
	want := map[string][2]uint64{"connect4": {1, 2}, "connect6": {0, 0}, "sendmsg4": {0, 0}, "sendmsg6": {1, 0}, "socket": {4, 0}}
	for hook, w := range want {
		if got[hook] != w {
			t.Errorf("%s: allowed, denied = %v, want %v", hook, got[hook], w)
		}
	}
	if st.Name != t.Name() || st.Cgroup != cg.Path || st.Container != "ctr-"+t.Name() || st.Manager != "test" {
		t.Errorf("status labels %+v, want %q at %q", st, t.Name(), cg.Path)
	}
	if id, ok, err := objs.FindContainer("ctr-" + t.Name()); !ok || err != nil || id != cg.ID {
		t.Errorf("FindContainer = %d, %v, %v; want %d", id, ok, err, cg.ID)
	}
	if _, ok, _ := objs.FindContainer("no-such-container"); ok {
		t.Error("FindContainer found a container that was never attached")
	}
}

func TestRefusesTheRootCgroup(t *testing.T) {
	objs := setup(t)
	root, err := cgroup.Resolve(testenv.CgroupMount(t), "/")
	if err != nil {
		t.Fatal(err)
	}
	err = objs.Attach(root, compile.Compile(policy.Policy{}), Label{Name: "root"})
	if err == nil {
		objs.Detach(root.ID)
		t.Fatal("attached to the cgroup2 root")
	}
	t.Log(err)
	assertNoState(t, objs)
}

func TestConcurrentInstallsAgree(t *testing.T) {
	testenv.Privileged(t)
	root := testenv.BPFFS(t)
	var wg sync.WaitGroup
	ids := make([]ebpf.ProgramID, 8)
	errs := make([]error, 8)
	for i := range ids {
		wg.Add(1)
		go func() {
			defer wg.Done()
			objs, err := Install(root)
			if err != nil {
				errs[i] = err
				return
			}
			defer objs.Close()
			_, ids[i], err = objs.program(bpf.Hooks[0])
			errs[i] = err
		}()
	}
	wg.Wait()
	for i := range ids {
		if errs[i] != nil {
			t.Fatalf("install %d: %v", i, errs[i])
		}
		if ids[i] != ids[0] {
			t.Errorf("install %d uses program %d, install 0 uses %d", i, ids[i], ids[0])
		}
	}
	entries, _ := os.ReadDir(root)
	if len(entries) != 1 || entries[0].Name() != bpf.ABI {
		t.Errorf("root holds %v, want only %s", entries, bpf.ABI)
	}
}

func TestGCReclaimsRemovedCgroups(t *testing.T) {
	objs := setup(t)
	cg := testenv.NewCgroup(t)
	kept := testenv.NewCgroup(t)
	attach(t, objs, cg, "80")
	attach(t, objs, kept, "443")
	testenv.RemoveCgroup(t, cg.Dir())

	// A slot that a killed attach claimed and filled, but never pointed at.
	slot, err := objs.claimSlot(kept.ID)
	if err != nil {
		t.Fatal(err)
	}
	orphan := compile.Compile(policy.Policy{}).Policy
	if err := objs.fillSlot(slot, &orphan); err != nil {
		t.Fatal(err)
	}
	report, err := objs.GC()
	if err != nil {
		t.Fatal(err)
	}
	// The removed cgroup's slot goes with it; the orphan is released.
	if len(report.Detached) != 1 || report.Detached[0] != cg.ID || report.Slots != 1 {
		t.Errorf("gc report %+v, want cgroup %d detached and 1 slot released", report, cg.ID)
	}
	if _, err := os.Stat(objs.cgroupDir(cg.ID)); !os.IsNotExist(err) {
		t.Errorf("links of the removed cgroup are still pinned: %v", err)
	}
	if n := testenv.CountEntries(t, objs.Slots); n != 1 {
		t.Errorf("%d slots claimed, want 1 (the kept cgroup's)", n)
	}
	var owner uint64
	if err := objs.Slots.Lookup(slot, &owner); err == nil {
		t.Errorf("released slot %d is still claimed by %d", slot, owner)
	}
	var one uint8
	if err := objs.Warm.Lookup(slot, &one); err != nil {
		t.Errorf("released slot %d is not offered for reuse: %v", slot, err)
	}
	if n := testenv.CountEntries(t, objs.Attachments); n != 1 {
		t.Errorf("%d attachment records left, want 1", n)
	}
	expect(t, kept, map[string]string{"connect udp " + addr("127.0.0.1", 80): "EPERM"})
}

func TestUninstall(t *testing.T) {
	objs := setup(t)
	cg := testenv.NewCgroup(t)
	attach(t, objs, cg, "")
	if err := Uninstall(objs.Root, false); !errors.Is(err, ErrStillAttached) {
		t.Fatalf("uninstall with an attached cgroup: %v", err)
	}
	if err := Uninstall(objs.Root, true); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(objs.Root); !os.IsNotExist(err) {
		t.Errorf("root still exists after uninstall: %v", err)
	}
	expect(t, cg, map[string]string{"connect udp " + addr("127.0.0.1", 9): "ok"})
	if _, err := Open(objs.Root); !errors.Is(err, ErrNotInstalled) {
		t.Errorf("open after uninstall: %v", err)
	}
}

// assertNoState checks that no cgroup, policy or record is left.
func assertNoState(t *testing.T, objs *Objects) {
	t.Helper()
	entries, _ := os.ReadDir(filepath.Join(objs.Dir, cgroupDir))
	if len(entries) != 0 {
		t.Errorf("pinned cgroup dirs left: %v", entries)
	}
	if n := testenv.CountEntries(t, objs.Slots); n != 0 {
		t.Errorf("%d slots still claimed", n)
	}
	if n := testenv.CountEntries(t, objs.Attachments); n != 0 {
		t.Errorf("%d attachment records left", n)
	}
}

// A released slot keeps its policy map, and the next cgroup's policy is
// written into it in place. A cgroup that still names that slot after its
// detach, through a link that cgpol did not make (bpftool, say), must be
// denied, not judged by the next cgroup's policy.
func TestWarmSlotReuse(t *testing.T) {
	objs := setup(t)
	first := testenv.NewCgroup(t)
	attach(t, objs, first, "udp:9")
	slot := mustSlot(t, objs, first.ID)
	f, err := first.Open()
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	prog, _, err := objs.program(bpf.Hooks[0])
	if err != nil {
		t.Fatal(err)
	}
	stray, err := link.AttachRawLink(link.RawLinkOptions{Target: int(f.Fd()), Program: prog, Attach: bpf.Hooks[0].Attach})
	if err != nil {
		t.Fatal(err)
	}
	defer stray.Close()
	if err := objs.Detach(first.ID); err != nil {
		t.Fatal(err)
	}

	second := testenv.NewCgroup(t)
	attach(t, objs, second, "udp:10")
	if got := mustSlot(t, objs, second.ID); got != slot {
		t.Errorf("second cgroup got slot %d, want the warm slot %d", got, slot)
	}
	expect(t, second, map[string]string{"connect udp " + addr("127.0.0.1", 10): "ok", "connect udp " + addr("127.0.0.1", 9): "EPERM"})
	// The stray link keeps the first cgroup's storage, naming the slot.
	expect(t, first, map[string]string{"connect udp " + addr("127.0.0.1", 10): "EPERM", "connect udp " + addr("127.0.0.1", 9): "EPERM"})
	if st, err := objs.StatusOf(second.ID); err != nil || st.Policy != `cgpol.io/allow-ports="udp:10"` {
		t.Errorf("status: %q, %v", st.Policy, err)
	}
}

// Detach is immediate, even while something else holds a link open.
func TestDetachIsImmediate(t *testing.T) {
	objs := setup(t)
	cg := testenv.NewCgroup(t)
	attach(t, objs, cg, "")
	held, err := link.LoadPinnedLink(filepath.Join(objs.cgroupDir(cg.ID), "connect4"), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer held.Close()
	if err := objs.Detach(cg.ID); err != nil {
		t.Fatal(err)
	}
	expect(t, cg, map[string]string{"connect udp " + addr("127.0.0.1", 9): "ok"})
}
