package engine

import (
	"fmt"
	"math/rand/v2"
	"slices"
	"testing"
	"time"

	"floatip/internal/fiptest"
	"floatip/internal/wire/frame"

	"github.com/mdlayher/arp"
)

// Membership from what a node hears: a newcomer after the hold-down, a
// holder at once; out at once on a release notice, a stand-aside tag or a
// holder watch's verdict, and after poolWindow of silence. The assignment
// follows at once.
func TestPoolMembership(t *testing.T) {
	vips := fiptest.VIPs(8)
	g, _ := newTestGroup(t, "02:00:00:00:00:09", 100, vips, StartStandby)
	p := NewPoolView(g, vips, 5*time.Second)
	now := runGroup(g, &groupLAN{}, fiptest.T0, fiptest.T0.Add(6*time.Second), nil) // past our own hold-down, alone
	_ = now
	members := func() []string {
		var out []string
		for _, m := range p.members {
			out = append(out, m.MAC.String())
		}
		return out
	}
	self := "02:00:00:00:00:09"
	if got := members(); !slices.Equal(got, []string{self}) {
		t.Fatalf("alone: members %v", got)
	}
	if len(p.assign) != 8 || !p.mine(vips[0]) {
		t.Fatalf("alone: %d VIPs assigned, mine: %v", len(p.assign), p.mine(vips[0]))
	}
	hear := func(mac string, flags uint8, at time.Time) {
		g.Dispatch(*arpFrame(arp.OperationRequest, mac, frame.ZeroIPv4, frame.Tag{Priority: 100, Flags: flags}.HardwareAddr().String(), vips[1]), at)
	}
	tick := func(at time.Time) { p.onTick(at) }

	// A newcomer: a member only after 5 s of presence.
	a := "02:00:00:00:00:01"
	start := fiptest.T0.Add(6 * time.Second)
	for s := 0; s <= 4; s++ {
		hear(a, 0, start.Add(time.Duration(s)*time.Second))
		tick(start.Add(time.Duration(s) * time.Second))
	}
	if got := members(); len(got) != 1 {
		t.Fatalf("a newcomer heard for 4 s is a member: %v", got)
	}
	hear(a, 0, start.Add(5*time.Second))
	tick(start.Add(5 * time.Second))
	if got := members(); !slices.Equal(got, []string{a, self}) {
		t.Fatalf("after the hold-down: members %v", got)
	}
	if n := len(fiptest.Loads(p.assign)); n != 2 {
		t.Fatalf("the assignment did not follow: %v", fiptest.Loads(p.assign))
	}

	// A holder heard for the first time (a healed partition) is a member at once.
	b := "02:00:00:00:00:02"
	now = start.Add(5500 * time.Millisecond)
	hear(b, frame.FlagHolder, now)
	hear(b, frame.FlagHolder, now.Add(ms(10)))
	if got := members(); !slices.Contains(got, b) {
		t.Fatalf("a holder is not a member at once: %v", got)
	}

	// A holder watch finds b dead: out at once, before any tick.
	p.gone(fiptest.MustMAC(b), now.Add(ms(20)))
	if got := members(); slices.Contains(got, b) {
		t.Fatalf("a dead holder is still a member: %v", got)
	}
	for _, mac := range p.assign {
		if mac.String() == b {
			t.Fatal("a VIP is still assigned to the dead holder")
		}
	}

	// a releases (SIGTERM): out at once.
	hear(a, frame.FlagReleasing, now.Add(ms(30)))
	if got := members(); slices.Contains(got, a) {
		t.Fatalf("a released node is still a member: %v", got)
	}
	// ... and back: a newcomer again.
	hear(a, 0, now.Add(ms(40)))
	tick(now.Add(time.Second))
	if got := members(); slices.Contains(got, a) {
		t.Fatalf("a node back after a release skipped the hold-down: %v", got)
	}
	// Silent for the window: never a member.
	tick(now.Add(7 * time.Second))
	if got := members(); slices.Contains(got, a) {
		t.Fatalf("a node silent for 7 s is a member: %v", got)
	}

	// Our own health check fails: we are no member, and we say so.
	g.Broadcast(EvUnhealthy, now.Add(8*time.Second))
	tick(now.Add(8 * time.Second))
	if got := members(); slices.Contains(got, self) {
		t.Fatalf("unhealthy, this node is still a member: %v", got)
	}
}

// A flood of tagged probes from random MACs neither makes members nor keeps
// a real newcomer out of the table.
func TestPoolMembershipFlood(t *testing.T) {
	vips := fiptest.VIPs(4)
	g, _ := newTestGroup(t, "02:00:00:00:00:09", 100, vips, StartStandby)
	p := NewPoolView(g, vips, time.Second)
	rng := rand.New(rand.NewPCG(3, 4))
	now := fiptest.T0
	for i := range 5000 {
		mac := fmt.Sprintf("06:%02x:%02x:%02x:%02x:%02x", rng.IntN(256), rng.IntN(256), rng.IntN(256), rng.IntN(256), rng.IntN(256))
		now = fiptest.T0.Add(time.Duration(i) * time.Millisecond)
		g.Dispatch(*arpFrame(arp.OperationRequest, mac, frame.ZeroIPv4, frame.Tag{Priority: 100}.HardwareAddr().String(), vips[0]), now)
	}
	if len(p.nodes) > maxPeers {
		t.Fatalf("%d nodes recorded", len(p.nodes))
	}
	real := "02:00:00:00:00:01"
	for s := 0; s <= 2; s++ {
		at := now.Add(time.Duration(s) * time.Second)
		g.Dispatch(*arpFrame(arp.OperationRequest, real, frame.ZeroIPv4, frame.Tag{Priority: 100}.HardwareAddr().String(), vips[1]), at)
		p.onTick(at)
	}
	var got []string
	for _, m := range p.members {
		got = append(got, m.MAC.String())
	}
	if !slices.Equal(got, []string{real, "02:00:00:00:00:09"}) {
		t.Fatalf("members after the flood: %v", got)
	}
}
