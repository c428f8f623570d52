package integration

// Lab tests of IPv6 VIPs (internal/wire/ndp.go): the same behaviour as IPv4, over
// neighbour discovery, with 2001:db8::/32 addresses only. The lab turns
// IPv6 off in its namespaces; enableIPv6 turns it on where a test needs it
// (lab.sh ipv6: no DAD, no router solicitations).

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"floatip/internal/fiptest"
)

const labVIP6 = "2001:db8::50"

// enableIPv6 turns IPv6 on for the client and hosts h1..hN.
func enableIPv6(l *fiptest.Lab) {
	l.T.Helper()
	args := []string{"ipv6", "c"}
	for i := 1; i <= l.Hosts; i++ {
		args = append(args, fmt.Sprintf("h%d", i))
	}
	l.Script(args...)
}

func waitActive6(t *testing.T, l *fiptest.Lab, host string, within time.Duration) {
	t.Helper()
	fiptest.WaitFor(t, within, host+" holds "+labVIP6, func() bool { return l.HostHasAddr(host, labVIP6+"/128") })
}

// holders6 lists the hosts h1..hn that have the IPv6 VIP configured.
func holders6(l *fiptest.Lab, n int) []string {
	var hs []string
	for i := 1; i <= n; i++ {
		if h := fmt.Sprintf("h%d", i); l.HostHasAddr(h, labVIP6+"/128") {
			hs = append(hs, h)
		}
	}
	return hs
}

// startPair6 is startPair for labVIP6 (plus extra VIPs, e.g. labVIP for a
// mixed invocation), with echo servers on [labVIP6]:7007.
func startPair6(t *testing.T, l *fiptest.Lab, extra ...string) (h1, h2 *fiptest.Process) {
	t.Helper()
	enableIPv6(l)
	for _, h := range []string{"h1", "h2"} {
		l.StartEchoServer(h, fmt.Sprintf("[%s]:%d", labVIP6, fiptest.EchoPort))
	}
	h1 = l.StartDaemon("h1", append([]string{"-i", "eth0", "--priority", "200", labVIP6}, extra...)...)
	waitActive6(t, l, "h1", 5*time.Second)
	h2 = l.StartDaemon("h2", append([]string{"-i", "eth0", labVIP6}, extra...)...)
	waitStandby(t, h2, 5*time.Second)
	return h1, h2
}

func udpClient6(l *fiptest.Lab, duration, every time.Duration) <-chan fiptest.UDPSummary {
	l.T.Helper()
	return l.UDPClientTo(fmt.Sprintf("[%s]:%d", labVIP6, fiptest.EchoPort), duration, every)
}

// TestLabIPv6LinkCutFailover: the holder's link is cut; the standby takes
// the IPv6 VIP over, its NAs re-point the client, whose requests are now
// answered by the new holder.
func TestLabIPv6LinkCutFailover(t *testing.T) {
	t.Parallel()
	l := fiptest.NewLab(t, 2)
	h1, h2 := startPair6(t, l)
	if !l.ClientPing(labVIP6) || l.ClientNeighMAC(labVIP6) != fiptest.HostMAC(1) {
		t.Fatalf("setup: the client does not reach %s at h1", labVIP6)
	}
	// Other tools see the holder too: ndisc6 (NS from the client's address)
	// and floatip probe (a DAD NS from ::) name h1.
	tools := [][]string{{l.Binary(), "probe", "-i", "eth0", labVIP6}}
	if _, err := exec.LookPath("ndisc6"); err == nil { // required by TestLabIPv6ProbeAndAnnounce
		tools = append(tools, []string{"ndisc6", "-q", "-1", "-r", "3", "-w", "500", labVIP6, "eth0"})
	}
	for _, argv := range tools {
		if out, _ := l.Run("c", argv...); strings.TrimSpace(out) != fiptest.HostMAC(1) {
			t.Errorf("%s: %q, want h1 %s", argv[0], out, fiptest.HostMAC(1))
		}
	}
	summary := udpClient6(l, 6*time.Second, 10*time.Millisecond)
	time.Sleep(2 * time.Second)
	l.Script("cut", "h1")
	waitActive6(t, l, "h2", 5*time.Second)
	s := <-summary
	if s.Err != nil {
		t.Fatal(s.Err)
	}
	if got := l.ClientNeighMAC(labVIP6); got != fiptest.HostMAC(2) {
		t.Fatalf("client's neighbour cache: %s is at %q, want h2 %s", labVIP6, got, fiptest.HostMAC(2))
	}
	fiptest.WaitFor(t, 2*time.Second, "h1 releases the VIP without carrier", func() bool { return !l.HostHasAddr("h1", labVIP6+"/128") })
	if s.ByResponder["h1"] == 0 || s.ByResponder["h2"] == 0 || s.LastResponder != "h2" {
		t.Fatalf("client answers by responder: %v, last %q (want h1, then h2)", s.ByResponder, s.LastResponder)
	}
	if s.LongestGapMs > 3000 {
		t.Errorf("client-observed outage %d ms", s.LongestGapMs)
	}
	if !strings.Contains(h2.Logs(), "previous_holder="+fiptest.HostMAC(1)) {
		t.Errorf("the claim does not name the previous holder:\n%s", h2.Logs())
	}
	// The kernel's DAD would have marked the address tentative, then
	// (with the old holder still answering) dadfailed: floatip adds it NODAD.
	if out := l.MustRun("h2", "ip", "-6", "addr", "show", "dev", "eth0"); !strings.Contains(out, labVIP6+"/128 scope global nodad") {
		t.Errorf("the VIP is not a /128 without DAD:\n%s", out)
	}
	t.Logf("client-observed outage on link cut (IPv6): %d ms (sent %d, answered %d)", s.LongestGapMs, s.Sent, s.Answered)
	// The link comes back: h1 reopens its sockets and is h2's standby.
	l.Script("heal", "h1")
	fiptest.WaitFor(t, 5*time.Second, "h1 sees h2 holding the VIP after the heal", func() bool {
		return strings.Contains(h1.Logs(), "VIP is held") && strings.Contains(h1.Logs(), "holder="+fiptest.HostMAC(2))
	})
	if hs := holders6(l, 2); len(hs) != 1 || hs[0] != "h2" {
		t.Errorf("holders after the heal: %v, want h2 only", hs)
	}
}

// TestLabIPv6SIGTERMHandover: SIGTERM removes the IPv6 VIP, and the release
// notice makes the standby claim at once.
func TestLabIPv6SIGTERMHandover(t *testing.T) {
	t.Parallel()
	l := fiptest.NewLab(t, 2)
	h1, h2 := startPair6(t, l)
	summary := udpClient6(l, 4*time.Second, 10*time.Millisecond)
	time.Sleep(1500 * time.Millisecond)
	h1.Signal(syscall.SIGTERM)
	if code, err := h1.Wait(5 * time.Second); err != nil || code != 0 {
		t.Fatalf("h1 after SIGTERM: exit %d, %v", code, err)
	}
	if l.HostHasAddr("h1", labVIP6+"/128") {
		t.Fatal("h1 exited and left the VIP configured")
	}
	waitActive6(t, l, "h2", 2*time.Second)
	s := <-summary
	if s.Err != nil {
		t.Fatal(s.Err)
	}
	if got := l.ClientNeighMAC(labVIP6); got != fiptest.HostMAC(2) {
		t.Fatalf("client's neighbour cache: %q, want h2 %s", got, fiptest.HostMAC(2))
	}
	if !strings.Contains(h2.Logs(), "holder released the VIP") {
		t.Errorf("h2 did not act on the release notice:\n%s", h2.Logs())
	}
	if s.LongestGapMs > 1000 {
		t.Errorf("graceful handover outage %d ms", s.LongestGapMs)
	}
	t.Logf("client-observed outage on SIGTERM handover (IPv6): %d ms", s.LongestGapMs)
}

// TestLabIPv6SplitBrainHeals: the holder is isolated (carrier up), the
// standby claims; when the partition heals, the better node keeps the VIP,
// the other removes it only after the winner re-pointed the client, and
// the client's cache points at the winner.
func TestLabIPv6SplitBrainHeals(t *testing.T) {
	t.Parallel()
	l := fiptest.NewLab(t, 2)
	_, h2 := startPair6(t, l)
	l.Script("isolate", "h1")
	waitActive6(t, l, "h2", 5*time.Second)
	if !l.HostHasAddr("h1", labVIP6+"/128") {
		t.Fatal("setup: the isolated holder gave the VIP up; no split brain to heal")
	}
	summary := udpClient6(l, 4*time.Second, 10*time.Millisecond)
	time.Sleep(time.Second)
	healed := time.Now()
	l.Script("unisolate", "h1")
	fiptest.WaitFor(t, 2*time.Second, "h1 as the only holder", func() bool {
		hs := holders6(l, 2)
		return len(hs) == 1 && hs[0] == "h1"
	})
	single := time.Since(healed)
	fiptest.WaitFor(t, 2*time.Second, "client's cache points at h1", func() bool { return l.ClientNeighMAC(labVIP6) == fiptest.HostMAC(1) })
	s := <-summary
	if s.Err != nil {
		t.Fatal(s.Err)
	}
	if s.LastResponder != "h1" {
		t.Errorf("client's last answer from %q, want h1", s.LastResponder)
	}
	if s.LongestGapMs > 200 {
		t.Errorf("client saw a %d ms outage across the heal (at +%d ms)", s.LongestGapMs, s.LongestGapStartMs)
	}
	if !strings.Contains(h2.Logs(), "split brain resolved") {
		t.Errorf("h2 did not resolve the split brain:\n%s", h2.Logs())
	}
	t.Logf("heal to a single holder: %v; client's longest gap across the heal: %d ms", single.Round(time.Millisecond), s.LongestGapMs)
}

// TestLabMixedIPv4IPv6: one invocation holds an IPv4 and an IPv6 VIP; both
// move together on a link cut, and the client reaches both at the new
// holder. A VIP removed behind floatip's back is re-added (IPv6 too).
func TestLabMixedIPv4IPv6(t *testing.T) {
	t.Parallel()
	l := fiptest.NewLab(t, 2)
	l.StartEchoServers() // IPv4, on fiptest.DefaultVIP
	h1, h2 := startPair6(t, l, labVIP)
	waitActive(t, l, "h1", 5*time.Second)
	for _, vip := range []string{labVIP, labVIP6} {
		if !l.ClientPing(vip) || l.ClientNeighMAC(vip) != fiptest.HostMAC(1) {
			t.Fatalf("setup: the client does not reach %s at h1", vip)
		}
	}
	l.MustRun("h1", "ip", "-6", "addr", "del", labVIP6+"/128", "dev", "eth0")
	waitActive6(t, l, "h1", time.Second)
	if !strings.Contains(h1.Logs(), "removed behind floatip's back") {
		t.Errorf("no log line about the removal:\n%s", h1.Logs())
	}
	s4 := l.UDPClient(5*time.Second, 10*time.Millisecond)
	s6 := udpClient6(l, 5*time.Second, 10*time.Millisecond)
	time.Sleep(1500 * time.Millisecond)
	l.Script("cut", "h1")
	waitActive(t, l, "h2", 5*time.Second)
	waitActive6(t, l, "h2", 5*time.Second)
	for name, ch := range map[string]<-chan fiptest.UDPSummary{"IPv4": s4, "IPv6": s6} {
		s := <-ch
		if s.Err != nil {
			t.Fatal(s.Err)
		}
		if s.LastResponder != "h2" || s.ByResponder["h1"] == 0 {
			t.Errorf("%s: answers by responder %v, last %q (want h1, then h2)", name, s.ByResponder, s.LastResponder)
		}
		t.Logf("%s: client-observed outage %d ms", name, s.LongestGapMs)
	}
	for _, vip := range []string{labVIP, labVIP6} {
		if got := l.ClientNeighMAC(vip); got != fiptest.HostMAC(2) {
			t.Errorf("client's cache: %s at %q, want h2", vip, got)
		}
	}
	if n := strings.Count(h2.Logs(), "claimed VIP"); n != 2 {
		t.Errorf("h2 logged %d claims, want 2:\n%s", n, h2.Logs())
	}
}

// TestLabIPv6ProbeAndAnnounce: `floatip probe` and `floatip announce` with
// IPv6 addresses, as drop-ins for ndisc6/arping-style use; the NA is byte
// for byte the kernel's own unsolicited NA (ndisc_notify).
func TestLabIPv6ProbeAndAnnounce(t *testing.T) {
	t.Parallel()
	l := fiptest.NewLab(t, 2)
	enableIPv6(l)
	bin := l.Binary()
	out, err := l.Run("c", bin, "probe", "-i", "eth0", labVIP6)
	if code := exitCodeOf(err); code != 0 || strings.TrimSpace(out) != "free" {
		t.Fatalf("probe of a free address: exit %d, %q", code, out)
	}
	out, err = l.Run("c", bin, "probe", "-i", "eth0", "2001:db8::11") // h1's own address
	if code := exitCodeOf(err); code != 1 || strings.TrimSpace(out) != fiptest.HostMAC(1) {
		t.Fatalf("probe of h1's address: exit %d, %q", code, out)
	}
	// ndisc6 (which asks from the client's own address) finds the same MAC.
	if _, err := exec.LookPath("ndisc6"); err != nil {
		fiptest.SkipOrFail(t, "ndisc6 not installed (lab/lab.sh deps installs it)")
	}
	if got := strings.TrimSpace(l.MustRun("c", "ndisc6", "-q", "-1", "-r", "3", "-w", "500", "2001:db8::11", "eth0")); got != fiptest.HostMAC(1) {
		t.Errorf("ndisc6 says 2001:db8::11 is at %q, want h1 %s", got, fiptest.HostMAC(1))
	}
	// The probe's source is ::, so h1 learned nothing about the client.
	if neigh := l.MustRun("h1", "ip", "-6", "neigh", "show", "2001:db8::100"); strings.Contains(neigh, "lladdr") {
		t.Errorf("the probe polluted h1's neighbour cache: %s", neigh)
	}
	const vip = "2001:db8::60"
	out, err = l.Run("h2", bin, "announce", "-i", "eth0", "-c", "1", vip)
	if code := exitCodeOf(err); code != 2 || !strings.Contains(out, "not configured on eth0") {
		t.Fatalf("announce of an address not held: exit %d, %q", code, out)
	}
	// The kernel's own unsolicited NA: sent after DAD when ndisc_notify is
	// set (lab.sh ipv6 turned DAD off; turn it on for this one address).
	for _, k := range []string{"accept_dad=1", "dad_transmits=1", "ndisc_notify=1"} {
		l.MustRun("h1", "sysctl", "-qw", "net.ipv6.conf.eth0."+k)
	}
	kernelNA := l.CaptureFrame("icmp6 and ip6[40] == 136 and ip6 src "+vip, func() {
		l.MustRun("h1", "ip", "-6", "addr", "add", vip+"/128", "dev", "eth0")
	})
	floatipNA := l.CaptureFrame("icmp6 and ip6[40] == 136 and ip6 src "+vip, func() {
		l.MustRun("h1", bin, "announce", "-i", "eth0", "-c", "1", vip)
	})
	if kernelNA != floatipNA {
		t.Errorf("the kernel's unsolicited NA and floatip's differ on the wire:\nkernel  %s\nfloatip %s", kernelNA, floatipNA)
	}
	// Ethernet to 33:33:00:00:00:01 from h1, IPv6, hop limit 255, type 136
	// with Override only (0x20), target link-layer option with h1's MAC.
	if !strings.HasPrefix(floatipNA, "333300000001"+"020000000001"+"86dd") || !strings.HasSuffix(floatipNA, "0201"+"020000000001") ||
		floatipNA[14*2+7*2:14*2+8*2] != "ff" || floatipNA[54*2:55*2] != "88" || floatipNA[58*2:59*2] != "20" {
		t.Errorf("unexpected NA: %s", floatipNA)
	}
	// The announcement re-points a neighbour: the address moves to h2 by hand.
	if !l.ClientPing(vip) || l.ClientNeighMAC(vip) != fiptest.HostMAC(1) {
		t.Fatal("setup: client does not reach h1")
	}
	l.MustRun("h1", "ip", "-6", "addr", "del", vip+"/128", "dev", "eth0")
	l.MustRun("h2", "ip", "-6", "addr", "add", vip+"/128", "dev", "eth0", "nodad")
	l.MustRun("h2", bin, "announce", "-i", "eth0", "-c", "1", vip)
	fiptest.WaitFor(t, 2*time.Second, "client's cache points at h2 after the announcement", func() bool { return l.ClientNeighMAC(vip) == fiptest.HostMAC(2) })
}

// TestLabIPv6ConnReset: releasing an IPv6 VIP resets its TCP connections
// (SOCK_DESTROY for IPv6, internal/system/connreset6.go), so an idle client learns at once
// and reconnects to the new holder.
func TestLabIPv6ConnReset(t *testing.T) {
	t.Parallel()
	l := fiptest.NewLab(t, 2)
	target := fmt.Sprintf("[%s]:%d", labVIP6, labTCPPort)
	h1, _ := startPair6(t, l)
	for _, h := range []string{"h1", "h2"} {
		d := l.StartProcess(h, "tcpidle", fiptest.BuildTCPIdle(t), "serve", "-listen", target, "-name", h)
		fiptest.WaitFor(t, 5*time.Second, h+"'s TCP server to listen", func() bool {
			if !d.Running() {
				t.Fatalf("TCP server on %s exited: %s", h, d.Logs())
			}
			return strings.Contains(d.Logs(), "serving on")
		})
	}
	client := l.StartProcess("c", "tcpidle", fiptest.BuildTCPIdle(t), "client", "-target", target, "-idle", "20s")
	if first := waitEvent(t, client, "connected", 5*time.Second)["responder"]; first != "h1" {
		t.Fatalf("the client's first request was answered by %q, want h1", first)
	}
	released := time.Now()
	h1.Signal(syscall.SIGTERM)
	ended := waitEvent(t, client, "read_ended", 5*time.Second)
	if ended["kind"] != "reset" {
		t.Fatalf("the idle client's read ended with %q (%s), want a reset", ended["kind"], ended["err"])
	}
	if after := eventTime(t, ended, "at_ms").Sub(released); after > time.Second {
		t.Errorf("the idle client learnt of the release %v after it, want within 1 s", after)
	}
	if again := waitEvent(t, client, "reconnected", 10*time.Second); again["responder"] != "h2" {
		t.Errorf("the client reconnected to %q, want h2", again["responder"])
	}
	if !strings.Contains(h1.Logs(), "connections=1") {
		t.Errorf("h1 did not log one reset connection:\n%s", h1.Logs())
	}
}

// TestLabIPv6IsolatedStandbyNeverClaims: with IPv6 VIPs only and no IPv4
// default route, the reference host is the IPv6 default route's gateway (a
// link-local router address, here the client's), asked with the same DAD
// probes; a standby cut off from everything does not claim.
func TestLabIPv6IsolatedStandbyNeverClaims(t *testing.T) {
	t.Parallel()
	l := fiptest.NewLab(t, 2)
	enableIPv6(l)
	const gw = "fe80::ff:fe00:64" // the client's link-local address (EUI-64 of 02:00:00:00:00:64)
	for _, h := range []string{"h1", "h2"} {
		l.MustRun(h, "ip", "-6", "route", "add", "default", "via", gw, "dev", "eth0")
		l.StartEchoServer(h, fmt.Sprintf("[%s]:%d", labVIP6, fiptest.EchoPort))
	}
	l.StartDaemon("h1", "-i", "eth0", labVIP6)
	waitActive6(t, l, "h1", 5*time.Second)
	h2 := l.StartDaemon("h2", "-i", "eth0", "--priority", "200", labVIP6)
	waitStandby(t, h2, 5*time.Second)
	summary := udpClient6(l, 6*time.Second, 10*time.Millisecond)
	time.Sleep(500 * time.Millisecond)
	l.Script("isolate", "h2")
	time.Sleep(3 * time.Second)
	l.Script("unisolate", "h2")
	s := <-summary
	if c := claims(h2); c != 0 {
		t.Fatalf("the isolated standby claimed the VIP %d times:\n%s", c, h2.Logs())
	}
	if !strings.Contains(h2.Logs(), "no reference host answers") || !strings.Contains(h2.Logs(), "reference="+gw) {
		t.Errorf("h2 did not say why it did not claim, or does not use the IPv6 default gateway:\n%s", h2.Logs())
	}
	if s.Err != nil || s.LongestGapMs > 200 || s.LastResponder != "h1" || len(s.Changes) != 0 {
		t.Errorf("client: longest gap %d ms, last answer %q, changes %v, err %v", s.LongestGapMs, s.LastResponder, s.Changes, s.Err)
	}
	if hs := holders6(l, 2); len(hs) != 1 || hs[0] != "h1" {
		t.Errorf("holders after the isolation: %v, want h1 only", hs)
	}
	// And it does answer: when the holder dies, h2 (reaching the gateway
	// again) takes over.
	l.Script("cut", "h1")
	waitActive6(t, l, "h2", 5*time.Second)
}

// TestLabIPv6AdoptsAfterKill: a daemon killed with -9 leaves its /128; the
// next run finds it, checks that nobody else holds it, and adopts it.
func TestLabIPv6AdoptsAfterKill(t *testing.T) {
	t.Parallel()
	l := fiptest.NewLab(t, 1)
	enableIPv6(l)
	d := l.StartDaemon("h1", "-i", "eth0", labVIP6)
	waitActive6(t, l, "h1", 5*time.Second)
	d.Signal(syscall.SIGKILL)
	if _, err := d.Wait(5 * time.Second); err != nil {
		t.Fatal(err)
	}
	if !l.HostHasAddr("h1", labVIP6+"/128") {
		t.Fatal("setup: the killed daemon's VIP is gone")
	}
	d = l.StartDaemon("h1", "-i", "eth0", labVIP6)
	fiptest.WaitFor(t, 5*time.Second, "the VIP adopted", func() bool { return strings.Contains(d.Logs(), "adopting the copy") })
	if !l.HostHasAddr("h1", labVIP6+"/128") || strings.Contains(d.Logs(), "claimed VIP") {
		t.Errorf("the VIP was not kept and adopted:\n%s", d.Logs())
	}
}

// TestLabIPv6Refusals: bad IPv6 input on a real host gets one clear line
// and changes nothing, also when IPv6 is off on the interface.
func TestLabIPv6Refusals(t *testing.T) {
	t.Parallel()
	l := fiptest.NewLab(t, 1)
	bin := l.Binary()
	show := func() string { return l.MustRun("h1", "ip", "addr", "show") }
	before := show()
	// The lab turns IPv6 off: an IPv6 VIP is refused at start, before the
	// IPv4 one of the same list is touched.
	out, err := l.Run("h1", bin, "-i", "eth0", labVIP, labVIP6)
	if code := exitCodeOf(err); code != 2 || !strings.Contains(out, "IPv6 is disabled") {
		t.Errorf("IPv6 VIP with IPv6 off: exit %d, %q", code, out)
	}
	if after := show(); after != before {
		t.Errorf("the refused run changed the host:\nbefore %s\nafter %s", before, after)
	}
	enableIPv6(l)
	before = show()
	for _, tc := range []struct{ args, want string }{
		{labVIP + " " + labVIP6 + " 2001:db8::5x", "is not an IP address"},
		{"fe80::50", "link-local"},
		{"ff05::50", "multicast"},
		{"::", "unspecified"},
		{"2001:db8::11", "this host's own address"},
	} {
		out, err := l.Run("h1", append([]string{bin, "-i", "eth0"}, strings.Fields(tc.args)...)...)
		if code := exitCodeOf(err); code != 2 || !strings.Contains(out, tc.want) || strings.Count(strings.TrimSpace(out), "\n") != 0 {
			t.Errorf("%s: exit %d, %q (want one line saying %q)", tc.args, code, out, tc.want)
		}
	}
	if after := show(); after != before {
		t.Errorf("refused runs changed the host:\nbefore %s\nafter %s", before, after)
	}
}

// TestLabIPv6OperatorFeatures: the health check, hooks and fencing work for
// an IPv6 VIP as for IPv4: h1's check fails, it hands the VIP over to h2
// (which fences nobody: the holder said it left), and h2's hook sees the
// IPv6 VIP; then h2 is cut, and h1, healthy again, fences h2 and claims.
func TestLabIPv6OperatorFeatures(t *testing.T) {
	t.Parallel()
	l := fiptest.NewLab(t, 2)
	dir := t.TempDir()
	ok, events, fenced := filepath.Join(dir, "h1.ok"), filepath.Join(dir, "events"), filepath.Join(dir, "fenced")
	if err := os.WriteFile(ok, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	hooks := func(h string) []string {
		return []string{"--on-change", `sh -c 'echo "$FLOATIP_STATE $FLOATIP_VIP" >> ` + events + h + `'`,
			"--fence", `sh -c 'echo "$FLOATIP_VIP $FLOATIP_HOLDER" >> ` + fenced + `'`}
	}
	enableIPv6(l)
	h1 := l.StartDaemon("h1", append([]string{"-i", "eth0", "--priority", "200", labVIP6,
		"--check", "test -f " + ok, "--check-interval", "100ms", "--rise", "1", "--fall", "2"}, hooks("h1")...)...)
	waitActive6(t, l, "h1", 5*time.Second)
	h2 := l.StartDaemon("h2", append([]string{"-i", "eth0", labVIP6}, hooks("h2")...)...)
	waitStandby(t, h2, 5*time.Second)

	os.Remove(ok)
	fiptest.WaitFor(t, 3*time.Second, "h2 as the only holder", func() bool {
		hs := holders6(l, 2)
		return len(hs) == 1 && hs[0] == "h2"
	})
	if !strings.Contains(h1.Logs(), "health check fails: releasing") {
		t.Errorf("h1 did not say why it released:\n%s", h1.Logs())
	}
	fiptest.WaitFor(t, 3*time.Second, "the on-change hook saw h2 take the IPv6 VIP", func() bool {
		b, _ := os.ReadFile(events + "h2")
		return strings.Contains(string(b), "active "+labVIP6)
	})
	if b, err := os.ReadFile(fenced); err == nil {
		t.Errorf("fenced although the holder released the VIP: %s", b)
	}
	if err := os.WriteFile(ok, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	time.Sleep(500 * time.Millisecond) // h1 healthy again (rise 1)
	l.Script("cut", "h2")
	waitActive6(t, l, "h1", 5*time.Second)
	b, _ := os.ReadFile(fenced)
	if got := strings.TrimSpace(string(b)); got != labVIP6+" "+fiptest.HostMAC(2) {
		t.Errorf("fence command saw %q, want %q", got, labVIP6+" "+fiptest.HostMAC(2))
	}
}
