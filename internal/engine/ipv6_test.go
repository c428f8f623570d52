package engine

import (
	"bytes"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"testing"
	"time"

	"floatip/internal/wire"
	"floatip/internal/wire/frame"

	"floatip/internal/fiptest"

	"floatip/internal/event"
)

var (
	v6VIP  = netip.MustParseAddr("2001:db8::50")
	macA   = net.HardwareAddr{2, 0, 0, 0, 0, 1}
	macB   = net.HardwareAddr{2, 0, 0, 0, 0, 2}
	tagged = frame.Tag{Priority: 200, Flags: frame.FlagHolder}
)

// newTestMachine6 is newTestMachine for an IPv6 VIP.
func newTestMachine6(t *testing.T, priority uint8, own net.HardwareAddr) (*Machine, *fakeLAN) {
	t.Helper()
	lan := &fakeLAN{own: own}
	cfg := Config{Priority: priority, Interval: ms(200), Misses: 3, AnnounceCount: 3,
		AnnounceSpacing: ms(1100), AnnounceForm: frame.FormRequest, Refresh: 100 * time.Second}
	deps := Deps{Interface: "eth0", Log: slog.New(slog.NewTextHandler(io.Discard, nil)), ARP: lan, Address: lan}
	m := NewMachine(v6VIP, cfg, deps, StartStandby, fiptest.T0)
	m.Group.Broadcast(EvLinkUp, fiptest.T0)
	return m, lan
}

// fromWire turns packet bytes from src into the frame the machines get.
func fromWire(t *testing.T, b []byte, src net.HardwareAddr) *frame.Frame {
	t.Helper()
	p, err := wire.NDPFrame(b, src)
	if err != nil {
		t.Fatal(err)
	}
	return &frame.Frame{Packet: p}
}

// TestMachineIPv6FromWire: the per-VIP decisions work on NDP as on ARP,
// fed with real wire bytes: a holder's kernel's NA keeps a standby from
// claiming; silence makes it claim; a split brain is resolved by rank.
func TestMachineIPv6FromWire(t *testing.T) {
	holderNA, _ := wire.UnsolicitedNA(macA, v6VIP) // the kernel's answer to a DAD probe has this form
	m, lan := newTestMachine6(t, 100, macB)
	now := advance(m, fiptest.T0, fiptest.T0.Add(5*time.Second), func(time.Time) *frame.Frame { return fromWire(t, holderNA, macA) })
	if m.state != event.Standby || lan.adds != 0 || !bytes.Equal(m.holder, macA) {
		t.Fatalf("with a live holder: state %v, adds %d, holder %s", m.state, lan.adds, m.holder)
	}
	advance(m, now, now.Add(time.Second), nil)
	if m.state != event.Active || lan.adds != 1 {
		t.Fatalf("after the holder fell silent: state %v, adds %d", m.state, lan.adds)
	}

	// Split brain: the better node's tagged self-check, then its kernel's
	// NA (Override, to all nodes: it re-points the neighbours), and the
	// loser releases at once.
	loser, llan := newTestMachine6(t, 100, macB)
	now = advance(loser, fiptest.T0, fiptest.T0.Add(time.Second), nil)
	if loser.state != event.Active {
		t.Fatal("setup: not active")
	}
	selfCheck, _ := wire.ProbeNS(v6VIP, &frame.Tag{Priority: 200, Flags: frame.FlagHolder})
	loser.onFrame(*fromWire(t, selfCheck, macA), now)
	if !llan.configured {
		t.Fatal("released on a tag in one frame")
	}
	// The winner's kernel answers our introduction a round trip later.
	loser.onFrame(*fromWire(t, holderNA, macA), now.Add(ms(3)))
	if loser.state != event.Standby || llan.configured {
		t.Fatalf("after the winner's self-check and NA: state %v, configured %v", loser.state, llan.configured)
	}
	// A plain DAD probe from a host that is not floatip is no holder evidence.
	plain, _ := wire.ProbeNS(v6VIP, nil)
	if f := fromWire(t, plain, macA); frame.HolderEvidence(*f, v6VIP, macB) {
		t.Error("a DAD probe counted as holder evidence")
	}
}

// TestMachineIPv6LoserCountsItsKernelsAnswer: over IPv6 the loser's kernel
// answers the winner's self-check with an NA to all nodes, which re-points
// the clients at the loser. A winner's announcement heard just after that
// Probe left the clients on the loser (its kernel's answer came later), so
// the loser keeps the VIP until the next one.
func TestMachineIPv6LoserCountsItsKernelsAnswer(t *testing.T) {
	winnerNA, _ := wire.UnsolicitedNA(macA, v6VIP)
	winnerCheck, _ := wire.ProbeNS(v6VIP, &frame.Tag{Priority: 200, Flags: frame.FlagHolder})
	loser, lan := newTestMachine6(t, 100, macB)
	now := advance(loser, fiptest.T0, fiptest.T0.Add(5*time.Second), nil) // its claim announcements are past
	if loser.state != event.Active {
		t.Fatal("setup: not active")
	}
	loser.onFrame(*fromWire(t, winnerCheck, macA), now)
	loser.onFrame(*fromWire(t, winnerNA, macA), now.Add(500*time.Microsecond))
	if !lan.configured || loser.state != event.Yielding {
		t.Fatalf("an announcement 0.5 ms after the winner's self-check: state %v, configured %v (want yielding, still configured)", loser.state, lan.configured)
	}
	loser.onFrame(*fromWire(t, winnerNA, macA), now.Add(150*time.Millisecond))
	if lan.configured || loser.state != event.Standby {
		t.Fatalf("after the winner's next announcement: state %v, configured %v", loser.state, lan.configured)
	}
}

// TestMachineIPv6NoSelfCheckRightAfterAnnouncing: over IPv6 a holder's
// self-check makes any other holder's kernel answer to all nodes, so it
// never follows the holder's own announcement within announceOrderMargin
// (claim rounds and self-checks both run every 1.1 s from the claim, and
// met in the lab).
func TestMachineIPv6NoSelfCheckRightAfterAnnouncing(t *testing.T) {
	m, lan := newTestMachine6(t, 100, macB)
	var lastAnnounce time.Time
	checks := 0
	driveGroup(m.Group, fiptest.T0, fiptest.T0.Add(10*time.Second), func(now time.Time) {
		for _, what := range lan.sent {
			switch what {
			case "announce":
				lastAnnounce = now
			case "probe":
				if m.state != event.Active {
					continue // a standby's probe: no VIP of ours to answer for
				}
				checks++
				if !lastAnnounce.IsZero() && now.Sub(lastAnnounce) < announceOrderMargin {
					t.Errorf("self-check %v after our announcement", now.Sub(lastAnnounce))
				}
			}
		}
		lan.sent = lan.sent[:0]
	})
	if lan.announces < 3 || checks < 5 {
		t.Fatalf("setup: %d announcements, %d self-checks in 10 s", lan.announces, checks)
	}
}
