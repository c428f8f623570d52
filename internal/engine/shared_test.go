package engine

// Who owns which bucket of a shared address through a start, a death, a
// join, a leave, a failing health check, restarts and stalls, checked at
// every step of a simulated LAN (sharednet_test.go).

import (
	"bytes"
	"maps"
	"net"
	"slices"
	"testing"
	"time"
)

// Three nodes started together: each bucket is served by exactly one node
// from the start, and they are balanced within the dead time.
func TestSharedStartTogether(t *testing.T) {
	sn := newSharedNet(t, 3, time.Minute)
	sn.run(sn.at(ms(1000)), sn.neverTwo)
	sn.balanced("after start")
	for _, n := range sn.nodes {
		if n.ups != 1 {
			t.Errorf("%s: the addresses were put up %d times, want once at link up", n.own, n.ups)
		}
		if n.announces == 0 {
			t.Errorf("%s never announced the cluster MAC", n.own)
		}
		if f := n.g.Facts(); f.Shared == nil || len(f.Shared.Mine) != len(n.mine) || len(f.Shared.Owners) != 3 || len(f.Peers) != 2 {
			t.Errorf("%s: facts %+v, peers %+v", n.own, f.Shared, f.Peers)
		}
	}
}

// A node dies: its buckets are served again within the dead time and an
// interval, and no survivor's bucket moves, then or later.
func TestSharedDeathMovesOnlyTheDeadNodesBuckets(t *testing.T) {
	for dead := range 3 {
		sn := newSharedNet(t, 3, time.Minute)
		sn.run(sn.at(2*time.Second+ms(150)), sn.neverTwo) // between two intervals
		sn.balanced("before")
		before := map[*sharedTestNode][]int{}
		for _, n := range sn.nodes {
			before[n] = slices.Clone(n.mine)
		}
		victim := sn.nodes[dead]
		victim.dead = true
		killedAt := sn.now
		var servedAgain time.Time
		sn.run(sn.at(10*time.Second), func(now time.Time) {
			sn.neverTwo(now)
			for _, n := range sn.nodes {
				if n.dead {
					continue
				}
				for _, b := range before[n] {
					if !slices.Contains(n.mine, b) {
						t.Fatalf("survivor %s lost bucket %d when %s died", n.own, b, victim.own)
					}
				}
			}
			if servedAgain.IsZero() && len(sn.owners()) == testBuckets {
				servedAgain = now
			}
		})
		sn.balanced("after the death")
		// Within the dead time (3 × 200 ms) of the last frame, which came
		// before the death.
		if gap := servedAgain.Sub(killedAt); servedAgain.IsZero() || gap > ms(601) {
			t.Fatalf("victim %d: buckets served again after %s", dead, gap)
		}
	}
}

// A node leaving (SIGTERM) hands its buckets over at once.
func TestSharedLeaveHandsOverAtOnce(t *testing.T) {
	sn := newSharedNet(t, 3, time.Minute)
	sn.run(sn.at(2*time.Second), sn.neverTwo)
	leaver := sn.nodes[1]
	leaver.g.Shutdown(sn.now)
	if len(leaver.mine)+len(leaver.draining) != 0 {
		t.Fatalf("after shutdown the leaver still serves %v / %v", leaver.mine, leaver.draining)
	}
	leaver.dead = true
	left := sn.now
	sn.run(left.Add(ms(5)), sn.neverTwo)
	sn.balanced("5 ms after the leave")
}

// A node joins: after its hold-down it takes its share by planned moves.
// The givers drain (established flows) what they give, the taker takes it
// as incoming (new flows only), never two owners at once, and the buckets
// of a move are without an owner for at most takeDelay and an interval.
func TestSharedJoinIsPlanned(t *testing.T) {
	sn := newSharedNet(t, 2, time.Minute)
	sn.run(sn.at(2*time.Second), sn.neverTwo)
	sn.balanced("two nodes")
	joiner := sn.addNode(3)
	joinedAt := sn.now
	unowned := map[int]time.Time{}
	var longest time.Duration
	var sawDrain, sawIncoming bool
	sn.run(joinedAt.Add(10*time.Second), func(now time.Time) {
		sn.neverTwo(now)
		o := sn.owners()
		for b := range testBuckets {
			if len(o[b]) == 0 {
				if _, ok := unowned[b]; !ok {
					unowned[b] = now
				}
			} else if since, ok := unowned[b]; ok {
				longest = max(longest, now.Sub(since))
				delete(unowned, b)
			}
		}
		for _, n := range sn.nodes {
			sawDrain = sawDrain || len(n.draining) > 0 && n != joiner
		}
		sawIncoming = sawIncoming || len(joiner.incoming) > 0
	})
	sn.balanced("three nodes")
	if !sawDrain || !sawIncoming {
		t.Fatalf("a planned move without drain (%v) or incoming (%v)", sawDrain, sawIncoming)
	}
	if len(unowned) > 0 || longest > ms(600) {
		t.Fatalf("buckets without an owner for up to %s (%d still)", longest, len(unowned))
	}
	if len(joiner.mine) == 0 || len(joiner.incoming) != len(joiner.mine) {
		t.Fatalf("the joiner serves %d buckets, %d of them as incoming: want all incoming within the drain", len(joiner.mine), len(joiner.incoming))
	}
	// After the drain, nothing is draining or incoming any more.
	sn.run(sn.now.Add(time.Minute), sn.neverTwo)
	for _, n := range sn.nodes {
		if len(n.draining)+len(n.incoming) != 0 {
			t.Fatalf("%s still drains %v / takes %v after the drain", n.own, n.draining, n.incoming)
		}
	}
}

// A node whose health check fails gives its buckets up at once (no
// drain), and the others take them at once; healthy again, it rejoins
// after the hold-down.
func TestSharedUnhealthyGivesUp(t *testing.T) {
	sn := newSharedNet(t, 3, time.Minute)
	sn.run(sn.at(2*time.Second), sn.neverTwo)
	sick := sn.nodes[0]
	sick.g.Broadcast(EvUnhealthy, sn.now)
	if len(sick.mine)+len(sick.draining) != 0 {
		t.Fatalf("an unhealthy node still serves %v / %v", sick.mine, sick.draining)
	}
	sn.run(sn.now.Add(ms(300)), sn.neverTwo)
	sn.nodes = slices.DeleteFunc(slices.Clone(sn.nodes), func(n *sharedTestNode) bool { return n == sick })
	sn.balanced("without the unhealthy node")
	sn.nodes = append(sn.nodes, sick)
	sick.g.Broadcast(EvHealthy, sn.now)
	sn.run(sn.now.Add(10*time.Second), sn.neverTwo)
	sn.balanced("healthy again")
}

// A node's process starts again (kill -9 and a restart): it serves
// nothing until it joins again, and the others see it at its first frame
// without the holder flag and take its buckets at once, instead of
// leaving them dark for its hold-down; then it rejoins by plan.
func TestSharedRestartedNodeRejoins(t *testing.T) {
	sn := newSharedNet(t, 3, time.Minute)
	sn.run(sn.at(2*time.Second), sn.neverTwo)
	old := sn.nodes[2]
	old.dead = true
	sn.nodes = sn.nodes[:2]
	sn.run(sn.now.Add(ms(50)), sn.neverTwo) // within the dead time: nobody noticed
	restarted := sn.addNode(3)
	sn.run(sn.now.Add(ms(10)), sn.neverTwo)
	sn.nodes = sn.nodes[:2]
	sn.balanced("10 ms after the restart")
	sn.nodes = append(sn.nodes, restarted)
	sn.run(sn.now.Add(10*time.Second), sn.neverTwo)
	sn.balanced("after the rejoin")
}

// Nodes that computed different owners (a step missed, or two seen in
// another order) find out through the digests in their tags and take the
// balanced assignment: after that, every bucket has one owner again.
func TestSharedDisagreementConverges(t *testing.T) {
	sn := newSharedNet(t, 3, time.Minute)
	sn.run(sn.at(2*time.Second), sn.neverTwo)
	// Node 1 believes a history the others did not see: node 2 gives it
	// three of node 3's buckets.
	n1 := sn.nodes[0]
	skewed := maps.Clone(n1.s.owners)
	moved := 0
	for b := range testBuckets {
		if bytes.Equal(skewed[b], sn.nodes[2].own) && moved < 3 {
			skewed[b] = sn.nodes[0].own
			moved++
		}
	}
	n1.s.adopt(n1.s.members, skewed, sn.now, "test: a history of its own", movesLoose)
	sn.run(sn.now.Add(5*time.Second), nil)
	sn.balanced("after the disagreement")
	sn.run(sn.now.Add(5*time.Second), sn.neverTwo)
	for _, n := range sn.nodes[1:] {
		if !maps.EqualFunc(n.s.owners, n1.s.owners, func(a, b net.HardwareAddr) bool { return bytes.Equal(a, b) }) {
			t.Fatalf("%s and %s still disagree", n.own, n1.own)
		}
	}
}

// A node stalls (SIGSTOP) for longer than the dead time: the others take
// its buckets, and when it runs again it serves none of them (its table's
// lease ran out, and it does not renew what the others took); it joins
// again by plan.
func TestSharedStallServesNothingOld(t *testing.T) {
	sn := newSharedNet(t, 3, time.Minute)
	sn.run(sn.at(2*time.Second), sn.neverTwo)
	stalled := sn.nodes[1]
	stalled.paused = true
	sn.run(sn.now.Add(2*time.Second), sn.neverTwo)
	sn.nodes = []*sharedTestNode{sn.nodes[0], sn.nodes[2]}
	sn.balanced("during the stall")
	sn.nodes = append(sn.nodes, stalled)
	stalled.paused = false
	sn.run(sn.now.Add(10*time.Second), sn.neverTwo)
	sn.balanced("after the stall")
}

// Two nodes restart one after the other while the third serves: they are
// newcomers to every node alike, so the nodes never disagree on who owns
// what (the chaos run found a restart while another restarted counted
// as a node of the running group by one node only).
func TestSharedTwoRestarts(t *testing.T) {
	sn := newSharedNet(t, 3, time.Minute)
	sn.run(sn.at(2*time.Second), sn.neverTwo)
	sn.nodes[0].dead = true
	sn.run(sn.now.Add(ms(100)), sn.neverTwo)
	first := sn.addNode(1)
	sn.run(sn.now.Add(ms(4900)), sn.neverTwo)
	sn.nodes[1].dead = true
	sn.run(sn.now.Add(ms(100)), sn.neverTwo)
	second := sn.addNode(2)
	sn.run(sn.now.Add(ms(300)), sn.neverTwo)
	second.g.Broadcast(EvUnhealthy, sn.now) // the chaos run's next step
	sn.run(sn.now.Add(5*time.Second), sn.neverTwo)
	live := []*sharedTestNode{first, sn.nodes[2]}
	sn.nodes = live
	sn.balanced("two restarts later")
	if !maps.EqualFunc(first.s.owners, live[1].s.owners, func(a, b net.HardwareAddr) bool { return bytes.Equal(a, b) }) {
		t.Fatal("the nodes disagree on the owners")
	}
}

// The node a planned take waits for leaves in the meantime: the taker
// serves the bucket at once, not at the end of its delay.
func TestSharedPlannedTakeFromALeaver(t *testing.T) {
	sn := newSharedNet(t, 2, time.Minute)
	sn.run(sn.at(2*time.Second), sn.neverTwo)
	joiner := sn.addNode(3)
	// Until the joiner has planned its takes (its hold-down), and past
	// the skew of a join: the takes are pending.
	sn.run(sn.now.Add(5*time.Second+ms(300)), sn.neverTwo)
	pending := 0
	for _, b := range joiner.s.buckets {
		if !b.takeAt.IsZero() {
			pending++
		}
	}
	if pending == 0 {
		t.Fatal("no planned take pending: the test tests nothing")
	}
	leaver := sn.nodes[0]
	fromLeaver := 0
	for _, b := range joiner.s.buckets {
		if !b.takeAt.IsZero() && bytes.Equal(b.takeFrom, leaver.own) {
			fromLeaver++
		}
	}
	if fromLeaver == 0 {
		t.Fatal("no planned take from the leaver: the test tests nothing")
	}
	leaver.g.Shutdown(sn.now)
	leaver.dead = true
	sn.run(sn.now.Add(ms(5)), sn.neverTwo)
	// Served 5 ms later: every bucket but those still moving by plan
	// between the two that stay.
	o := sn.owners()
	for i, b := range joiner.s.buckets {
		if len(o[i]) == 0 && (b.takeAt.IsZero() || bytes.Equal(b.takeFrom, leaver.own)) {
			t.Errorf("bucket %d served by nobody 5 ms after its giver left (pending take from %s)", i, b.takeFrom)
		}
	}
}

// The nodes that serve leave while two others are newcomers to each
// other (each came back from a stall): both are members at once on both
// sides, so they split the buckets without serving any twice.
func TestSharedNewcomersWhenTheServersLeave(t *testing.T) {
	sn := newSharedNet(t, 3, time.Minute)
	sn.run(sn.at(2*time.Second), sn.neverTwo)
	a, server, b := sn.nodes[0], sn.nodes[1], sn.nodes[2]
	a.paused, b.paused = true, true
	sn.run(sn.now.Add(time.Second), sn.neverTwo)
	a.paused, b.paused = false, false
	sn.run(sn.now.Add(ms(1500)), sn.neverTwo)
	server.g.Shutdown(sn.now)
	server.dead = true
	sn.run(sn.now.Add(2*time.Second), sn.neverTwo)
	sn.nodes = []*sharedTestNode{a, b}
	sn.balanced("after the server left")
}

// A node stops right after a change of its sets between two intervals (an
// incoming window ends): its table's lease runs from that change, so the
// others must count its silence from it too; no bucket is served twice.
func TestSharedStopRightAfterAChange(t *testing.T) {
	sn := newSharedNet(t, 2, time.Minute)
	sn.run(sn.at(2*time.Second), sn.neverTwo)
	joiner := sn.addNode(3)
	sn.run(sn.now.Add(6*time.Second+ms(130)), sn.neverTwo) // between two of its ticks
	changed := false
	for i, b := range joiner.s.buckets {
		if !b.incomingUntil.IsZero() {
			joiner.s.buckets[i].incomingUntil = sn.now
			changed = true
			break
		}
	}
	if !changed {
		t.Fatal("no incoming bucket to end")
	}
	joiner.s.timers(sn.now) // the window ends: the sets change now
	joiner.paused = true    // SIGSTOP right after it
	sn.run(sn.now.Add(3*time.Second), sn.neverTwo)
}
