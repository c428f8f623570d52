package engine

// A reload (re-exec in the same process) hands the VIPs held here to the
// next program: nothing is released, nothing is announced, nobody is told.

import (
	"slices"
	"testing"
	"time"

	"floatip/internal/event"
	"floatip/internal/fiptest"
	"floatip/internal/wire/frame"

	"github.com/mdlayher/arp"
)

// HandOver leaves the held VIPs on the interface through Shutdown, without
// a release notice or a state change, and stops the group deciding; a VIP
// this node only stands by for is shut down as usual.
func TestGroupHandOver(t *testing.T) {
	vips := fiptest.VIPs(3)
	g, lan := newTestGroup(t, "02:00:00:00:00:09", 100, vips, StartStandby)
	// Another node holds the first VIP: this node claims the other two.
	now := runGroup(g, lan, fiptest.T0, fiptest.T0.Add(5*time.Second), func(p sentProbe) *frame.Frame {
		if p.vip == vips[0] {
			return replyFor(holderMAC, p.vip)
		}
		return nil
	})
	if g.machines[vips[0]].state != event.Standby || g.machines[vips[1]].state != event.Active || g.machines[vips[2]].state != event.Active {
		t.Fatalf("setup: states %v %v %v", g.machines[vips[0]].state, g.machines[vips[1]].state, g.machines[vips[2]].state)
	}

	held, healthy := g.HandOver(now)
	if !slices.Equal(held, vips[1:]) || !healthy {
		t.Fatalf("HandOver = %v, %v; want %v, healthy", held, healthy, vips[1:])
	}
	probes, announced := len(lan.probes), lan.announced[vips[1]]
	// A conflict and a whole second of ticks: no decision any more.
	g.Dispatch(*arpFrame(arp.OperationReply, "02:00:00:00:00:07", vips[1], "ff:ff:ff:ff:ff:ff", vips[1]), now)
	driveGroup(g, now, now.Add(time.Second), nil)
	g.Shutdown(now.Add(time.Second))
	if len(lan.probes) != probes || lan.announced[vips[1]] != announced {
		t.Errorf("sent %d probes and %d announcements after the hand-over", len(lan.probes)-probes, lan.announced[vips[1]]-announced)
	}
	for _, vip := range held {
		if lan.removes[vip] != 0 || g.machines[vip].state != event.Active {
			t.Errorf("%s: removed %d times, state %v; want kept, active", vip, lan.removes[vip], g.machines[vip].state)
		}
	}
}

// A VIP held before the reload is active from the start: no adoption probe,
// no announcement, no add, and the first link up keeps it; the holder's
// self-checks go on as before.
func TestMachineStartHeld(t *testing.T) {
	vips := fiptest.VIPs(1)
	g, lan := newTestGroup(t, "02:00:00:00:00:09", 100, vips, StartHeld)
	m := g.machines[vips[0]]
	if m.state != event.Active || !m.added || g.AllStandby() {
		t.Fatalf("at start: state %v, added %v, all standby %v", m.state, m.added, g.AllStandby())
	}
	// newTestGroup has broadcast the link up at T0.
	runGroup(g, lan, fiptest.T0, fiptest.T0.Add(3*time.Second), nil)
	if m.state != event.Active || lan.adds[vips[0]] != 0 || lan.announced[vips[0]] != 0 {
		t.Errorf("after 3 s: state %v, %d adds, %d announcements; want active, none", m.state, lan.adds[vips[0]], lan.announced[vips[0]])
	}
	selfChecks := 0
	for _, p := range lan.probes {
		if p.tag.Flags&frame.FlagHolder != 0 {
			selfChecks++
		}
		if p.tag.Flags&frame.FlagStandAside != 0 {
			t.Errorf("an adoption probe (stand aside) for a VIP held across a reload: %+v", p)
		}
	}
	if selfChecks < 2 {
		t.Errorf("%d self-checks in 3 s, want the holder's usual one per 1.1 s", selfChecks)
	}
	// A later link down is a real one: the VIP goes.
	g.Broadcast(EvLinkDown, fiptest.T0.Add(4*time.Second))
	if m.state != event.Standby || lan.removes[vips[0]] != 1 {
		t.Errorf("link down: state %v, %d removes; want standby, removed", m.state, lan.removes[vips[0]])
	}
}
