package pool

import (
	"bytes"
	"math/rand/v2"
	"net"
	"net/netip"
	"slices"
	"testing"

	"floatip/internal/fiptest"
)

func poolMACs(n int) []Member {
	ms := make([]Member, n)
	for i := range ms {
		ms[i] = Member{MAC: fiptest.MustMAC(fiptest.HostMAC(i + 1)), Weight: 100}
	}
	return ms
}

// Every VIP gets exactly one member, each member ⌊M/N⌋ or ⌈M/N⌉, whatever
// the order the members are listed in.
func TestAssignPoolBalanced(t *testing.T) {
	for _, n := range []int{1, 2, 3, 5, 7} {
		for _, m := range []int{1, 3, 8, 16, 64, 256} {
			members := poolMACs(n)
			vips := fiptest.VIPs(m)
			a := Assign(vips, members)
			if len(a) != m {
				t.Fatalf("N=%d M=%d: %d VIPs assigned", n, m, len(a))
			}
			lo, hi := m/n, (m+n-1)/n
			l := fiptest.Loads(a)
			for _, mem := range members {
				if got := l[mem.MAC.String()]; got < lo || got > hi {
					t.Errorf("N=%d M=%d: %s holds %d, want %d..%d", n, m, mem.MAC, got, lo, hi)
				}
			}
			rev := slices.Clone(members)
			slices.Reverse(rev)
			shuffled := slices.Clone(vips)
			rand.Shuffle(len(shuffled), func(i, j int) { shuffled[i], shuffled[j] = shuffled[j], shuffled[i] })
			b := Assign(shuffled, rev)
			for _, v := range vips {
				if !bytes.Equal(a[v], b[v]) {
					t.Fatalf("N=%d M=%d: %s goes to %s or %s depending on the order of the input", n, m, v, a[v], b[v])
				}
			}
		}
	}
	if a := Assign(fiptest.VIPs(4), nil); len(a) != 0 {
		t.Errorf("no members: %d VIPs assigned", len(a))
	}
}

// --priority weights the share: quotas are proportional to it.
func TestAssignPoolWeighted(t *testing.T) {
	members := poolMACs(3)
	members[0].Weight = 200 // twice the others
	a := Assign(fiptest.VIPs(64), members)
	l := fiptest.Loads(a)
	// 64 × 200/400 = 32, 64 × 100/400 = 16 each.
	if l[members[0].MAC.String()] != 32 || l[members[1].MAC.String()] != 16 || l[members[2].MAC.String()] != 16 {
		t.Errorf("weighted loads %v, want 32/16/16", l)
	}
}

// moved counts the VIPs whose assignee differs between a and b.
func moved(a, b map[netip.Addr]net.HardwareAddr) int {
	n := 0
	for v, mac := range a {
		if !bytes.Equal(b[v], mac) {
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
		vips := fiptest.VIPs(m)
		up := slices.Clone(all[:5])
		cur := Assign(vips, up)
		var leaves, joins, leaveExtra, joinExtra, worstLeave, worstJoin int
		for range 400 {
			var next []Member
			join := len(up) <= 2 || (len(up) < len(all) && rng.IntN(2) == 0)
			if join {
				var out []Member
				for _, c := range all {
					if !slices.ContainsFunc(up, func(u Member) bool { return bytes.Equal(u.MAC, c.MAC) }) {
						out = append(out, c)
					}
				}
				next = append(slices.Clone(up), out[rng.IntN(len(out))])
			} else {
				i := rng.IntN(len(up))
				next = slices.Delete(slices.Clone(up), i, i+1)
			}
			after := Assign(vips, next)
			mv := moved(cur, after)
			n := len(next)
			if join {
				joins++
				need := fiptest.Loads(after)[next[n-1].MAC.String()]
				joinExtra += mv - need
				worstJoin = max(worstJoin, mv-need)
				if mv > 2*((m+n-1)/n)+4 {
					t.Errorf("M=%d: a join to %d nodes moved %d VIPs", m, n, mv)
				}
			} else {
				leaves++
				own := 0
				for _, mac := range cur {
					if !slices.ContainsFunc(next, func(u Member) bool { return bytes.Equal(u.MAC, mac) }) {
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
