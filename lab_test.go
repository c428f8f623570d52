package main

// Integration tests: the built binary in network namespaces, real kernels,
// real ARP. Each test builds its own lab (see labharness_test.go) and
// asserts what a user sees from the client namespace.

import (
	"os/exec"
	"strings"
	"syscall"
	"testing"
	"time"

	"floatip/internal/fiptest"
)

const labVIP = "192.0.2.50"

// waitActive waits until host holds the VIP.
func waitActive(t *testing.T, l *lab, host string, within time.Duration) {
	t.Helper()
	fiptest.WaitFor(t, within, host+" holds "+labVIP, func() bool { return l.hostHasAddr(host, labVIP+"/32") })
}

// startPair starts the usual two-host group: h1 (priority 200) takes the
// VIP, then h2 (default priority) joins as its standby. Extra flags for
// each go in h1Args and h2Args.
func startPair(t *testing.T, l *lab, h1Args, h2Args []string) (h1, h2 *process) {
	t.Helper()
	h1 = l.startDaemon("h1", append([]string{"-i", "eth0", "--priority", "200", labVIP}, h1Args...)...)
	waitActive(t, l, "h1", 5*time.Second)
	h2 = l.startDaemon("h2", append([]string{"-i", "eth0", labVIP}, h2Args...)...)
	waitStandby(t, h2, 5*time.Second)
	return h1, h2
}

// waitStandby waits until the daemon logged that it sees the holder.
func waitStandby(t *testing.T, d *process, within time.Duration) {
	t.Helper()
	fiptest.WaitFor(t, within, "standby sees the holder", func() bool { return strings.Contains(d.logs(), "VIP is held") })
}

func TestLabTakeoverOnEmptyNetwork(t *testing.T) {
	t.Parallel()
	l := newLab(t, 1)
	d := l.startDaemon("h1", "-i", "eth0", labVIP)
	waitActive(t, l, "h1", 5*time.Second)
	if !l.clientPing(labVIP) {
		t.Fatal("client cannot ping the VIP")
	}
	if got := l.clientNeighMAC(labVIP); got != hostMAC(1) {
		t.Fatalf("client's ARP cache: %s is at %q, want h1 %s", labVIP, got, hostMAC(1))
	}
	if !strings.Contains(d.logs(), "claimed VIP") {
		t.Errorf("no 'claimed VIP' log line:\n%s", d.logs())
	}
	// The address carries the label, so `ip addr` shows who put it there.
	if out := l.mustRun("h1", "ip", "-4", "addr", "show", "dev", "eth0"); !strings.Contains(out, "eth0:fip") {
		t.Errorf("VIP without the eth0:fip label:\n%s", out)
	}
}

// TestLabLinkCutFailover: the holder's link is cut; the standby takes over
// and the client keeps being answered, now by the new holder.
func TestLabLinkCutFailover(t *testing.T) {
	t.Parallel()
	l := newLab(t, 2)
	l.startEchoServers()
	_, h2 := startPair(t, l, nil, nil)

	summary := l.udpClient(6*time.Second, 10*time.Millisecond)
	time.Sleep(2 * time.Second)
	l.script("cut", "h1")
	waitActive(t, l, "h2", 5*time.Second)
	s := <-summary

	if got := l.clientNeighMAC(labVIP); got != hostMAC(2) {
		t.Fatalf("client's ARP cache: %s is at %q, want h2 %s", labVIP, got, hostMAC(2))
	}
	if !l.clientPing(labVIP) {
		t.Fatal("client cannot reach the VIP after the takeover")
	}
	// The cut holder must not keep the address: it has no carrier.
	fiptest.WaitFor(t, 2*time.Second, "h1 releases the VIP without carrier", func() bool { return !l.hostHasAddr("h1", labVIP+"/32") })
	if s.ByResponder["h1"] == 0 || s.ByResponder["h2"] == 0 {
		t.Fatalf("client answers by responder: %v (want both h1, then h2)", s.ByResponder)
	}
	if n := len(s.Changes); n == 0 || s.Changes[n-1].To != "h2" {
		t.Fatalf("responder changes %+v: the last must be to h2", s.Changes)
	}
	// A generous bound; the real figure is measured by lab/outage.sh.
	if s.LongestGapMs > 3000 {
		t.Errorf("client-observed outage %d ms", s.LongestGapMs)
	}
	t.Logf("client-observed outage on link cut: %d ms (sent %d, answered %d)", s.LongestGapMs, s.Sent, s.Answered)
	if !strings.Contains(h2.logs(), "previous_holder="+hostMAC(1)) {
		t.Errorf("the claim does not name the previous holder:\n%s", h2.logs())
	}
}

// TestLabSIGTERMHandover: SIGTERM removes the address, exits 0, and the
// standby takes over at once (release notice), not after its dead time.
func TestLabSIGTERMHandover(t *testing.T) {
	t.Parallel()
	l := newLab(t, 2)
	l.startEchoServers()
	h1, h2 := startPair(t, l, nil, nil)

	summary := l.udpClient(4*time.Second, 10*time.Millisecond)
	time.Sleep(1500 * time.Millisecond)
	h1.signal(syscall.SIGTERM)
	code, err := h1.Wait(5 * time.Second)
	if err != nil || code != 0 {
		t.Fatalf("h1 after SIGTERM: exit %d, %v", code, err)
	}
	if l.hostHasAddr("h1", labVIP+"/32") {
		t.Fatal("h1 exited and left the VIP configured")
	}
	waitActive(t, l, "h2", 2*time.Second)
	s := <-summary
	if got := l.clientNeighMAC(labVIP); got != hostMAC(2) {
		t.Fatalf("client's ARP cache: %q, want h2 %s", got, hostMAC(2))
	}
	if !strings.Contains(h2.logs(), "holder released the VIP") {
		t.Errorf("h2 did not act on the release notice:\n%s", h2.logs())
	}
	if s.LongestGapMs > 1000 {
		t.Errorf("graceful handover outage %d ms", s.LongestGapMs)
	}
	t.Logf("client-observed outage on SIGTERM handover: %d ms", s.LongestGapMs)
}

// TestLabAddressRemovedBehindOurBack: `ip addr del` on the holder; the VIP
// is back within a second (netlink subscription, not polling).
func TestLabAddressRemovedBehindOurBack(t *testing.T) {
	t.Parallel()
	l := newLab(t, 1)
	d := l.startDaemon("h1", "-i", "eth0", labVIP)
	waitActive(t, l, "h1", 5*time.Second)
	l.mustRun("h1", "ip", "addr", "del", labVIP+"/32", "dev", "eth0")
	waitActive(t, l, "h1", time.Second)
	if !strings.Contains(d.logs(), "removed behind floatip's back") {
		t.Errorf("no log line about the removal:\n%s", d.logs())
	}
}

// TestLabSeveralVIPs: each VIP of one interface is handled independently.
func TestLabSeveralVIPs(t *testing.T) {
	t.Parallel()
	l := newLab(t, 2)
	l.startDaemon("h1", "-i", "eth0", labVIP)
	waitActive(t, l, "h1", 5*time.Second)
	// h2 holds .51 and .52; .50 is h1's and stays there.
	h2 := l.startDaemon("h2", "-i", "eth0", labVIP, "192.0.2.51", "192.0.2.52")
	for _, vip := range []string{"192.0.2.51", "192.0.2.52"} {
		fiptest.WaitFor(t, 5*time.Second, "h2 holds "+vip, func() bool { return l.hostHasAddr("h2", vip+"/32") })
		if !l.clientPing(vip) || l.clientNeighMAC(vip) != hostMAC(2) {
			t.Errorf("client does not reach %s at h2", vip)
		}
	}
	time.Sleep(time.Second)
	if l.hostHasAddr("h2", labVIP+"/32") {
		t.Errorf("h2 took %s although h1 holds it:\n%s", labVIP, h2.logs())
	}
}

// TestLabInterfaceWithoutIPv4 works where arp.Dial would refuse.
func TestLabInterfaceWithoutIPv4(t *testing.T) {
	t.Parallel()
	l := newLab(t, 1)
	l.mustRun("h1", "ip", "-4", "addr", "flush", "dev", "eth0")
	l.startDaemon("h1", "-i", "eth0", labVIP)
	waitActive(t, l, "h1", 5*time.Second)
	out, err := l.run("c", l.binary(), "probe", "-i", "eth0", labVIP)
	if err == nil || strings.TrimSpace(out) != hostMAC(1) {
		t.Fatalf("probe from the client: %q, %v (want h1's MAC and exit 1)", out, err)
	}
}

// TestLabLateInterface: a standby whose interface appears after it started
// waits for it (no crash loop), then joins.
func TestLabLateInterface(t *testing.T) {
	t.Parallel()
	l := newLab(t, 1)
	l.startDaemon("h1", "-i", "eth0", labVIP)
	waitActive(t, l, "h1", 5*time.Second)
	// h2's namespace exists, its interface does not yet.
	if out, err := exec.Command("ip", "netns", "add", l.nsName("h2")).CombinedOutput(); err != nil {
		t.Fatalf("ip netns add: %v %s", err, out)
	}
	h2 := l.startDaemon("h2", "-i", "eth0", labVIP)
	fiptest.WaitFor(t, 5*time.Second, "h2 says it waits for eth0", func() bool { return strings.Contains(h2.logs(), "waiting for interface") })
	time.Sleep(time.Second)
	if h2.exited() {
		t.Fatalf("h2 exited while waiting for its interface:\n%s", h2.logs())
	}
	l.script("plug", "2")
	waitStandby(t, h2, 5*time.Second)
	// Now h1 dies; the late standby takes over.
	l.script("cut", "h1")
	waitActive(t, l, "h2", 5*time.Second)
}

// TestLabProbeCommand: `floatip probe` against real neighbours.
func TestLabProbeCommand(t *testing.T) {
	t.Parallel()
	l := newLab(t, 1)
	bin := l.binary()
	out, err := l.run("c", bin, "probe", "-i", "eth0", labVIP)
	if code := exitCodeOf(err); code != 0 || strings.TrimSpace(out) != "free" {
		t.Fatalf("probe of a free address: exit %d, %q", code, out)
	}
	out, err = l.run("c", bin, "probe", "-i", "eth0", "192.0.2.11")
	if code := exitCodeOf(err); code != 1 || strings.TrimSpace(out) != hostMAC(1) {
		t.Fatalf("probe of h1's address: exit %d, %q", code, out)
	}
	out, err = l.run("c", bin, "probe", "-i", "nosuch0", labVIP)
	if code := exitCodeOf(err); code != 2 || !strings.Contains(out, "nosuch0") {
		t.Fatalf("probe on a missing interface: exit %d, %q", code, out)
	}
	// The probe's sender IP is 0.0.0.0: h1 learned nothing about the client.
	if neigh := l.mustRun("h1", "ip", "neigh", "show", "192.0.2.100"); strings.Contains(neigh, "lladdr") {
		t.Errorf("the probe polluted h1's ARP cache: %s", neigh)
	}
}

// TestLabAnnounceCommand: `floatip announce` repoints a real neighbour's
// cache, refuses an address this host does not hold, and sends the same
// bytes as iputils arping.
func TestLabAnnounceCommand(t *testing.T) {
	t.Parallel()
	l := newLab(t, 2)
	bin := l.binary()
	const vip = "192.0.2.60"
	out, err := l.run("h2", bin, "announce", "-i", "eth0", "-c", "1", vip)
	if code := exitCodeOf(err); code != 2 || !strings.Contains(out, "not configured on eth0") {
		t.Fatalf("announce of an address not held: exit %d, %q", code, out)
	}
	// h1 has the address; the client talks to it and caches h1's MAC.
	l.mustRun("h1", "ip", "addr", "add", vip+"/32", "dev", "eth0")
	if !l.clientPing(vip) || l.clientNeighMAC(vip) != hostMAC(1) {
		t.Fatal("setup: client does not reach h1")
	}
	// The address moves to h2 by hand; one announcement repoints the client.
	l.mustRun("h1", "ip", "addr", "del", vip+"/32", "dev", "eth0")
	l.mustRun("h2", "ip", "addr", "add", vip+"/32", "dev", "eth0")
	l.mustRun("h2", bin, "announce", "-i", "eth0", "-c", "1", vip)
	fiptest.WaitFor(t, 2*time.Second, "client's cache points at h2 after the announcement", func() bool { return l.clientNeighMAC(vip) == hostMAC(2) })
	// And back with the reply form (arping -A). Linux ignores a second
	// update within its 1 s locktime: wait it out.
	time.Sleep(1200 * time.Millisecond)
	l.mustRun("h2", "ip", "addr", "del", vip+"/32", "dev", "eth0")
	l.mustRun("h1", "ip", "addr", "add", vip+"/32", "dev", "eth0")
	l.mustRun("h1", bin, "announce", "-i", "eth0", "-c", "1", "--reply", vip)
	fiptest.WaitFor(t, 2*time.Second, "client's cache points at h1 after the reply form", func() bool { return l.clientNeighMAC(vip) == hostMAC(1) })

	// Byte for byte: capture arping's and floatip's frames at the client.
	if out, _ := exec.Command("arping", "-V").CombinedOutput(); !strings.Contains(string(out), "iputils") {
		skipOrFail(t, "iputils arping not installed (lab/lab.sh deps installs it): byte comparison not possible")
	}
	for _, form := range []struct{ arping, floatip string }{{"-U", ""}, {"-A", "--reply"}} {
		arpingFrame := l.captureARP(func() { l.mustRun("h1", "arping", form.arping, "-c", "1", "-I", "eth0", vip) })
		args := []string{"announce", "-i", "eth0", "-c", "1", vip}
		if form.floatip != "" {
			args = append(args, form.floatip)
		}
		floatipFrame := l.captureARP(func() { l.mustRun("h1", append([]string{bin}, args...)...) })
		if arpingFrame != floatipFrame {
			t.Errorf("arping %s and floatip differ on the wire:\narping  %s\nfloatip %s", form.arping, arpingFrame, floatipFrame)
		}
	}
}

// TestLabRefusals: bad input on a real host changes nothing.
func TestLabRefusals(t *testing.T) {
	t.Parallel()
	l := newLab(t, 1)
	bin := l.binary()
	before := l.mustRun("h1", "ip", "-4", "addr", "show")
	out, err := l.run("h1", bin, "-i", "eth0", "192.0.2.11")
	if code := exitCodeOf(err); code != 2 || !strings.Contains(out, "this host's own address") {
		t.Errorf("VIP = own address: exit %d, %q", code, out)
	}
	out, err = l.run("h1", bin, "-i", "eth0", "192.0.2.255")
	if code := exitCodeOf(err); code != 2 || !strings.Contains(out, "broadcast address of 192.0.2.0/24") {
		t.Errorf("VIP = subnet broadcast: exit %d, %q", code, out)
	}
	// Without CAP_NET_ADMIN and CAP_NET_RAW (even as root).
	out, err = l.run("h1", "setpriv", "--bounding-set", "-net_admin,-net_raw", "--inh-caps", "-net_admin,-net_raw", bin, "-i", "eth0", labVIP)
	if code := exitCodeOf(err); code != 2 || !strings.Contains(out, "CAP_NET_ADMIN") || !strings.Contains(out, "CAP_NET_RAW") {
		t.Errorf("without capabilities: exit %d, %q", code, out)
	}
	if strings.Count(strings.TrimSpace(out), "\n") != 0 {
		t.Errorf("more than one line on stderr: %q", out)
	}
	if after := l.mustRun("h1", "ip", "-4", "addr", "show"); after != before {
		t.Errorf("refused runs changed the host:\nbefore %s\nafter %s", before, after)
	}
}

func exitCodeOf(err error) int {
	if err == nil {
		return 0
	}
	if ee, ok := err.(*exec.ExitError); ok {
		return ee.ExitCode()
	}
	return -1
}
