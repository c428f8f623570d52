package integration

// Lab tests of group behaviour (issue 3): priority with more than two hosts,
// split brain, isolation, preemption, graceful handover, loss, flaps and
// stalls. Each asserts what a user sees: who holds the VIP and what the
// client reached.

import (
	"fmt"
	"strings"
	"syscall"
	"testing"
	"time"

	"floatip/internal/fiptest"
)

// claims counts the claims in a daemon's log.
func claims(d *fiptest.Process) int { return strings.Count(d.Logs(), "msg=\"claimed VIP") }

// holders lists the hosts (h1..hN) that have the VIP configured.
func holders(l *fiptest.Lab, n int) []string {
	var hs []string
	for i := 1; i <= n; i++ {
		if h := fmt.Sprintf("h%d", i); l.HostHasAddr(h, labVIP+"/32") {
			hs = append(hs, h)
		}
	}
	return hs
}

// waitSoleHolder waits until exactly want holds the VIP.
func waitSoleHolder(t *testing.T, l *fiptest.Lab, n int, want string, within time.Duration) {
	t.Helper()
	fiptest.WaitFor(t, within, want+" as the only holder", func() bool {
		hs := holders(l, n)
		return len(hs) == 1 && hs[0] == want
	})
}

// TestLabPriorityDecides: with 3 and 5 hosts of distinct priorities, each
// time the holder dies the best survivor takes over, and nobody else claims.
func TestLabPriorityDecides(t *testing.T) {
	t.Parallel()
	for _, n := range []int{3, 5} {
		t.Run(fmt.Sprintf("%d hosts", n), func(t *testing.T) {
			l := fiptest.NewLab(t, n)
			daemons := make([]*fiptest.Process, n+1)
			// Start them worst first, so start order cannot explain the result.
			for i := n; i >= 1; i-- {
				daemons[i] = l.StartDaemon(fmt.Sprintf("h%d", i), "-i", "eth0", "--priority", fmt.Sprint(100+10*(n-i)), labVIP)
			}
			for holder := 1; holder <= n; holder++ {
				h := fmt.Sprintf("h%d", holder)
				waitSoleHolder(t, l, n, h, 5*time.Second)
				if got := claims(daemons[holder]); got != 1 {
					t.Fatalf("%s claimed %d times, want once", h, got)
				}
				for i := holder + 1; i <= n; i++ {
					if c := claims(daemons[i]); c != 0 {
						t.Fatalf("h%d (lower priority) claimed while %s was the best survivor:\n%s", i, h, daemons[i].Logs())
					}
				}
				if holder < n {
					l.Script("cut", h)
				}
			}
			if !l.ClientPing(labVIP) || l.ClientNeighMAC(labVIP) != fiptest.HostMAC(n) {
				t.Errorf("client's cache points at %q, want the last survivor h%d", l.ClientNeighMAC(labVIP), n)
			}
		})
	}
}

// TestLabEqualPrioritiesConverge: equal priorities still end with exactly
// one holder (the lowest MAC), at boot and after its death.
func TestLabEqualPrioritiesConverge(t *testing.T) {
	t.Parallel()
	l := fiptest.NewLab(t, 3)
	for _, h := range []string{"h3", "h2", "h1"} {
		l.StartDaemon(h, "-i", "eth0", labVIP)
	}
	waitSoleHolder(t, l, 3, "h1", 5*time.Second)
	l.Script("cut", "h1")
	waitSoleHolder(t, l, 3, "h2", 5*time.Second)
	time.Sleep(time.Second)
	if hs := holders(l, 3); len(hs) != 1 {
		t.Fatalf("holders %v", hs)
	}
}

// TestLabSplitBrainHeals: the holder is cut off silently (carrier stays
// up), the standby takes over, and both hold the VIP. When the partition
// heals, the better-ranked node keeps it within 2 s and the client, which
// kept talking through the heal, sees no second outage.
func TestLabSplitBrainHeals(t *testing.T) {
	t.Parallel()
	l := fiptest.NewLab(t, 2)
	l.StartEchoServers()
	_, h2 := startPair(t, l, nil, nil)

	l.Script("isolate", "h1")
	waitActive(t, l, "h2", 5*time.Second)
	if !l.HostHasAddr("h1", labVIP+"/32") {
		t.Fatal("setup: the isolated holder gave the VIP up; no split brain to heal")
	}
	summary := l.UDPClient(4*time.Second, 10*time.Millisecond)
	time.Sleep(time.Second)
	healed := time.Now()
	l.Script("unisolate", "h1")
	waitSoleHolder(t, l, 2, "h1", 2*time.Second)
	single := time.Since(healed)
	fiptest.WaitFor(t, 2*time.Second, "client's cache points at h1", func() bool { return l.ClientNeighMAC(labVIP) == fiptest.HostMAC(1) })
	s := <-summary
	if s.Err != nil {
		t.Fatal(s.Err)
	}
	if s.LastResponder != "h1" {
		t.Errorf("client's last answer from %q, want h1", s.LastResponder)
	}
	// Make before break: the loser removed the VIP only after the winner
	// had re-pointed the client.
	if s.LongestGapMs > 200 {
		t.Errorf("client saw a %d ms outage across the heal (at +%d ms)", s.LongestGapMs, s.LongestGapStartMs)
	}
	if !strings.Contains(h2.Logs(), "split brain resolved") {
		t.Errorf("h2 did not resolve the split brain:\n%s", h2.Logs())
	}
	t.Logf("heal to a single holder: %v; client's longest gap across the heal: %d ms", single.Round(time.Millisecond), s.LongestGapMs)
}

// TestLabIsolatedStandbyNeverClaims: a standby cut off from everything
// (carrier up) cannot reach its reference host, so it does not claim; the
// client never loses the holder, and nothing moves when it comes back.
func TestLabIsolatedStandbyNeverClaims(t *testing.T) {
	t.Parallel()
	l := fiptest.NewLab(t, 2)
	l.StartEchoServers()
	ref := "--reference=192.0.2.100" // the client: a host every healthy node reaches
	l.StartDaemon("h1", "-i", "eth0", ref, labVIP)
	waitActive(t, l, "h1", 5*time.Second)
	h2 := l.StartDaemon("h2", "-i", "eth0", "--priority", "200", ref, labVIP)
	waitStandby(t, h2, 5*time.Second)

	summary := l.UDPClient(6*time.Second, 10*time.Millisecond)
	time.Sleep(500 * time.Millisecond)
	l.Script("isolate", "h2")
	time.Sleep(3 * time.Second)
	l.Script("unisolate", "h2")
	s := <-summary
	if c := claims(h2); c != 0 {
		t.Fatalf("the isolated standby claimed the VIP %d times:\n%s", c, h2.Logs())
	}
	if !strings.Contains(h2.Logs(), "no reference host answers") {
		t.Errorf("h2 did not say why it did not claim:\n%s", h2.Logs())
	}
	if s.Err != nil || s.LongestGapMs > 200 || s.LastResponder != "h1" || len(s.Changes) != 0 {
		t.Errorf("client: longest gap %d ms, last answer %q, changes %v, err %v", s.LongestGapMs, s.LastResponder, s.Changes, s.Err)
	}
	waitSoleHolder(t, l, 2, "h1", time.Second)
}

// TestLabPreemption: a better host that returns takes the VIP back only
// with --preempt, after the hold-down, in one handover without a gap.
func TestLabPreemption(t *testing.T) {
	t.Parallel()
	for _, preempt := range []bool{false, true} {
		t.Run(fmt.Sprintf("preempt=%v", preempt), func(t *testing.T) {
			l := fiptest.NewLab(t, 2)
			l.StartEchoServers()
			h2 := l.StartDaemon("h2", "-i", "eth0", labVIP)
			waitActive(t, l, "h2", 5*time.Second)
			args := []string{"-i", "eth0", "--priority", "200", labVIP}
			if preempt {
				args = append(args, "--preempt", "--preempt-delay", "1s")
			}
			summary := l.UDPClient(5*time.Second, 10*time.Millisecond)
			time.Sleep(500 * time.Millisecond)
			h1 := l.StartDaemon("h1", args...)
			s := <-summary
			want := "h2"
			if preempt {
				want = "h1"
			}
			waitSoleHolder(t, l, 2, want, time.Second)
			if s.Err != nil || s.LongestGapMs > 200 {
				t.Errorf("client: longest gap %d ms, err %v", s.LongestGapMs, s.Err)
			}
			if s.LastResponder != want {
				t.Errorf("client's last answer from %q, want %s", s.LastResponder, want)
			}
			if preempt && (claims(h1) != 1 || claims(h2) != 1 || len(s.Changes) != 1) {
				t.Errorf("not a single handover: h1 claimed %d, h2 claimed %d, client saw changes %v", claims(h1), claims(h2), s.Changes)
			}
			if !preempt && claims(h1) != 0 {
				t.Errorf("h1 took the VIP without --preempt")
			}
		})
	}
}

// TestLabLossDoesNotCauseTakeovers: 5 % loss both ways on the standby's
// link for 2 minutes at default settings causes no takeover, and a real
// death afterwards is still detected as fast as usual.
func TestLabLossDoesNotCauseTakeovers(t *testing.T) {
	if testing.Short() {
		t.Skip("2-minute loss run skipped in -short mode")
	}
	t.Parallel()
	l := fiptest.NewLab(t, 2)
	_, h2 := startPair(t, l, nil, nil)
	l.Script("loss", "h2", "5")
	deadline := time.Now().Add(2 * time.Minute)
	for time.Now().Before(deadline) {
		if c := claims(h2); c != 0 {
			t.Fatalf("false takeover under 5%% loss after %v:\n%s", time.Until(deadline), fiptest.LastLines(h2.Logs(), 20))
		}
		time.Sleep(500 * time.Millisecond)
	}
	cut := time.Now()
	l.Script("cut", "h1")
	waitActive(t, l, "h2", 3*time.Second)
	t.Logf("takeover after the cut, with 5%% loss on the standby: %v", time.Since(cut).Round(time.Millisecond))
}

// TestLabFlapsAndStalls: a holder's link flapping for a moment, or either
// daemon paused for a second, does not move the VIP back and forth.
func TestLabFlapsAndStalls(t *testing.T) {
	t.Parallel()
	l := fiptest.NewLab(t, 2)
	h1, h2 := startPair(t, l, nil, nil)

	// Paused daemons: the kernel keeps answering ARP for the holder, and a
	// paused standby counts no misses while it sleeps.
	for _, d := range []*fiptest.Process{h1, h2} {
		d.Signal(syscall.SIGSTOP)
		time.Sleep(time.Second)
		d.Signal(syscall.SIGCONT)
	}
	time.Sleep(time.Second)
	if claims(h1) != 1 || claims(h2) != 0 {
		t.Fatalf("a 1 s pause moved the VIP: h1 claimed %d, h2 claimed %d", claims(h1), claims(h2))
	}
	waitSoleHolder(t, l, 2, "h1", time.Second)

	// A 100 ms flap of the holder's link: if the VIP moves, it moves once.
	l.Script("cut", "h1")
	time.Sleep(100 * time.Millisecond)
	l.Script("heal", "h1")
	time.Sleep(3 * time.Second)
	hs := holders(l, 2)
	if len(hs) != 1 {
		t.Fatalf("holders after the flap: %v", hs)
	}
	if moves := claims(h1) - 1 + claims(h2); moves > 1 {
		t.Errorf("the VIP moved %d times after one flap (h1 claimed %d, h2 %d)", moves, claims(h1), claims(h2))
	}
	time.Sleep(2 * time.Second)
	if again := holders(l, 2); len(again) != 1 || again[0] != hs[0] {
		t.Errorf("the VIP moved again: %v then %v", hs, again)
	}
}
