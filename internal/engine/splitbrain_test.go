package engine

import (
	"testing"
	"time"

	"floatip/internal/event"
	"floatip/internal/fiptest"
	"floatip/internal/wire/frame"

	"github.com/mdlayher/arp"
)

func TestMachineSplitBrain(t *testing.T) {
	winnerMAC, loserMAC := "02:00:00:00:00:01", "02:00:00:00:00:02"
	winnerTag := frame.Tag{Priority: 200, Flags: frame.FlagHolder}.HardwareAddr().String()

	// The loser learns the winner's rank from its self-check, waits for its
	// announcement, and only then removes the address.
	loser, lan := newTestMachine(t, 100, loserMAC)
	now := advance(loser, fiptest.T0, fiptest.T0.Add(time.Second), nil)
	if loser.state != event.Active {
		t.Fatal("setup: not active")
	}
	loser.onFrame(*arpFrame(arp.OperationRequest, winnerMAC, frame.ZeroIPv4, winnerTag, testVIP), now)
	if !lan.configured || lan.probes[len(lan.probes)-1].Flags != frame.FlagHolder {
		t.Fatalf("after the winner's self-check: configured %v, last probe %+v (must introduce itself and keep the VIP)", lan.configured, lan.probes[len(lan.probes)-1])
	}
	// A tag in one frame is not enough for a verdict; the winner's kernel
	// answering the loser's introduction confirms it.
	loser.onFrame(*arpFrame(arp.OperationReply, winnerMAC, testVIP, loserMAC, frame.ZeroIPv4), now.Add(ms(1)))
	if loser.state != event.Yielding || !lan.configured {
		t.Fatalf("after the winner's self-check and answer: state %v, configured %v (must keep it until the winner announces)", loser.state, lan.configured)
	}
	loser.onFrame(*arpFrame(arp.OperationRequest, winnerMAC, testVIP, "ff:ff:ff:ff:ff:ff", testVIP), now.Add(ms(5)))
	if loser.state != event.Standby || lan.configured {
		t.Fatalf("after the winner's announcement: state %v, configured %v", loser.state, lan.configured)
	}

	// The winner, seeing the loser's self-check, re-announces and keeps it.
	winner, wlan := newTestMachine(t, 200, winnerMAC)
	now = advance(winner, fiptest.T0, fiptest.T0.Add(4500*time.Millisecond), nil) // its claim announcements are past
	before := wlan.announces
	loserTag := frame.Tag{Priority: 100, Flags: frame.FlagHolder}.HardwareAddr().String()
	winner.onFrame(*arpFrame(arp.OperationRequest, loserMAC, frame.ZeroIPv4, loserTag, testVIP), now)
	winner.onFrame(*arpFrame(arp.OperationReply, loserMAC, testVIP, winnerMAC, frame.ZeroIPv4), now.Add(ms(1)))
	if winner.state != event.Active || wlan.announces != before {
		t.Fatalf("winner: state %v, announces %d (want %d: not at once, TestMachineSplitBrainThreeHolders)", winner.state, wlan.announces, before)
	}
	now = advance(winner, now, now.Add(60*time.Millisecond), nil)
	if wlan.announces != before+1 {
		t.Fatalf("winner: %d announcements 60 ms after winning, want %d", wlan.announces, before+1)
	}
	// ... and once more 1.1 s later, so that the winner's is the last
	// announcement the clients hear.
	now = advance(winner, now, now.Add(1200*time.Millisecond), nil)
	if wlan.announces != before+2 {
		t.Fatalf("winner: %d announcements 1.2 s after winning, want %d", wlan.announces, before+2)
	}

	// A holder that is not floatip is defended against at most once per 10 s.
	stranger := arpFrame(arp.OperationReply, "02:00:00:00:00:77", testVIP, winnerMAC, frame.ZeroIPv4)
	before = wlan.announces
	for i := range 50 {
		winner.onFrame(*stranger, now.Add(ms(100*i)))
	}
	if got := wlan.announces - before; got != 1 {
		t.Errorf("defended %d times in 5s against a non-floatip holder, want 1", got)
	}
	if winner.state != event.Active {
		t.Errorf("yielded to a non-floatip holder")
	}
}

// TestMachineSplitBrainWinnerAnnouncesAfterTheLoser: the heal meets one of
// the loser's claim rounds. The winner's re-announcement must come clearly
// after it (announceOrderMargin), or the loser waits a whole announcement
// spacing for the next one (the lab's split-brain heal took over 2 s).
func TestMachineSplitBrainWinnerAnnouncesAfterTheLoser(t *testing.T) {
	winnerMAC, loserMAC := "02:00:00:00:00:01", "02:00:00:00:00:02"
	loserTag := frame.Tag{Priority: 100, Flags: frame.FlagHolder}.HardwareAddr().String()
	winner, wlan := newTestMachine(t, 200, winnerMAC)
	now := advance(winner, fiptest.T0, fiptest.T0.Add(4500*time.Millisecond), nil) // its claim announcements are past
	before := wlan.announces
	loserAnnounced := now
	winner.onFrame(*arpFrame(arp.OperationRequest, loserMAC, testVIP, "ff:ff:ff:ff:ff:ff", testVIP), loserAnnounced)
	winner.onFrame(*arpFrame(arp.OperationRequest, loserMAC, frame.ZeroIPv4, loserTag, testVIP), now.Add(ms(2)))
	winner.onFrame(*arpFrame(arp.OperationReply, loserMAC, testVIP, winnerMAC, frame.ZeroIPv4), now.Add(ms(3)))
	now = advance(winner, now.Add(ms(3)), loserAnnounced.Add(announceOrderMargin), nil)
	if wlan.announces != before {
		t.Fatalf("winner announced %d times within %v of the loser's announcement; the loser would not count it", wlan.announces-before, announceOrderMargin)
	}
	advance(winner, now, loserAnnounced.Add(300*time.Millisecond), nil)
	if wlan.announces != before+1 {
		t.Fatalf("winner: %d announcements 300 ms after the loser's, want 1", wlan.announces-before)
	}
}

// A host that is not floatip is given a moment to show a floatip tag before
// the RFC 5227 defence; a floatip winner that announced just before its
// rank was learnt still makes the loser yield at once.
func TestMachineIdentifiesBeforeDefending(t *testing.T) {
	m, lan := newTestMachine(t, 100, "02:00:00:00:00:02")
	now := advance(m, fiptest.T0, fiptest.T0.Add(time.Second), nil)
	before := lan.announces
	stranger := arpFrame(arp.OperationReply, "02:00:00:00:00:77", testVIP, "02:00:00:00:00:02", frame.ZeroIPv4)
	m.onFrame(*stranger, now)
	if lan.announces != before {
		t.Fatal("defended before giving the other holder a chance to identify itself")
	}
	if last := lan.probes[len(lan.probes)-1]; last.Flags != frame.FlagHolder {
		t.Errorf("did not introduce itself with a tagged self-check: %+v", last)
	}
	m.onFrame(*stranger, now.Add(identifyTimeout))
	if lan.announces != before+1 {
		t.Fatalf("no defence after the identification timeout")
	}

	loser, llan := newTestMachine(t, 100, "02:00:00:00:00:02")
	now = advance(loser, fiptest.T0, fiptest.T0.Add(time.Second), nil)
	winner := "02:00:00:00:00:01"
	loser.onFrame(*arpFrame(arp.OperationRequest, winner, testVIP, "ff:ff:ff:ff:ff:ff", testVIP), now)
	if !llan.configured {
		t.Fatal("released to a holder of unknown rank")
	}
	winnerTag := frame.Tag{Priority: 200, Flags: frame.FlagHolder}.HardwareAddr().String()
	loser.onFrame(*arpFrame(arp.OperationRequest, winner, frame.ZeroIPv4, winnerTag, testVIP), now.Add(ms(2)))
	if llan.configured || loser.state != event.Standby {
		t.Fatalf("after learning the winner's rank (it announced 2 ms before): state %v, configured %v", loser.state, llan.configured)
	}
}

// TestMachineSplitBrainThreeHolders: a partition of two hosts heals and
// three nodes hold the VIP. The middle one outranks the worst but loses to
// the best: it must not announce, whichever of the two it hears first
// (found by the chaos run, seed 20261130: its announcement came after the
// best one's, the clients followed it, and it then released, leaving them
// on a MAC without the VIP for 2.4 s).
func TestMachineSplitBrainThreeHolders(t *testing.T) {
	bestMAC, worstMAC := "02:00:00:00:00:01", "02:00:00:00:00:03"
	bestTag := frame.Tag{Priority: 200, Flags: frame.FlagHolder}.HardwareAddr().String()
	worstTag := frame.Tag{Priority: 100, Flags: frame.FlagHolder}.HardwareAddr().String()
	best := arpFrame(arp.OperationRequest, bestMAC, frame.ZeroIPv4, bestTag, testVIP)
	worst := arpFrame(arp.OperationRequest, worstMAC, frame.ZeroIPv4, worstTag, testVIP)
	for _, order := range [][]*frame.Frame{{best, worst}, {worst, best}} {
		m, lan := newTestMachine(t, 150, "02:00:00:00:00:02")
		now := advance(m, fiptest.T0, fiptest.T0.Add(4500*time.Millisecond), nil)
		before := lan.announces
		// Each holder's self-check, then its kernel's answer to ours: a
		// floatip node heard in two frames gets a verdict.
		for i, f := range order {
			at := now.Add(time.Duration(3*i) * time.Millisecond)
			m.onFrame(*f, at)
			m.onFrame(*arpFrame(arp.OperationReply, f.Packet.SenderHardwareAddr.String(), testVIP, "02:00:00:00:00:02", frame.ZeroIPv4), at.Add(ms(1)))
		}
		if m.state != event.Yielding {
			t.Fatalf("state %v after both holders' self-checks, want yielding", m.state)
		}
		advance(m, now.Add(ms(3)), now.Add(ms(200)), nil)
		if lan.announces != before {
			t.Fatalf("the middle holder announced (%d announcements, want %d)", lan.announces, before)
		}
		m.onFrame(*arpFrame(arp.OperationRequest, bestMAC, testVIP, "ff:ff:ff:ff:ff:ff", testVIP), now.Add(ms(210)))
		if m.state != event.Standby || lan.configured {
			t.Fatalf("after the best holder's announcement: state %v, configured %v", m.state, lan.configured)
		}
	}
}
