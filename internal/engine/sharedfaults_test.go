package engine

// Shared address buckets through the faults of a LAN: frames lost on one
// node's port, a partition and its heal (sharednet_test.go's simulated
// LAN). Found by the chaos run (docs/chaos.md).

import (
	"slices"
	"testing"
	"time"
)

// Node 1 loses node 2's frames long enough to find it dead, while the
// others hear it: node 1 takes a part of node 2's buckets, and when node 2
// is heard again, node 1 takes the assignment the others never left. No
// bucket goes unserved, and nobody else's bucket moves.
func TestSharedFalseDeathTakesTheAssignmentBackAtOnce(t *testing.T) {
	sn := newSharedNet(t, 4, time.Minute)
	sn.run(sn.at(2*time.Second), sn.neverTwo)
	sn.nodes[3].dead = true // the survivors keep an assignment that is not the balanced one
	sn.run(sn.at(4*time.Second), sn.neverTwo)
	before := map[*sharedTestNode][]int{}
	for _, n := range sn.nodes[:3] {
		before[n] = slices.Clone(n.mine)
	}
	n1, n2 := sn.nodes[0], sn.nodes[1]
	lostUntil := sn.at(4*time.Second + ms(800))
	sn.lost = func(from, to *sharedTestNode) bool { return from == n2 && to == n1 && sn.now.Before(lostUntil) }
	g := sn.gaps()
	sawDead := false
	sn.run(sn.at(10*time.Second), func(now time.Time) {
		g.check(now)
		if len(n1.s.members) == 2 {
			sawDead = true
		}
		if now.After(lostUntil.Add(ms(300))) {
			sn.neverTwo(now)
		}
	})
	if !sawDead {
		t.Fatal("node 1 never found node 2 dead: the test loses too few frames")
	}
	if g.longest > 0 {
		t.Fatalf("bucket %d served by nobody for %v", g.bucket, g.longest)
	}
	for n, mine := range before {
		if !slices.Equal(n.mine, mine) {
			t.Errorf("%s serves %v, want %v as before", n.own, n.mine, mine)
		}
		if n.s.digest != n1.s.digest {
			t.Errorf("%s: digest %x, node 1's %x", n.own, n.s.digest, n1.s.digest)
		}
	}
}

// Node 1 is cut off and served every bucket meanwhile; when the partition
// heals it hears the others one frame at a time, and each partial view
// moves buckets. A bucket given to a node that has not taken it yet is
// taken back at once when the next frame gives it back: no bucket goes
// unserved after the heal.
func TestSharedHealHearingNodesOneAtATime(t *testing.T) {
	for cut := range 5 {
		sn := newSharedNet(t, 5, time.Minute)
		sn.run(sn.at(2*time.Second), sn.neverTwo)
		n1 := sn.nodes[cut]
		healAt := sn.at(3500 * time.Millisecond)
		sn.lost = func(from, to *sharedTestNode) bool {
			return (from == n1 || to == n1) && sn.now.Before(healAt)
		}
		sn.run(healAt, nil)
		if len(n1.mine) != testBuckets {
			t.Fatalf("node %d serves %d buckets alone, want all %d", cut+1, len(n1.mine), testBuckets)
		}
		g := sn.gaps()
		sn.run(sn.at(10*time.Second), g.check)
		if g.longest > 0 {
			t.Fatalf("node %d cut off: after the heal, bucket %d served by nobody for %v", cut+1, g.bucket, g.longest)
		}
		sn.balanced("after the heal")
	}
}
