package engine

// The nodes of a shared address agree on the owners of the buckets as long
// as they saw the same membership changes (a death keeps what each survivor
// held, so the owners depend on the history). Two ways that can fail, and
// what brings the nodes back together:
//   - a node misses a step, or sees two in another order (a death and a
//     join within an interval of each other): every node puts a 4-bit
//     digest of the owners it computes in the high bits of its tag's flags.
//     A node that remembers the assignment all the others carry (the
//     history of its last ones) takes it again, alone; otherwise nodes
//     whose digests differ for disagreeAfter take the balanced assignment
//     (pool.AssignBuckets, the same on every node), by planned moves;
//   - frames lost on one node's port make it find another dead that the
//     others still hear: when that node is heard again, serving by an
//     assignment this node remembers for the same members, this node takes
//     it again, and nothing else moves;
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
func (s *SharedView) isSelfMember() bool {
	self := s.group.arp.MAC()
	for _, m := range s.members {
		if bytes.Equal(m.MAC, self) {
			return true
		}
	}
	return false
}

// checkAgreement compares the digests of the serving members with ours.
// When all the others agree on one this node remembers for the same
// members, for longer than the skew of a change, it takes that one at once
// (only this node moves). Otherwise, when one has differed for
// disagreeAfter, it takes the balanced assignment.
func (s *SharedView) checkAgreement(now time.Time) {
	if !s.isSelfMember() {
		return
	}
	disagree, settled := false, true
	for _, m := range s.members {
		n := s.nodes[string(m.MAC)]
		if n == nil || !n.holder {
			continue
		}
		switch {
		case n.digest == s.digest:
			n.mismatchSince = time.Time{}
			continue
		case n.mismatchSince.IsZero():
			n.mismatchSince = now
		}
		settled = settled && now.Sub(n.mismatchSince) >= s.joinSkew()
		disagree = disagree || now.Sub(n.mismatchSince) >= s.disagreeAfter()
	}
	if settled {
		if d, ok := s.othersDigest(s.members, false); ok && d != s.digest {
			if owners := s.remembered(s.members, d); owners != nil {
				s.clearMismatch()
				s.adopt(s.members, owners, now, "shared address: the other nodes serve by an earlier assignment of the same members: taking it again", movesDone)
				return
			}
		}
	}
	if !disagree {
		return
	}
	s.clearMismatch()
	balanced := pool.AssignBuckets(s.cfg.Buckets, s.members)
	if ownersDigest(balanced, s.cfg.Buckets) == s.digest {
		return // ours is the balanced one already: the others come to it
	}
	s.adopt(s.members, balanced, now, "shared address: the nodes disagree on the owners of the buckets: taking the balanced assignment", movesLoose)
}

func (s *SharedView) clearMismatch() {
	for _, n := range s.nodes {
		n.mismatchSince = time.Time{}
	}
}

// sharedAssignment is an assignment this node adopted: its members, owners
// and their digest.
type sharedAssignment struct {
	members []pool.Member
	owners  map[int]net.HardwareAddr
	digest  uint8
}

// historyLength bounds the assignments remembered: enough for a false
// death and its return, or a few changes while the nodes disagree.
const historyLength = 8

func (s *SharedView) remember(ms []pool.Member, owners map[int]net.HardwareAddr) {
	s.history = append(s.history, sharedAssignment{members: ms, owners: owners, digest: ownersDigest(owners, s.cfg.Buckets)})
	if len(s.history) > historyLength {
		s.history = slices.Delete(s.history, 0, len(s.history)-historyLength)
	}
}

// remembered returns the latest assignment this node adopted for exactly
// the members ms whose digest is d (nil: none).
func (s *SharedView) remembered(ms []pool.Member, d uint8) map[int]net.HardwareAddr {
	for i := len(s.history) - 1; i >= 0; i-- {
		h := s.history[i]
		if h.digest == d && slices.EqualFunc(h.members, ms, sameMember) {
			return h.owners
		}
	}
	return nil
}

// othersDigest returns the digest that every other serving member of ms
// carries (with joiners: only those that are not members here yet), and
// whether they all carry the same one.
func (s *SharedView) othersDigest(ms []pool.Member, joiners bool) (uint8, bool) {
	self := s.group.arp.MAC()
	var d uint8
	found := false
	for _, m := range ms {
		n := s.nodes[string(m.MAC)]
		if bytes.Equal(m.MAC, self) || n == nil || !n.holder || !n.member {
			continue
		}
		if joiners && slices.ContainsFunc(s.members, func(o pool.Member) bool { return bytes.Equal(o.MAC, m.MAC) }) {
			continue
		}
		if found && n.digest != d {
			return 0, false
		}
		d, found = n.digest, true
	}
	return d, found
}

// cameBackServing returns, when the change to ms is only the return of
// nodes that serve buckets to a group this node is part of (nodes found
// dead here whose frames were lost, not newcomers), the assignment they
// serve by if this node remembers it for these members; else nil. The
// others that found them dead take it too; those that did not never left it.
func (s *SharedView) cameBackServing(ms []pool.Member) map[int]net.HardwareAddr {
	self := s.group.arp.MAC()
	if !s.isSelfMember() {
		return nil
	}
	for _, m := range ms {
		if slices.ContainsFunc(s.members, func(o pool.Member) bool { return bytes.Equal(o.MAC, m.MAC) }) {
			continue
		}
		if n := s.nodes[string(m.MAC)]; bytes.Equal(m.MAC, self) || n == nil || !n.holder || !n.member {
			return nil
		}
	}
	d, ok := s.othersDigest(ms, true)
	if !ok {
		return nil
	}
	return s.remembered(ms, d)
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
	if !s.selfSince.IsZero() {
		s.selfSince = now
	}
	s.apply(now)
}
