package integration

// Lab test of the isolated holder (internal/engine/isolation.go): a holder cut off upstream
// with its carrier up gives the VIP up, so the client moves once, not twice.

import (
	"strings"
	"testing"
	"time"

	"floatip/internal/fiptest"
)

// TestLabIsolatedHolderStepsDown: the holder (the better-ranked node) is cut
// off upstream (nft drop on its bridge port, carrier up). The standby, which
// still reaches the reference host, takes over; the isolated holder drops
// the VIP within a generous bound and does not claim while cut off; after
// the cut heals the client stays on the new holder: it moved exactly once.
// Without the rule the heal would hand the VIP back to the better node
// (TestLabSplitBrainHeals shows that behaviour, which a holder without
// reference hosts keeps).
func TestLabIsolatedHolderStepsDown(t *testing.T) {
	t.Parallel()
	l := fiptest.NewLab(t, 2)
	l.StartEchoServers()
	ref := "--reference=" + fiptest.ClientIP // the client: a host every healthy node reaches
	h1, h2 := startPair(t, l, []string{ref}, []string{ref})

	summary := l.UDPClient(14*time.Second, 10*time.Millisecond)
	time.Sleep(500 * time.Millisecond)
	isolated := time.Now()
	l.Script("isolate", "h1")
	waitActive(t, l, "h2", 5*time.Second)
	takeover := time.Since(isolated)
	fiptest.WaitFor(t, 10*time.Second, "the isolated holder h1 to drop the VIP", func() bool { return !l.HostHasAddr("h1", labVIP+"/32") })
	dropped := time.Since(isolated)
	if !strings.Contains(h1.Logs(), "isolated: no reference host") {
		t.Errorf("h1 did not say why it released:\n%s", fiptest.LastLines(h1.Logs(), 20))
	}
	time.Sleep(2 * time.Second) // a standby cut off never claims
	if c := claims(h1); c != 1 {
		t.Errorf("h1 claimed %d times, want only its first claim (it must not claim while cut off)", c)
	}
	l.Script("unisolate", "h1")
	time.Sleep(3 * time.Second)
	waitSoleHolder(t, l, 2, "h2", time.Second)
	s := <-summary
	if s.Err != nil {
		t.Fatalf("%v\n%s", s.Err, s.Stderr)
	}
	if len(s.Changes) != 1 || s.Changes[0].From != "h1" || s.Changes[0].To != "h2" || s.LastResponder != "h2" {
		t.Errorf("client: changes %v, last answer from %q; want exactly one move, h1 to h2", s.Changes, s.LastResponder)
	}
	if claims(h1) != 1 || claims(h2) != 1 {
		t.Errorf("claims: h1 %d, h2 %d; want 1 each", claims(h1), claims(h2))
	}
	t.Logf("isolated at 0: standby active after %v, isolated holder dropped the VIP after %v; client's longest gap %d ms",
		takeover.Round(time.Millisecond), dropped.Round(time.Millisecond), s.LongestGapMs)
}
