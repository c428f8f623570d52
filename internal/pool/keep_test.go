package pool

import (
	"bytes"
	"fmt"
	"net"
	"slices"
	"testing"
)

func bucketList(n int) []int {
	b := make([]int, n)
	for i := range b {
		b[i] = i
	}
	return b
}

func bucketLoads(a map[int]net.HardwareAddr) map[string]int {
	l := map[string]int{}
	for _, mac := range a {
		l[mac.String()]++
	}
	return l
}

// Every bucket has one owner, each member ⌊B/N⌋ or ⌈B/N⌉.
func TestAssignBucketsBalanced(t *testing.T) {
	for _, n := range []int{1, 2, 3, 5, 7} {
		for _, b := range []int{64, 100, 256, 1024} {
			members := poolMACs(n)
			a := AssignBuckets(b, members)
			if len(a) != b {
				t.Fatalf("N=%d B=%d: %d buckets assigned", n, b, len(a))
			}
			l := bucketLoads(a)
			for _, m := range members {
				if got := l[m.MAC.String()]; got < b/n || got > (b+n-1)/n {
					t.Errorf("N=%d B=%d: %s owns %d, want %d..%d", n, b, m.MAC, got, b/n, (b+n-1)/n)
				}
			}
		}
	}
}

// A death moves only the dead member's buckets, and the survivors stay
// within ⌊B/N⌋..⌈B/N⌉ of the new N; deaths in a row keep both promises.
func TestKeepMovesOnlyTheDeadMembersBuckets(t *testing.T) {
	for _, n := range []int{2, 3, 4, 5, 8} {
		for _, b := range []int{64, 256} {
			for dead := range n {
				members := poolMACs(n)
				before := AssignBuckets(b, members)
				for len(members) > 1 {
					gone := members[dead%len(members)].MAC
					survivors := slices.DeleteFunc(slices.Clone(members), func(m Member) bool { return bytes.Equal(m.MAC, gone) })
					after := Keep(bucketList(b), before, survivors)
					for k, owner := range before {
						if !bytes.Equal(owner, gone) && !bytes.Equal(after[k], owner) {
							t.Fatalf("N=%d B=%d: bucket %d of survivor %s moved to %s when %s died", len(members), b, k, owner, after[k], gone)
						}
						if bytes.Equal(after[k], gone) || after[k] == nil {
							t.Fatalf("N=%d B=%d: bucket %d left with %v", len(members), b, k, after[k])
						}
					}
					l, s := bucketLoads(after), len(survivors)
					for _, m := range survivors {
						if got := l[m.MAC.String()]; got < b/s || got > (b+s-1)/s {
							t.Errorf("N=%d→%d B=%d: %s owns %d, want %d..%d", len(members), s, b, m.MAC, got, b/s, (b+s-1)/s)
						}
					}
					members, before = survivors, after
				}
			}
		}
	}
}

// Keep weighs like Assign: a member of twice the weight takes twice the
// orphans' share.
func TestKeepWeighted(t *testing.T) {
	members := poolMACs(3)
	members[0].Weight = 200
	before := AssignBuckets(64, members)
	after := Keep(bucketList(64), before, members[:2])
	l := bucketLoads(after)
	if a, b := l[members[0].MAC.String()], l[members[1].MAC.String()]; a < 2*b-2 || a > 2*b+2 {
		t.Fatalf("weights 200:100 hold %d:%d", a, b)
	}
}

func TestOnlyLeft(t *testing.T) {
	m := poolMACs(4)
	heavier := slices.Clone(m[:2])
	heavier[0].Weight = 50
	for _, c := range []struct {
		before, after []Member
		want          bool
	}{
		{m, m[:3], true},
		{m, m[1:2], true},
		{m[:3], m, false},                    // a join
		{m[:3], m[:3], false},                // no change
		{m[:3], []Member{m[0], m[3]}, false}, // one left, another joined
		{m[:3], heavier, false},              // a weight changed
	} {
		if got := OnlyLeft(c.before, c.after); got != c.want {
			t.Errorf("OnlyLeft(%s) = %v, want %v", fmt.Sprint(len(c.before), "→", len(c.after)), got, c.want)
		}
	}
}

func TestHas(t *testing.T) {
	m := poolMACs(3)
	other := poolMACs(4)[3].MAC
	if !Has(m, slices.Clone(m[1].MAC)) || Has(m, other) || Has(m, nil) || Has(nil, m[0].MAC) {
		t.Error("Has is wrong")
	}
}
