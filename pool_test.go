package main

import (
	"fmt"
	"math/rand/v2"
	"net"
	"net/netip"
	"slices"
	"testing"
	"time"

	"github.com/mdlayher/arp"
)

func poolMACs(n int) []poolMember {
	ms := make([]poolMember, n)
	for i := range ms {
		ms[i] = poolMember{mac: mustMAC(fmt.Sprintf("02:00:00:00:00:%02x", i+1)), weight: 100}
	}
	return ms
}

func loads(a map[netip.Addr]net.HardwareAddr) map[string]int {
	l := map[string]int{}
	for _, mac := range a {
		l[mac.String()]++
	}
	return l
}

// Every VIP gets exactly one member, each member ⌊M/N⌋ or ⌈M/N⌉, whatever
// the order the members are listed in.
func TestAssignPoolBalanced(t *testing.T) {
	for _, n := range []int{1, 2, 3, 5, 7} {
		for _, m := range []int{1, 3, 8, 16, 64, 256} {
			members := poolMACs(n)
			vips := testVIPs(m)
			a := assignPool(vips, members)
			if len(a) != m {
				t.Fatalf("N=%d M=%d: %d VIPs assigned", n, m, len(a))
			}
			lo, hi := m/n, (m+n-1)/n
			l := loads(a)
			for _, mem := range members {
				if got := l[mem.mac.String()]; got < lo || got > hi {
					t.Errorf("N=%d M=%d: %s holds %d, want %d..%d", n, m, mem.mac, got, lo, hi)
				}
			}
			rev := slices.Clone(members)
			slices.Reverse(rev)
			shuffled := slices.Clone(vips)
			rand.Shuffle(len(shuffled), func(i, j int) { shuffled[i], shuffled[j] = shuffled[j], shuffled[i] })
			b := assignPool(shuffled, rev)
			for _, v := range vips {
				if !macEqual(a[v], b[v]) {
					t.Fatalf("N=%d M=%d: %s goes to %s or %s depending on the order of the input", n, m, v, a[v], b[v])
				}
			}
		}
	}
	if a := assignPool(testVIPs(4), nil); len(a) != 0 {
		t.Errorf("no members: %d VIPs assigned", len(a))
	}
}

// --priority weights the share: quotas are proportional to it.
func TestAssignPoolWeighted(t *testing.T) {
	members := poolMACs(3)
	members[0].weight = 200 // twice the others
	a := assignPool(testVIPs(64), members)
	l := loads(a)
	// 64 × 200/400 = 32, 64 × 100/400 = 16 each.
	if l[members[0].mac.String()] != 32 || l[members[1].mac.String()] != 16 || l[members[2].mac.String()] != 16 {
		t.Errorf("weighted loads %v, want 32/16/16", l)
	}
}

// moved counts the VIPs whose assignee differs between a and b.
func moved(a, b map[netip.Addr]net.HardwareAddr) int {
	n := 0
	for v, mac := range a {
		if !macEqual(b[v], mac) {
			n++
		}
	}
	return n
}

// A simulation of random joins and leaves: how many VIPs move beyond the
// ones that must (a leaver's own; a joiner's share). Bounded-load
// rendezvous is not free of cascades; the test bounds them and logs them.
func TestAssignPoolMovementSimulation(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	for _, m := range []int{16, 64} {
		all := poolMACs(12)
		vips := testVIPs(m)
		up := slices.Clone(all[:5])
		cur := assignPool(vips, up)
		var leaves, joins, leaveExtra, joinExtra, worstLeave, worstJoin int
		for range 400 {
			var next []poolMember
			join := len(up) <= 2 || (len(up) < len(all) && rng.IntN(2) == 0)
			if join {
				var out []poolMember
				for _, c := range all {
					if !slices.ContainsFunc(up, func(u poolMember) bool { return macEqual(u.mac, c.mac) }) {
						out = append(out, c)
					}
				}
				next = append(slices.Clone(up), out[rng.IntN(len(out))])
			} else {
				i := rng.IntN(len(up))
				next = slices.Delete(slices.Clone(up), i, i+1)
			}
			after := assignPool(vips, next)
			mv := moved(cur, after)
			n := len(next)
			if join {
				joins++
				need := loads(after)[next[n-1].mac.String()]
				joinExtra += mv - need
				worstJoin = max(worstJoin, mv-need)
				if mv > 2*((m+n-1)/n)+4 {
					t.Errorf("M=%d: a join to %d nodes moved %d VIPs", m, n, mv)
				}
			} else {
				leaves++
				own := 0
				for _, mac := range cur {
					if !slices.ContainsFunc(next, func(u poolMember) bool { return macEqual(u.mac, mac) }) {
						own++
					}
				}
				leaveExtra += mv - own
				worstLeave = max(worstLeave, mv-own)
				if mv > 2*own+4 {
					t.Errorf("M=%d: a leave (%d own VIPs) from %d nodes moved %d VIPs", m, own, n+1, mv)
				}
			}
			up, cur = next, after
		}
		t.Logf("M=%d: %d leaves moved %.2f VIPs each beyond the leaver's own (worst %d); %d joins moved %.2f beyond the joiner's share (worst %d)",
			m, leaves, float64(leaveExtra)/float64(leaves), worstLeave, joins, float64(joinExtra)/float64(joins), worstJoin)
	}
}

func TestExpandVIPRanges(t *testing.T) {
	got, err := expandVIPRanges([]string{"192.0.2.50-192.0.2.52", "198.51.100.7", "192.0.2.255-192.0.3.0"})
	want := []string{"192.0.2.50", "192.0.2.51", "192.0.2.52", "198.51.100.7", "192.0.2.255", "192.0.3.0"}
	if err != nil || !slices.Equal(got, want) {
		t.Errorf("got %v, %v; want %v", got, err, want)
	}
	for _, bad := range []string{"192.0.2.9-192.0.2.1", "192.0.2.1-x", "192.0.2.1-", "10.0.0.0-10.1.0.0"} {
		if _, err := expandVIPRanges([]string{bad}); err == nil {
			t.Errorf("%q accepted", bad)
		}
	}
}

// Membership from what a node hears: a newcomer after the hold-down, a
// holder at once; out at once on a release notice, a stand-aside tag or a
// holder watch's verdict, and after poolWindow of silence. The assignment
// follows at once.
func TestPoolMembership(t *testing.T) {
	vips := testVIPs(8)
	g, _ := newTestGroup(t, "02:00:00:00:00:09", 100, vips, false)
	p := newPoolView(g, vips, 5*time.Second)
	now := runGroup(g, &groupLAN{}, t0, t0.Add(6*time.Second), nil) // past our own hold-down, alone
	_ = now
	members := func() []string {
		var out []string
		for _, m := range p.members {
			out = append(out, m.mac.String())
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
		g.dispatch(*frame(arp.OperationRequest, mac, zeroIPv4, peerTag{priority: 100, flags: flags}.hardwareAddr().String(), vips[1]), at)
	}
	tick := func(at time.Time) { p.onTick(at) }

	// A newcomer: a member only after 5 s of presence.
	a := "02:00:00:00:00:01"
	start := t0.Add(6 * time.Second)
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
	if n := len(loads(p.assign)); n != 2 {
		t.Fatalf("the assignment did not follow: %v", loads(p.assign))
	}

	// A holder heard for the first time (a healed partition) is a member at once.
	b := "02:00:00:00:00:02"
	now = start.Add(5500 * time.Millisecond)
	hear(b, flagHolder, now)
	hear(b, flagHolder, now.Add(ms(10)))
	if got := members(); !slices.Contains(got, b) {
		t.Fatalf("a holder is not a member at once: %v", got)
	}

	// A holder watch finds b dead: out at once, before any tick.
	p.gone(mustMAC(b), now.Add(ms(20)))
	if got := members(); slices.Contains(got, b) {
		t.Fatalf("a dead holder is still a member: %v", got)
	}
	for _, mac := range p.assign {
		if mac.String() == b {
			t.Fatal("a VIP is still assigned to the dead holder")
		}
	}

	// a releases (SIGTERM): out at once.
	hear(a, flagReleasing, now.Add(ms(30)))
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
	g.event(evUnhealthy, now.Add(8*time.Second))
	tick(now.Add(8 * time.Second))
	if got := members(); slices.Contains(got, self) {
		t.Fatalf("unhealthy, this node is still a member: %v", got)
	}
}

// A flood of tagged probes from random MACs neither makes members nor keeps
// a real newcomer out of the table.
func TestPoolMembershipFlood(t *testing.T) {
	vips := testVIPs(4)
	g, _ := newTestGroup(t, "02:00:00:00:00:09", 100, vips, false)
	p := newPoolView(g, vips, time.Second)
	rng := rand.New(rand.NewPCG(3, 4))
	now := t0
	for i := range 5000 {
		mac := fmt.Sprintf("06:%02x:%02x:%02x:%02x:%02x", rng.IntN(256), rng.IntN(256), rng.IntN(256), rng.IntN(256), rng.IntN(256))
		now = t0.Add(time.Duration(i) * time.Millisecond)
		g.dispatch(*frame(arp.OperationRequest, mac, zeroIPv4, peerTag{priority: 100}.hardwareAddr().String(), vips[0]), now)
	}
	if len(p.nodes) > maxPeers {
		t.Fatalf("%d nodes recorded", len(p.nodes))
	}
	real := "02:00:00:00:00:01"
	for s := 0; s <= 2; s++ {
		at := now.Add(time.Duration(s) * time.Second)
		g.dispatch(*frame(arp.OperationRequest, real, zeroIPv4, peerTag{priority: 100}.hardwareAddr().String(), vips[1]), at)
		p.onTick(at)
	}
	var got []string
	for _, m := range p.members {
		got = append(got, m.mac.String())
	}
	if !slices.Equal(got, []string{real, "02:00:00:00:00:09"}) {
		t.Fatalf("members after the flood: %v", got)
	}
}
