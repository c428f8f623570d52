package integration

// Lab test of the reload (SIGHUP: the daemon re-executes its binary file in
// the same process): a holder whose binary is replaced by a newer build, as
// a package upgrade does, and then reloaded keeps its VIP without a gap for
// its clients and without any other node noticing, for an IPv4 and an IPv6
// VIP.

import (
	"net"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"floatip/internal/fiptest"
)

func TestLabReloadKeepsTheVIP(t *testing.T) {
	t.Parallel()
	l := fiptest.NewLab(t, 2)
	enableIPv6(l)
	l.StartEchoServers()
	dir := t.TempDir()
	// The holder runs a copy of the binary that the test replaces.
	bin := filepath.Join(dir, "floatip")
	copyExecutable(t, l.Binary(), bin)
	newer := fiptest.BuildFloatipVersion(t, "reload-test")
	sock := filepath.Join(dir, "notify")
	notify := listenNotify(t, sock)

	h1 := l.StartProcess("h1", "floatip", "env", "NOTIFY_SOCKET="+sock, bin, "-i", "eth0", "--priority", "200", labVIP, labVIP6)
	waitActive(t, l, "h1", 5*time.Second)
	waitActive6(t, l, "h1", 5*time.Second)
	h2 := l.StartDaemon("h2", "-i", "eth0", labVIP, labVIP6)
	waitStandby(t, h2, 5*time.Second)
	readNotifications(t, notify, "READY=1")
	pid := h1.PID()
	time.Sleep(1500 * time.Millisecond) // h2 settled: its log is what it says in steady state
	h2Before := len(h2.Logs())

	// A binary file that cannot be executed: the reload is refused, and
	// the daemon carries on as it was.
	if err := os.Chmod(bin, 0o644); err != nil {
		t.Fatal(err)
	}
	h1.Signal(syscall.SIGHUP)
	fiptest.WaitFor(t, 3*time.Second, "the reload refused", func() bool { return strings.Contains(h1.Logs(), "reload refused") })
	if !h1.Running() || !l.HostHasAddr("h1", labVIP+"/32") {
		t.Fatalf("after a refused reload: running %v, h1 holds %s: %v", h1.Running(), labVIP, l.HostHasAddr("h1", labVIP+"/32"))
	}
	if err := os.Chmod(bin, 0o755); err != nil {
		t.Fatal(err)
	}

	// The kernel's own address events on h1: a reload that let the VIP go,
	// even for a moment too short for the client to notice, shows here.
	addrEvents := l.StartProcess("h1", "addrmon", "ip", "-o", "monitor", "address", "dev", "eth0")
	summary := l.UDPClient(4*time.Second, 10*time.Millisecond)
	time.Sleep(time.Second)
	// As dpkg does: the new file under a temporary name, renamed over the
	// old one (the running program's file is then deleted, not rewritten).
	copyExecutable(t, newer, bin+".new")
	if err := os.Rename(bin+".new", bin); err != nil {
		t.Fatal(err)
	}
	h1.Signal(syscall.SIGHUP)
	readNotifications(t, notify, "RELOADING=1", "READY=1")
	s := <-summary
	if s.Err != nil {
		t.Fatalf("udp client: %v", s.Err)
	}

	if !h1.Running() || h1.PID() != pid {
		t.Fatalf("after the reload the daemon is not the same process (running %v, pid %d, was %d)", h1.Running(), h1.PID(), pid)
	}
	if !strings.Contains(h1.Logs(), "reloaded: taking back the VIPs held before") {
		t.Errorf("h1 did not take its VIP back as a reload:\n%s", h1.Logs())
	}
	if hs, hs6 := holders(l, 2), holders6(l, 2); len(hs) != 1 || hs[0] != "h1" || len(hs6) != 1 || hs6[0] != "h1" {
		t.Errorf("holders after the reload: %v and %v, want [h1] for both VIPs", hs, hs6)
	}
	if events := addrEvents.Logs(); strings.Contains(events, "Deleted") {
		t.Errorf("an address left h1's eth0 during the reload:\n%s", events)
	}
	// The gap's figure is the bench's (lab/bench.sh -only reload); here a
	// bound as generous as the other tests' "nothing moves" (a busy CI
	// machine delays an answer by tens of milliseconds), with no loss and
	// no other responder.
	t.Logf("client across the reload: longest gap %d ms, %d of %d answered", s.LongestGapMs, s.Answered, s.Sent)
	if s.LongestGapMs > 200 || s.Answered < s.Sent-2 || len(s.Changes) != 0 {
		t.Errorf("the client saw a gap of %d ms (%d of %d answered, responders %v) across the reload; want at most 200 ms, no loss and no change",
			s.LongestGapMs, s.Answered, s.Sent, s.ByResponder)
	}
	if after := h2.Logs()[h2Before:]; strings.Contains(after, "level=INFO") || strings.Contains(after, "level=WARN") || strings.Contains(after, "level=ERROR") {
		t.Errorf("the standby noticed the reload:\n%s", after)
	}
	reps, err := labStatus(l, "h1")
	if err != nil {
		t.Fatal(err)
	}
	if len(reps) != 1 || reps[0].Version != "reload-test" || len(reps[0].VIPs) != 2 ||
		reps[0].VIPs[0].State != "active" || reps[0].VIPs[1].State != "active" {
		t.Errorf("floatip status after the reload: %+v, want version reload-test holding both VIPs", reps)
	}

	// A stop is still a stop: SIGTERM hands the VIP over.
	h1.Signal(syscall.SIGTERM)
	if code, err := h1.Wait(5 * time.Second); err != nil || code != 0 {
		t.Fatalf("h1 after SIGTERM: exit %d, %v", code, err)
	}
	waitSoleHolder(t, l, 2, "h2", 3*time.Second)
	waitActive6(t, l, "h2", 3*time.Second)
	// The watch would have seen a removal: it sees this one.
	fiptest.WaitFor(t, 2*time.Second, "h1's address watch seeing the release", func() bool {
		return strings.Contains(addrEvents.Logs(), "Deleted") && strings.Contains(addrEvents.Logs(), labVIP+"/32")
	})
}

// copyExecutable copies the file src to dst, mode 0755.
func copyExecutable(t *testing.T, src, dst string) {
	t.Helper()
	b, err := os.ReadFile(src)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(dst, b, 0o755); err != nil {
		t.Fatal(err)
	}
}

// readNotifications reads systemd notifications from conn until each of
// want has come, in order (3 s at most for all).
func readNotifications(t *testing.T, conn *net.UnixConn, want ...string) {
	t.Helper()
	_ = conn.SetReadDeadline(time.Now().Add(3 * time.Second))
	buf := make([]byte, 4096)
	for len(want) > 0 {
		n, err := conn.Read(buf)
		if err != nil {
			t.Fatalf("notify socket: still waiting for %q: %v", want, err)
		}
		if strings.Contains(string(buf[:n]), want[0]) {
			want = want[1:]
		}
	}
}
