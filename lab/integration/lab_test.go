package integration

// Integration tests: the built binary in network namespaces, real kernels,
// real ARP. Each test builds its own lab (fiptest.NewLab) and
// asserts what a user sees from the client namespace.

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"floatip/internal/fiptest"
)

const labVIP = "192.0.2.50"

// waitActive waits until host holds the VIP.
func waitActive(t *testing.T, l *fiptest.Lab, host string, within time.Duration) {
	t.Helper()
	fiptest.WaitFor(t, within, host+" holds "+labVIP, func() bool { return l.HostHasAddr(host, labVIP+"/32") })
}

// startPair starts the usual two-host group: h1 (priority 200) takes the
// VIP, then h2 (default priority) joins as its standby. Extra flags for
// each go in h1Args and h2Args.
func startPair(t *testing.T, l *fiptest.Lab, h1Args, h2Args []string) (h1, h2 *fiptest.Process) {
	t.Helper()
	h1 = l.StartDaemon("h1", append([]string{"-i", "eth0", "--priority", "200", labVIP}, h1Args...)...)
	waitActive(t, l, "h1", 5*time.Second)
	h2 = l.StartDaemon("h2", append([]string{"-i", "eth0", labVIP}, h2Args...)...)
	waitStandby(t, h2, 5*time.Second)
	return h1, h2
}

// waitStandby waits until the daemon logged that it sees the holder.
func waitStandby(t *testing.T, d *fiptest.Process, within time.Duration) {
	t.Helper()
	fiptest.WaitFor(t, within, "standby sees the holder", func() bool { return strings.Contains(d.Logs(), "VIP is held") })
}

func TestLabTakeoverOnEmptyNetwork(t *testing.T) {
	t.Parallel()
	l := fiptest.NewLab(t, 1)
	d := l.StartDaemon("h1", "-i", "eth0", labVIP)
	waitActive(t, l, "h1", 5*time.Second)
	if !l.ClientPing(labVIP) {
		t.Fatal("client cannot ping the VIP")
	}
	if got := l.ClientNeighMAC(labVIP); got != fiptest.HostMAC(1) {
		t.Fatalf("client's ARP cache: %s is at %q, want h1 %s", labVIP, got, fiptest.HostMAC(1))
	}
	if !strings.Contains(d.Logs(), "claimed VIP") {
		t.Errorf("no 'claimed VIP' log line:\n%s", d.Logs())
	}
	// The address carries the label, so `ip addr` shows who put it there.
	if out := l.MustRun("h1", "ip", "-4", "addr", "show", "dev", "eth0"); !strings.Contains(out, "eth0:fip") {
		t.Errorf("VIP without the eth0:fip label:\n%s", out)
	}
}

// TestLabLinkCutFailover: the holder's link is cut; the standby takes over
// and the client keeps being answered, now by the new holder.
func TestLabLinkCutFailover(t *testing.T) {
	t.Parallel()
	l := fiptest.NewLab(t, 2)
	l.StartEchoServers()
	_, h2 := startPair(t, l, nil, nil)

	summary := l.UDPClient(6*time.Second, 10*time.Millisecond)
	time.Sleep(2 * time.Second)
	l.Script("cut", "h1")
	waitActive(t, l, "h2", 5*time.Second)
	s := <-summary

	if got := l.ClientNeighMAC(labVIP); got != fiptest.HostMAC(2) {
		t.Fatalf("client's ARP cache: %s is at %q, want h2 %s", labVIP, got, fiptest.HostMAC(2))
	}
	if !l.ClientPing(labVIP) {
		t.Fatal("client cannot reach the VIP after the takeover")
	}
	// The cut holder must not keep the address: it has no carrier.
	fiptest.WaitFor(t, 2*time.Second, "h1 releases the VIP without carrier", func() bool { return !l.HostHasAddr("h1", labVIP+"/32") })
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
	if !strings.Contains(h2.Logs(), "previous_holder="+fiptest.HostMAC(1)) {
		t.Errorf("the claim does not name the previous holder:\n%s", h2.Logs())
	}
}

// TestLabSIGTERMHandover: SIGTERM removes the address, exits 0, and the
// standby takes over at once (release notice), not after its dead time.
func TestLabSIGTERMHandover(t *testing.T) {
	t.Parallel()
	l := fiptest.NewLab(t, 2)
	l.StartEchoServers()
	h1, h2 := startPair(t, l, nil, nil)

	summary := l.UDPClient(4*time.Second, 10*time.Millisecond)
	time.Sleep(1500 * time.Millisecond)
	h1.Signal(syscall.SIGTERM)
	code, err := h1.Wait(5 * time.Second)
	if err != nil || code != 0 {
		t.Fatalf("h1 after SIGTERM: exit %d, %v", code, err)
	}
	if l.HostHasAddr("h1", labVIP+"/32") {
		t.Fatal("h1 exited and left the VIP configured")
	}
	waitActive(t, l, "h2", 2*time.Second)
	s := <-summary
	if got := l.ClientNeighMAC(labVIP); got != fiptest.HostMAC(2) {
		t.Fatalf("client's ARP cache: %q, want h2 %s", got, fiptest.HostMAC(2))
	}
	if !strings.Contains(h2.Logs(), "holder released the VIP") {
		t.Errorf("h2 did not act on the release notice:\n%s", h2.Logs())
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
	l := fiptest.NewLab(t, 1)
	d := l.StartDaemon("h1", "-i", "eth0", labVIP)
	waitActive(t, l, "h1", 5*time.Second)
	l.MustRun("h1", "ip", "addr", "del", labVIP+"/32", "dev", "eth0")
	waitActive(t, l, "h1", time.Second)
	if !strings.Contains(d.Logs(), "removed behind floatip's back") {
		t.Errorf("no log line about the removal:\n%s", d.Logs())
	}
}

// TestLabSeveralVIPs: each VIP of one interface is handled independently.
func TestLabSeveralVIPs(t *testing.T) {
	t.Parallel()
	l := fiptest.NewLab(t, 2)
	l.StartDaemon("h1", "-i", "eth0", labVIP)
	waitActive(t, l, "h1", 5*time.Second)
	// h2 holds .51 and .52; .50 is h1's and stays there.
	h2 := l.StartDaemon("h2", "-i", "eth0", labVIP, "192.0.2.51", "192.0.2.52")
	for _, vip := range []string{"192.0.2.51", "192.0.2.52"} {
		fiptest.WaitFor(t, 5*time.Second, "h2 holds "+vip, func() bool { return l.HostHasAddr("h2", vip+"/32") })
		if !l.ClientPing(vip) || l.ClientNeighMAC(vip) != fiptest.HostMAC(2) {
			t.Errorf("client does not reach %s at h2", vip)
		}
	}
	time.Sleep(time.Second)
	if l.HostHasAddr("h2", labVIP+"/32") {
		t.Errorf("h2 took %s although h1 holds it:\n%s", labVIP, h2.Logs())
	}
}

// TestLabInterfaceWithoutIPv4 works where arp.Dial would refuse.
func TestLabInterfaceWithoutIPv4(t *testing.T) {
	t.Parallel()
	l := fiptest.NewLab(t, 1)
	l.MustRun("h1", "ip", "-4", "addr", "flush", "dev", "eth0")
	l.StartDaemon("h1", "-i", "eth0", labVIP)
	waitActive(t, l, "h1", 5*time.Second)
	out, err := l.Run("c", l.Binary(), "probe", "-i", "eth0", labVIP)
	if err == nil || strings.TrimSpace(out) != fiptest.HostMAC(1) {
		t.Fatalf("probe from the client: %q, %v (want h1's MAC and exit 1)", out, err)
	}
}

// TestLabLateInterface: a standby whose interface appears after it started
// waits for it (no crash loop), then joins.
func TestLabLateInterface(t *testing.T) {
	t.Parallel()
	l := fiptest.NewLab(t, 1)
	l.StartDaemon("h1", "-i", "eth0", labVIP)
	waitActive(t, l, "h1", 5*time.Second)
	// h2's namespace exists, its interface does not yet.
	if out, err := exec.Command("ip", "netns", "add", l.NSName("h2")).CombinedOutput(); err != nil {
		t.Fatalf("ip netns add: %v %s", err, out)
	}
	h2 := l.StartDaemon("h2", "-i", "eth0", labVIP)
	fiptest.WaitFor(t, 5*time.Second, "h2 says it waits for eth0", func() bool { return strings.Contains(h2.Logs(), "waiting for interface") })
	time.Sleep(time.Second)
	if h2.Exited() {
		t.Fatalf("h2 exited while waiting for its interface:\n%s", h2.Logs())
	}
	l.Script("plug", "2")
	waitStandby(t, h2, 5*time.Second)
	// Now h1 dies; the late standby takes over.
	l.Script("cut", "h1")
	waitActive(t, l, "h2", 5*time.Second)
}

// TestLabProbeCommand: `floatip probe` against real neighbours.
func TestLabProbeCommand(t *testing.T) {
	t.Parallel()
	l := fiptest.NewLab(t, 1)
	bin := l.Binary()
	out, err := l.Run("c", bin, "probe", "-i", "eth0", labVIP)
	if code := exitCodeOf(err); code != 0 || strings.TrimSpace(out) != "free" {
		t.Fatalf("probe of a free address: exit %d, %q", code, out)
	}
	out, err = l.Run("c", bin, "probe", "-i", "eth0", "192.0.2.11")
	if code := exitCodeOf(err); code != 1 || strings.TrimSpace(out) != fiptest.HostMAC(1) {
		t.Fatalf("probe of h1's address: exit %d, %q", code, out)
	}
	out, err = l.Run("c", bin, "probe", "-i", "nosuch0", labVIP)
	if code := exitCodeOf(err); code != 2 || !strings.Contains(out, "nosuch0") {
		t.Fatalf("probe on a missing interface: exit %d, %q", code, out)
	}
	// The probe's sender IP is 0.0.0.0: h1 learned nothing about the client.
	if neigh := l.MustRun("h1", "ip", "neigh", "show", "192.0.2.100"); strings.Contains(neigh, "lladdr") {
		t.Errorf("the probe polluted h1's ARP cache: %s", neigh)
	}
}

// TestLabAnnounceCommand: `floatip announce` repoints a real neighbour's
// cache, refuses an address this host does not hold, and sends the same
// bytes as iputils arping.
func TestLabAnnounceCommand(t *testing.T) {
	t.Parallel()
	l := fiptest.NewLab(t, 2)
	bin := l.Binary()
	const vip = "192.0.2.60"
	out, err := l.Run("h2", bin, "announce", "-i", "eth0", "-c", "1", vip)
	if code := exitCodeOf(err); code != 2 || !strings.Contains(out, "not configured on eth0") {
		t.Fatalf("announce of an address not held: exit %d, %q", code, out)
	}
	// h1 has the address; the client talks to it and caches h1's MAC.
	l.MustRun("h1", "ip", "addr", "add", vip+"/32", "dev", "eth0")
	if !l.ClientPing(vip) || l.ClientNeighMAC(vip) != fiptest.HostMAC(1) {
		t.Fatal("setup: client does not reach h1")
	}
	// The address moves to h2 by hand; one announcement repoints the client.
	l.MustRun("h1", "ip", "addr", "del", vip+"/32", "dev", "eth0")
	l.MustRun("h2", "ip", "addr", "add", vip+"/32", "dev", "eth0")
	l.MustRun("h2", bin, "announce", "-i", "eth0", "-c", "1", vip)
	fiptest.WaitFor(t, 2*time.Second, "client's cache points at h2 after the announcement", func() bool { return l.ClientNeighMAC(vip) == fiptest.HostMAC(2) })
	// And back with the reply form (arping -A). Linux ignores a second
	// update within its 1 s locktime: wait it out.
	time.Sleep(1200 * time.Millisecond)
	l.MustRun("h2", "ip", "addr", "del", vip+"/32", "dev", "eth0")
	l.MustRun("h1", "ip", "addr", "add", vip+"/32", "dev", "eth0")
	l.MustRun("h1", bin, "announce", "-i", "eth0", "-c", "1", "--reply", vip)
	fiptest.WaitFor(t, 2*time.Second, "client's cache points at h1 after the reply form", func() bool { return l.ClientNeighMAC(vip) == fiptest.HostMAC(1) })

	// Byte for byte: capture arping's and floatip's frames at the client.
	if out, _ := exec.Command("arping", "-V").CombinedOutput(); !strings.Contains(string(out), "iputils") {
		fiptest.SkipOrFail(t, "iputils arping not installed (lab/lab.sh deps installs it): byte comparison not possible")
	}
	for _, form := range []struct{ arping, floatip string }{{"-U", ""}, {"-A", "--reply"}} {
		arpingFrame := l.CaptureARP(func() { l.MustRun("h1", "arping", form.arping, "-c", "1", "-I", "eth0", vip) })
		args := []string{"announce", "-i", "eth0", "-c", "1", vip}
		if form.floatip != "" {
			args = append(args, form.floatip)
		}
		floatipFrame := l.CaptureARP(func() { l.MustRun("h1", append([]string{bin}, args...)...) })
		if arpingFrame != floatipFrame {
			t.Errorf("arping %s and floatip differ on the wire:\narping  %s\nfloatip %s", form.arping, arpingFrame, floatipFrame)
		}
	}
}

// TestLabRefusals: bad input on a real host changes nothing.
func TestLabRefusals(t *testing.T) {
	t.Parallel()
	l := fiptest.NewLab(t, 1)
	bin := l.Binary()
	before := l.MustRun("h1", "ip", "-4", "addr", "show")
	out, err := l.Run("h1", bin, "-i", "eth0", "192.0.2.11")
	if code := exitCodeOf(err); code != 2 || !strings.Contains(out, "this host's own address") {
		t.Errorf("VIP = own address: exit %d, %q", code, out)
	}
	out, err = l.Run("h1", bin, "-i", "eth0", "192.0.2.255")
	if code := exitCodeOf(err); code != 2 || !strings.Contains(out, "broadcast address of 192.0.2.0/24") {
		t.Errorf("VIP = subnet broadcast: exit %d, %q", code, out)
	}
	// Without CAP_NET_ADMIN and CAP_NET_RAW (even as root).
	out, err = l.Run("h1", "setpriv", "--bounding-set", "-net_admin,-net_raw", "--inh-caps", "-net_admin,-net_raw", bin, "-i", "eth0", labVIP)
	if code := exitCodeOf(err); code != 2 || !strings.Contains(out, "CAP_NET_ADMIN") || !strings.Contains(out, "CAP_NET_RAW") {
		t.Errorf("without capabilities: exit %d, %q", code, out)
	}
	if strings.Count(strings.TrimSpace(out), "\n") != 0 {
		t.Errorf("more than one line on stderr: %q", out)
	}
	if after := l.MustRun("h1", "ip", "-4", "addr", "show"); after != before {
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

func TestHostMAC(t *testing.T) {
	for i, want := range map[int]string{1: "02:00:00:00:00:01", 10: "02:00:00:00:00:0a", 60: "02:00:00:00:00:3c"} {
		if got := fiptest.HostMAC(i); got != want {
			t.Errorf("fiptest.HostMAC(%d) = %s, want %s", i, got, want)
		}
	}
}

func pingLossPercent(t *testing.T, out string) float64 {
	t.Helper()
	m := regexp.MustCompile(`([0-9.]+)% packet loss`).FindStringSubmatch(out)
	if m == nil {
		t.Fatalf("no packet loss figure in ping output:\n%s", out)
	}
	v, _ := strconv.ParseFloat(m[1], 64)
	return v
}

func TestLabSmoke(t *testing.T) {
	t.Parallel()
	l := fiptest.NewLab(t, 2)

	// Addresses, MACs and sysctls are as lab.sh documents them.
	for i := 1; i <= 2; i++ {
		h := fmt.Sprintf("h%d", i)
		if out := l.MustRun(h, "ip", "-o", "link", "show", "dev", "eth0"); !strings.Contains(out, fiptest.HostMAC(i)) {
			t.Errorf("%s eth0 lacks MAC %s:\n%s", h, fiptest.HostMAC(i), out)
		}
		if !l.HostHasAddr(h, fiptest.HostIP(i)+"/24") {
			t.Errorf("%s lacks %s/24", h, fiptest.HostIP(i))
		}
		if l.HostHasAddr(h, fiptest.DefaultVIP) {
			t.Errorf("%s holds the VIP before any daemon ran", h)
		}
		if v := strings.TrimSpace(l.MustRun(h, "cat", "/proc/sys/net/ipv4/ip_nonlocal_bind")); v != "1" {
			t.Errorf("%s ip_nonlocal_bind = %s, want 1", h, v)
		}
	}
	if out := l.MustRun("c", "ip", "-o", "link", "show", "dev", "eth0"); !strings.Contains(out, fiptest.ClientMAC) {
		t.Errorf("client eth0 lacks MAC %s:\n%s", fiptest.ClientMAC, out)
	}
	if !l.HostHasAddr("c", fiptest.ClientIP+"/24") {
		t.Errorf("client lacks %s/24", fiptest.ClientIP)
	}

	// The LAN works.
	for i := 1; i <= 2; i++ {
		if !l.ClientPing(fiptest.HostIP(i)) {
			t.Fatalf("client cannot ping h%d (%s)", i, fiptest.HostIP(i))
		}
	}
	if got := l.ClientNeighMAC(fiptest.HostIP(1)); got != fiptest.HostMAC(1) {
		t.Errorf("client's ARP entry for %s = %q, want %s", fiptest.HostIP(1), got, fiptest.HostMAC(1))
	}
	if got := l.ClientNeighMAC(fiptest.DefaultVIP); got != "" {
		t.Errorf("client has an ARP entry %q for the unused VIP", got)
	}

	// loss 100 cuts h1 off both ways, keeps h2, and loss 0 restores it.
	l.Script("loss", "h1", "100")
	rules := l.MustRun("br", "nft", "list", "ruleset")
	if !strings.Contains(rules, `hook ingress device "h1"`) ||
		!(strings.Contains(rules, `hook egress device "h1"`) || strings.Contains(rules, `oifname "h1"`)) {
		t.Errorf("loss h1 100 did not install rules in both directions:\n%s", rules)
	}
	if l.ClientPing(fiptest.HostIP(1)) {
		t.Errorf("client can ping h1 under 100%% loss")
	}
	if _, err := l.Run("h1", "ping", "-n", "-q", "-c", "1", "-W", "1", fiptest.ClientIP); err == nil {
		t.Errorf("h1 can ping the client under 100%% loss")
	}
	if !l.ClientPing(fiptest.HostIP(2)) {
		t.Errorf("loss on h1 also cut h2")
	}
	l.Script("loss", "h1", "0")
	if rules := l.MustRun("br", "nft", "list", "ruleset"); strings.Contains(rules, "h1") {
		t.Errorf("loss h1 0 left rules behind:\n%s", rules)
	}
	fiptest.WaitFor(t, 5*time.Second, "h1 reachable again after loss h1 0", func() bool { return l.ClientPing(fiptest.HostIP(1)) })

	// Partial loss: 50% each way loses about 75% of ping round trips.
	l.Script("loss", "h2", "50")
	out, _ := l.Run("c", "ping", "-n", "-q", "-c", "100", "-i", "0.01", "-W", "1", fiptest.HostIP(2))
	if p := pingLossPercent(t, out); p < 40 || p > 98 {
		t.Errorf("loss h2 50: %.0f%% of pings lost, want about 75%%", p)
	}
	l.Script("loss", "h2", "0")
	fiptest.WaitFor(t, 5*time.Second, "h2 reachable after loss h2 0", func() bool { return l.ClientPing(fiptest.HostIP(2)) })

	// cut takes the carrier away, heal gives it back.
	l.Script("cut", "h1")
	fiptest.WaitFor(t, 5*time.Second, "h1 to see NO-CARRIER after cut", func() bool { return !l.LinkUp("h1") })
	if l.ClientPing(fiptest.HostIP(1)) {
		t.Errorf("client can ping h1 after cut")
	}
	l.Script("heal", "h1")
	fiptest.WaitFor(t, 5*time.Second, "h1 carrier after heal", func() bool { return l.LinkUp("h1") })
	fiptest.WaitFor(t, 5*time.Second, "h1 reachable after heal", func() bool { return l.ClientPing(fiptest.HostIP(1)) })

	// isolate drops everything but keeps the carrier.
	l.Script("isolate", "h2")
	if !l.LinkUp("h2") {
		t.Errorf("isolate h2 took the carrier away")
	}
	if l.ClientPing(fiptest.HostIP(2)) {
		t.Errorf("client can ping isolated h2")
	}
	l.Script("unisolate", "h2")
	fiptest.WaitFor(t, 5*time.Second, "h2 reachable after unisolate", func() bool { return l.ClientPing(fiptest.HostIP(2)) })

	// unplug keeps the namespace; plug brings the host back as it was.
	l.Script("unplug", "2")
	if out, err := l.Run("h2", "ip", "link", "show", "dev", "eth0"); err == nil {
		t.Errorf("h2 still has eth0 after unplug:\n%s", out)
	}
	l.Script("plug", "2")
	if !l.HostHasAddr("h2", fiptest.HostIP(2)+"/24") {
		t.Errorf("h2 lacks its address after plug")
	}
	fiptest.WaitFor(t, 5*time.Second, "h2 reachable after plug", func() bool { return l.ClientPing(fiptest.HostIP(2)) })

	// plug into a namespace a test created empty (to start a daemon first).
	if out, err := exec.Command("ip", "netns", "add", l.NSName("h3")).CombinedOutput(); err != nil {
		t.Fatalf("ip netns add: %v\n%s", err, out)
	}
	l.Script("plug", "3")
	if out := l.MustRun("h3", "ip", "-o", "link", "show", "dev", "eth0"); !strings.Contains(out, fiptest.HostMAC(3)) {
		t.Errorf("h3 eth0 lacks MAC %s:\n%s", fiptest.HostMAC(3), out)
	}
	fiptest.WaitFor(t, 5*time.Second, "h3 reachable after plug", func() bool { return l.ClientPing(fiptest.HostIP(3)) })
	if got := l.ClientNeighMAC(fiptest.HostIP(3)); got != fiptest.HostMAC(3) {
		t.Errorf("client's ARP entry for h3 = %q, want %s", got, fiptest.HostMAC(3))
	}

	// Teardown leaves nothing, even a process a test forgot inside the lab.
	var subPrefix string
	var stray *exec.Cmd
	t.Run("teardown", func(t *testing.T) {
		sub := fiptest.NewLab(t, 1)
		subPrefix = sub.Prefix
		stray = exec.Command("ip", "netns", "exec", sub.NSName("h1"), "sleep", "300")
		if err := stray.Start(); err != nil {
			t.Fatal(err)
		}
		// the subtest's cleanup (lab.sh down) runs when it returns
	})
	if subPrefix == "" {
		t.Fatal("the teardown sub-lab was not created")
	}
	if left := fiptest.Namespaces(subPrefix); len(left) > 0 {
		t.Errorf("namespaces left after teardown: %v", left)
	}
	if stray != nil {
		exited := make(chan error, 1)
		go func() { exited <- stray.Wait() }()
		select {
		case <-exited:
		case <-time.After(5 * time.Second):
			_ = stray.Process.Kill()
			t.Errorf("lab.sh down did not end a process running in the lab")
		}
	}
	if _, err := os.Stat(filepath.Join(os.TempDir(), subPrefix+".lab")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("lab state dir of %s still exists (%v)", subPrefix, err)
	}
}

// TestLabEcho checks the udpecho helpers with a VIP configured by hand.
func TestLabEcho(t *testing.T) {
	t.Parallel()
	l := fiptest.NewLab(t, 2)
	l.StartEchoServers() // bound to the VIP before anyone holds it
	l.MustRun("h1", "ip", "addr", "add", fiptest.DefaultVIP+"/32", "dev", "eth0")
	if !l.HostHasAddr("h1", fiptest.DefaultVIP+"/32") {
		t.Fatalf("h1 lacks the VIP after ip addr add")
	}
	s := <-l.UDPClient(time.Second, 10*time.Millisecond)
	if s.Err != nil {
		t.Fatalf("%v\n%s", s.Err, s.Stderr)
	}
	t.Logf("summary: %+v", s)
	if s.Sent < 90 || s.Answered < s.Sent*95/100 || s.ByResponder["h1"] != s.Answered || len(s.Changes) != 0 {
		t.Errorf("want nearly all %d requests answered by h1 alone: %+v", s.Sent, s)
	}
	if s.LongestGapMs > 200 {
		t.Errorf("longest gap %d ms on a quiet LAN", s.LongestGapMs)
	}
	if got := l.ClientNeighMAC(fiptest.DefaultVIP); got != fiptest.HostMAC(1) {
		t.Errorf("client's ARP entry for the VIP = %q, want h1's %s", got, fiptest.HostMAC(1))
	}
}
