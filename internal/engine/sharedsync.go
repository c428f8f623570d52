package engine

// The nodes of a shared address agree on the owners of the buckets as long
// as they saw the same membership changes (a death keeps what each survivor
// held, so the owners depend on the history). Two ways that can fail, and
// what brings the nodes back together:
//   - a node misses a step, or sees two in another order (a death and a
//     join within an interval of each other): every node puts a 4-bit
//     digest of the owners it computes in the high bits of its tag's flags,
//     and nodes whose digests differ for disagreeAfter take the balanced
//     assignment (pool.AssignBuckets, the same on every node);
//   - frames lost on one node's port make others find it dead while the
//     rest still hear it: when it is heard again after a short silence,
//     still serving by the assignment in force before its death (its
//     digest), the nodes that found it dead take that assignment back, and
//     nothing else moves;
//   - the process stalls (SIGSTOP, a paused VM) for longer than the dead
//     time: the others have taken its buckets, so it serves nothing and
//     comes back as a restarted node.

import (
	"bytes"
	"hash/fnv"
	"net"
	"slices"
	"time"

	"floatip/internal/pool"
)

// digestShift: the tag's flags bits 4..7 carry the digest (bits 0..2 are
// holder, releasing and stand aside).
const digestShift = 4

// disagreeAfter is how long two members' digests may differ before they
// take the balanced assignment: longer than the skew of a membership change
// between the nodes (an interval), so that a change in progress moves
// nothing.
func (s *SharedView) disagreeAfter() time.Duration {
	return max(time.Second, 5*s.group.cfg.Interval)
}

// ownersDigest folds the owners of every bucket into 4 bits.
func ownersDigest(owners map[int]net.HardwareAddr, buckets int) uint8 {
	h := fnv.New32a()
	for b := range buckets {
		h.Write(owners[b])
		h.Write([]byte{0})
	}
	x := h.Sum32()
	x ^= x >> 16
	x ^= x >> 8
	x ^= x >> 4
	return uint8(x & 0x0f)
}

// isSelfMember reports whether this node is one of the members.
func (s *SharedView) isSelfMember() bool { return pool.Has(s.members, s.group.arp.MAC()) }

// checkAgreement compares the digests of the serving members with ours,
// and takes the balanced assignment when one has differed for
// disagreeAfter.
func (s *SharedView) checkAgreement(now time.Time) {
	if !s.isSelfMember() {
		return
	}
	disagree := false
	for _, m := range s.members {
		n := s.nodes[string(m.MAC)]
		if n == nil || !n.holder {
			continue
		}
		switch {
		case n.digest == s.digest:
			n.mismatchSince = time.Time{}
		case n.mismatchSince.IsZero():
			n.mismatchSince = now
		case now.Sub(n.mismatchSince) >= s.disagreeAfter():
			disagree = true
		}
	}
	if !disagree {
		return
	}
	for _, n := range s.nodes {
		n.mismatchSince = time.Time{}
	}
	balanced := pool.AssignBuckets(s.cfg.Buckets, s.members)
	if ownersDigest(balanced, s.cfg.Buckets) == s.digest {
		return // ours is the balanced one already: the others come to it
	}
	s.adopt(s.members, balanced, now, "shared address: the nodes disagree on the owners of the buckets: taking the balanced assignment", movesLoose)
}

// sharedAssignment is an assignment this node had: its members, owners,
// their digest, and whether it knew them.
type sharedAssignment struct {
	members []pool.Member
	owners  map[int]net.HardwareAddr
	digest  uint8
	known   bool // ownersKnown when it was in force
}

// falseDeathSilence is the longest silence after which a node heard back
// may have been found dead only because of lost frames: a few probes lost
// past the dead time. A longer one is a partition or a stall, after which
// the node has likely changed its owners too, and a 4-bit digest that
// matches the old ones may be a coincidence.
func (s *SharedView) falseDeathSilence() time.Duration {
	return s.deadTime() + 2*s.group.cfg.Interval
}

// cameBackServing returns, when the change to ms is only the return of
// nodes found dead here after a short silence (falseDeathSilence), that
// serve and carry the digest of the assignment in force before that death,
// that assignment; else nil. Only frames were lost: they and the nodes
// that did not find them dead still serve by it, and the others that did
// take it back too.
func (s *SharedView) cameBackServing(ms []pool.Member) map[int]net.HardwareAddr {
	self := s.group.arp.MAC()
	before := s.beforeLoss
	if !s.isSelfMember() || before.owners == nil || !slices.EqualFunc(before.members, ms, sameMember) {
		return nil
	}
	joined := false
	for _, m := range ms {
		if pool.Has(s.members, m.MAC) {
			continue
		}
		n := s.nodes[string(m.MAC)]
		if bytes.Equal(m.MAC, self) || n == nil || !n.holder || !n.member || n.digest != before.digest || n.silence > s.falseDeathSilence() {
			return nil
		}
		joined = true
	}
	if !joined {
		return nil
	}
	return before.owners
}

// othersServedBy reports whether every other serving member of ms serves
// by the owners whose digest is before: it carries that digest, or has
// just moved from it to ours (it saw the same change first). False when
// no other member serves.
func (s *SharedView) othersServedBy(ms []pool.Member, before uint8) bool {
	self := s.group.arp.MAC()
	found := false
	for _, m := range ms {
		n := s.nodes[string(m.MAC)]
		if bytes.Equal(m.MAC, self) || n == nil || !n.holder || !n.member {
			continue
		}
		if n.digest != before && (n.digest != s.digest || n.prevDigest != before) {
			return false
		}
		found = true
	}
	return found
}

func sameMember(a, b pool.Member) bool { return bytes.Equal(a.MAC, b.MAC) && a.Weight == b.Weight }

// checkStall notices that this node's loop did not run for longer than the
// dead time: the others found it silent and took its buckets, which it
// must not serve again. It forgets its part and joins again.
func (s *SharedView) checkStall(now time.Time) {
	pause := now.Sub(s.lastRun)
	stalled := !s.lastRun.IsZero() && pause > s.deadTime()
	if now.After(s.lastRun) {
		s.lastRun = now
	}
	if !stalled {
		return
	}
	s.group.log.Warn("shared address: this node stalled for longer than the dead time; serving nothing until it joins again",
		"stalled", pause.String())
	for i := range s.buckets {
		s.buckets[i] = bucket{}
	}
	s.members, s.owners = nil, map[int]net.HardwareAddr{}
	clear(s.takeDue)
	s.beforeLoss = sharedAssignment{}
	if !s.selfSince.IsZero() {
		s.selfSince = now
	}
	s.apply(now, applyChanged)
}
