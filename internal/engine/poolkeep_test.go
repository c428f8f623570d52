package engine

// A death in a pool moves only the dead node's VIPs (pool.Keep over the
// observed holders); the next join restores the canonical assignment.

import (
	"bytes"
	"fmt"
	"net/netip"
	"slices"
	"strings"
	"testing"
	"time"

	"floatip/internal/fiptest"
	"floatip/internal/pool"
)

func newPoolNetMACs(t *testing.T, macs []string, vips []netip.Addr, holdDown time.Duration) *poolNet {
	pn := &poolNet{t: t, now: fiptest.T0, macs: macs}
	for i := 1; i <= len(macs); i++ {
		pn.addNode(i, vips, holdDown)
	}
	return pn
}

func membersOf(nodes []*poolTestNode) []pool.Member {
	var ms []pool.Member
	for _, n := range nodes {
		if !n.dead {
			ms = append(ms, pool.Member{MAC: n.own, Weight: 100})
		}
	}
	slices.SortFunc(ms, func(a, b pool.Member) int { return bytes.Compare(a.MAC, b.MAC) })
	return ms
}

// 5 nodes × 16 VIPs with MACs other than the lab's. Each node in turn dies
// (no release notice): no VIP held by a survivor ever changes holder (not
// even for an instant, not later by a planned move), every VIP ends with one
// holder among the survivors, 4 each. Then the dead node comes back: after
// its hold-down it takes its share, make before break, and the group is on
// the canonical assignment again, every node agreeing on it. "two" kills
// two nodes at once, which the survivors find dead in differing orders.
func TestPoolLANDeathMovesOnlyTheDeadNodesVIPs(t *testing.T) {
	vips := fiptest.VIPs(16)
	macs := fiptest.SeededMACs(3, 5)
	all := membersOf(newPoolNetMACs(t, macs, nil, time.Second).nodes)
	canonical := pool.Assign(vips, all)
	reshuffled := 0 // what recomputing the canonical assignment after each death would move
	for d := range all {
		fewer := slices.Delete(slices.Clone(all), d, d+1)
		a4 := pool.Assign(vips, fewer)
		for _, v := range vips {
			if !bytes.Equal(canonical[v], all[d].MAC) && !bytes.Equal(canonical[v], a4[v]) {
				reshuffled++
			}
		}
	}
	if reshuffled == 0 {
		t.Fatal("with these MACs no death reshuffles the canonical assignment: the test proves nothing")
	}
	t.Logf("MACs %s: the canonical assignment of the survivors would move %d survivors' VIPs over the 5 deaths", strings.Join(macs, " "), reshuffled)

	for d := range macs {
		t.Run(fmt.Sprintf("kill-h%d", d+1), func(t *testing.T) { testPoolDeathKeeps(t, macs, vips, []int{d}) })
	}
	t.Run("kill-h2-h4", func(t *testing.T) { testPoolDeathKeeps(t, macs, vips, []int{1, 3}) })
}

func testPoolDeathKeeps(t *testing.T, macs []string, vips []netip.Addr, kill []int) {
	pn := newPoolNetMACs(t, macs, vips, 5*time.Second)
	pn.run(fiptest.T0.Add(8 * time.Second))
	before := pn.checkBalanced("start", vips)
	canonical := pool.Assign(vips, membersOf(pn.nodes))
	for _, v := range vips {
		if !bytes.Equal(before[v].own, canonical[v]) {
			t.Fatalf("start: %s held by %s, assigned to %s", v, before[v].own, canonical[v])
		}
	}

	var dead []*poolTestNode
	for _, i := range kill {
		pn.nodes[i].dead = true
		dead = append(dead, pn.nodes[i])
	}
	// Every 10 ms for 12 s (past the failover, the settle time, the orphan
	// fallback and several pool windows): a survivor's VIP has its holder
	// and only it.
	death := pn.now
	var allBack time.Time
	for pn.now.Before(death.Add(12 * time.Second)) {
		pn.run(pn.now.Add(ms(10)))
		h := pn.holders()
		for _, v := range vips {
			if slices.Contains(dead, before[v]) {
				continue
			}
			if len(h[v]) != 1 || h[v][0] != before[v] {
				var on []string
				for _, n := range h[v] {
					on = append(on, n.own.String())
				}
				t.Fatalf("%v after the death: %s, held by the survivor %s, is on %v", pn.now.Sub(death), v, before[v].own, on)
			}
		}
		if allBack.IsZero() && len(h) == len(vips) {
			allBack = pn.now
		}
	}
	t.Logf("the dead nodes' VIPs held again %v after the death", allBack.Sub(death))
	after := pn.checkBalanced("after the death", vips) // one holder each, 16/N..⌈16/N⌉
	survivors := membersOf(pn.nodes)
	for _, n := range pn.nodes {
		if n.dead {
			continue
		}
		if !n.g.pool.keep {
			t.Errorf("%s is not keeping after the death", n.own)
		}
		for _, v := range vips {
			if !bytes.Equal(n.g.pool.assign[v], after[v].own) {
				t.Errorf("%s sees %s assigned to %s, held by %s", n.own, v, n.g.pool.assign[v], after[v].own)
			}
		}
	}
	if want := pool.Keep(vips, canonical, survivors); len(kill) == 1 {
		for _, v := range vips {
			if !bytes.Equal(after[v].own, want[v]) {
				t.Errorf("after the death %s is on %s, pool.Keep puts it on %s", v, after[v].own, want[v])
			}
		}
	}

	// The dead come back (restarts): nothing moves in their hold-down, then
	// the canonical assignment, make before break.
	for _, i := range kill {
		pn.nodes[i] = nil
	}
	pn.nodes = slices.DeleteFunc(pn.nodes, func(n *poolTestNode) bool { return n == nil })
	var back []*poolTestNode
	for _, i := range kill {
		back = append(back, pn.addNode(i+1, vips, 5*time.Second))
	}
	start := pn.now
	for pn.now.Before(start.Add(10 * time.Second)) {
		pn.run(pn.now.Add(ms(10)))
		if n := len(pn.holders()); n != len(vips) {
			t.Fatalf("%v after the rejoin only %d VIPs held: a planned move broke before it made", pn.now.Sub(start), n)
		}
		for _, b := range back {
			if pn.now.Sub(start) < 5*time.Second && len(b.held) > 0 {
				t.Fatalf("%s took a VIP %v after its start, inside its hold-down", b.own, pn.now.Sub(start))
			}
		}
	}
	final := pn.checkBalanced("after the rejoin", vips)
	for _, v := range vips {
		if !bytes.Equal(final[v].own, canonical[v]) {
			t.Errorf("after the rejoin %s is on %s, assigned to %s", v, final[v].own, canonical[v])
		}
	}
	for _, n := range pn.nodes {
		if n.g.pool.keep || !sameAssignment(n.g.pool.assign, canonical) {
			t.Errorf("after the rejoin %s is not on the canonical assignment (keeping: %v)", n.own, n.g.pool.keep)
		}
	}
}

// After a death two survivors may, for a moment, both claim a dead node's
// VIP (they found the deaths in different orders). The rank settles it, and
// the loser then counts the VIP as the winner's: nothing moves back, and
// every node agrees. A holder that is no member (a killed daemon's stale
// copy) loses to the assignee, as before.
func TestPoolLANKeepSettlesADoubleClaimByRank(t *testing.T) {
	vips := fiptest.VIPs(16)
	pn := newPoolNetMACs(t, fiptest.SeededMACs(3, 5), vips, 2*time.Second)
	pn.run(fiptest.T0.Add(5 * time.Second))
	start := pn.checkBalanced("start", vips)
	a, b, dead := pn.nodes[0], pn.nodes[1], pn.nodes[4]
	var v netip.Addr // a VIP of a
	for _, x := range vips {
		if start[x] == a {
			v = x
			break
		}
	}
	rankA := rank{priority: 100, mac: a.own}
	byRankA := resolveConflict(rankA, rank{priority: 100, mac: b.own}, true)
	if got := a.g.pool.resolve(v, b.own, byRankA); got != defend {
		t.Fatalf("canonical: the assignee does not win (%v)", got)
	}

	dead.dead = true
	pn.run(pn.now.Add(3 * time.Second))
	after := pn.checkBalanced("after the death", vips)
	if !a.g.pool.keep {
		t.Fatal("not keeping after the death")
	}
	if got := a.g.pool.resolve(v, b.own, byRankA); got != byRankA {
		t.Errorf("keeping, between two members: %v, want the rank's %v", got, byRankA)
	}
	if got := a.g.pool.resolve(v, dead.own, yield); got != defend {
		t.Errorf("keeping, against a holder that is no member: %v, want defend", got)
	}

	// b claims a's VIP as if it believed it its own.
	b.g.machines[v].claim(pn.now, "test: a double claim", "test")
	winner, loser := a, b
	if resolveConflict(rankA, rank{priority: 100, mac: b.own}, true) == yield {
		winner, loser = b, a
	}
	pn.run(pn.now.Add(5 * time.Second))
	for range 100 { // 10 s more: nothing moves back
		pn.run(pn.now.Add(ms(100)))
		h := pn.holders()
		if len(h[v]) != 1 || h[v][0] != winner {
			t.Fatalf("%s is on %d nodes (want the better-ranked %s only; %s lost)", v, len(h[v]), winner.own, loser.own)
		}
		for _, x := range vips {
			if x != v && (len(h[x]) != 1 || h[x][0] != after[x]) {
				t.Fatalf("%s moved", x)
			}
		}
	}
	for _, n := range pn.nodes {
		if !n.dead && !bytes.Equal(n.g.pool.assign[v], winner.own) {
			t.Errorf("%s sees %s assigned to %s, held by %s", n.own, v, n.g.pool.assign[v], winner.own)
		}
	}
}
