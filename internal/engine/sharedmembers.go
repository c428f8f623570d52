package engine

// Membership of the shared addresses: what the nodes hear of each other (a
// tagged probe to the cluster MAC every interval) and what this node says
// of itself; who is a member now. shared.go turns the members into owners.

import (
	"bytes"
	"net"
	"slices"
	"time"

	"github.com/mdlayher/arp"

	"floatip/internal/pool"
	"floatip/internal/wire/frame"
)

// onFrame takes a frame naming a shared address: another node's tagged
// probe is a sign of life (or a leave).
func (s *SharedView) onFrame(f frame.Frame, now time.Time) {
	p := f.Packet
	if !f.FromOther(s.group.arp.MAC()) || p.Operation != arp.OperationRequest || !p.SenderIP.IsUnspecified() || !s.isShared(p.TargetIP) {
		return
	}
	tag, ok := frame.ParseTag(p.TargetHardwareAddr)
	if !ok {
		return
	}
	s.checkStall(now)
	s.lastPeer = now
	// A node-level fact, as any tagged probe: its rank and health for the
	// VIPs of this interface too, and for floatip status.
	s.group.peers.observe(p.SenderHardwareAddr, tag, now)
	key := string(p.SenderHardwareAddr)
	n := s.nodes[key]
	if n == nil {
		if len(s.nodes) >= maxPeers {
			s.forget(now)
			if len(s.nodes) >= maxPeers {
				return
			}
		}
		n = &sharedNode{servedFirst: tag.Flags&frame.FlagHolder != 0}
		s.nodes[key] = n
	}
	if tag.Flags&(frame.FlagReleasing|frame.FlagStandAside) != 0 {
		// Leaving or unhealthy: out at once, its buckets taken now.
		was := !n.since.IsZero()
		if was {
			s.group.log.Info("shared address: a node leaves or stands aside", "node", p.SenderHardwareAddr.String(),
				"releasing", tag.Flags&frame.FlagReleasing != 0)
		}
		n.since, n.last, n.holder = time.Time{}, time.Time{}, false
		if was {
			s.recompute(now)
		}
		return
	}
	wasHolder := n.holder && !n.since.IsZero() && now.Sub(n.last) <= s.deadTime()
	if wasHolder && tag.Flags&frame.FlagHolder == 0 {
		// It served a moment ago and serves nothing now, without a
		// release notice: its process started again (a crash, kill -9)
		// and serves nothing until it joins again as a newcomer. Out now,
		// so that its buckets are served again at once.
		n.since, n.holder = time.Time{}, false
		s.group.log.Info("shared address: a node serves nothing any more without a release notice (restarted?): its buckets go to the others",
			"node", p.SenderHardwareAddr.String())
		s.recompute(now)
	}
	if n.since.IsZero() || now.Sub(n.last) > s.deadTime() {
		n.since = now
		if !s.anyServes(now) {
			// Nobody serves: a group starting together, every node sees
			// the same; no hold-down between its nodes.
			n.since = now.Add(-s.cfg.HoldDown)
		}
	}
	n.silence = time.Hour // not heard since it stood aside or left
	if !n.last.IsZero() {
		n.silence = now.Sub(n.last)
	}
	n.last, n.priority, n.holder = now, tag.Priority, tag.Flags&frame.FlagHolder != 0
	if d := tag.Flags >> digestShift; d != n.digest {
		n.prevDigest, n.digest = n.digest, d
	}
	n.member = tag.Flags&frame.FlagMember != 0
	if n.holder && now.Sub(n.since) < s.cfg.HoldDown {
		n.since = now.Add(-s.cfg.HoldDown) // it serves already: a member, not a newcomer
	}
	if !pool.Has(s.members, p.SenderHardwareAddr) && s.isMember(p.SenderHardwareAddr, n, now) {
		s.recompute(now)
	}
}

// anyServes reports whether a node serves buckets: this one, or another
// whose last frame, within the dead time, said so.
func (s *SharedView) anyServes(now time.Time) bool {
	if s.servesAny() {
		return true
	}
	for _, n := range s.nodes {
		if n.holder && now.Sub(n.last) <= s.deadTime() {
			return true
		}
	}
	return false
}

// forget drops the nodes not heard within the dead time: a flood of forged
// tags from random MACs must not fill the table.
func (s *SharedView) forget(now time.Time) {
	for key, n := range s.nodes {
		if now.Sub(n.last) > s.deadTime() {
			delete(s.nodes, key)
		}
	}
}

func (s *SharedView) isMember(mac net.HardwareAddr, n *sharedNode, now time.Time) bool {
	if n.since.IsZero() || now.Sub(n.last) > s.deadTime() {
		return false
	}
	// A member stays one while it is heard. A node that says it is one
	// (its own hold-down is over) is one from that frame on: every node
	// sees the join at the same frame, not each at its own tick. While
	// nobody serves, the hold-down protects nothing: every node present is
	// a member, the same on every node (after the group's servers left,
	// two newcomers would otherwise each start alone).
	counted := pool.Has(s.members, mac)
	if counted && s.deniesMembership(n, now) {
		return false
	}
	return n.member || now.Sub(n.since) >= s.cfg.HoldDown || !s.anyServes(now) || counted
}

// deniesMembership: a node this one counts a member still says, a join's
// skew after it was counted, that it does not count itself one, while
// another node serves. It serves none of the buckets given to it, and
// would not before its own hold-down is over: a node that served before
// (it stood aside, a failing check) waits out its hold-down once a node
// serves, which the others cannot see. Counted because nobody served at
// that moment (the only server died as the next one joined), it is not
// one until it says so.
func (s *SharedView) deniesMembership(n *sharedNode, now time.Time) bool {
	return !n.member && !n.countedSince.IsZero() && now.Sub(n.countedSince) > s.joinSkew() &&
		n.last.After(n.countedSince) && s.anyServes(now)
}

// candidate reports whether this node may serve: link up, healthy, not
// cut off, not leaving.
func (s *SharedView) candidate(now time.Time) bool {
	return s.linkUp && s.healthy && !s.leaving && !s.isolated(now)
}

// isolated: this node has reference hosts, and has heard neither them nor
// another node for the isolation window after having heard both (a cut
// upstream of its port): it gives its buckets up, as a VIP's holder does.
func (s *SharedView) isolated(now time.Time) bool {
	at, asked := s.cfg.Refs.HeardAt(now)
	silence := isolationSilence(s.group.cfg.Interval)
	return asked && !at.IsZero() && now.Sub(at) >= silence && !s.lastPeer.IsZero() && now.Sub(s.lastPeer) >= silence
}

// selfJoinAfter is how long this node must be a candidate before it
// serves: the hold-down when it joins a running group (a node served before
// this one heard it) or comes back to one, as the others count it a
// newcomer; the dead time when nobody else serves, or only the nodes that
// started with it (time enough to hear each other).
func (s *SharedView) selfJoinAfter(now time.Time) time.Duration {
	for _, n := range s.nodes {
		if n.holder && now.Sub(n.last) <= s.deadTime() && (n.servedFirst || s.served) {
			return s.cfg.HoldDown
		}
	}
	return s.deadTime()
}

// currentMembers lists the members as this node sees them now, by MAC.
func (s *SharedView) currentMembers(now time.Time) []pool.Member {
	var ms []pool.Member
	self := s.group.arp.MAC()
	inNow := pool.Has(s.members, self)
	if !s.selfSince.IsZero() && self != nil && (inNow || now.Sub(s.selfSince) >= s.selfJoinAfter(now)) {
		ms = append(ms, pool.Member{MAC: slices.Clone(self), Weight: int(s.group.cfg.Priority)})
	}
	for key, n := range s.nodes {
		if s.isMember(net.HardwareAddr(key), n, now) {
			ms = append(ms, pool.Member{MAC: net.HardwareAddr(key), Weight: int(n.priority)})
		}
	}
	slices.SortFunc(ms, func(a, b pool.Member) int { return bytes.Compare(a.MAC, b.MAC) })
	return ms
}

// presence sends this node's sign of life to the other nodes of the
// shared addresses: a tagged probe to the cluster MAC.
func (s *SharedView) presence(now time.Time) {
	if !s.linkUp || len(s.cfg.Addrs) == 0 {
		return
	}
	s.sendPresence(s.tagFlags(now))
}

func (s *SharedView) tagFlags(now time.Time) uint8 {
	var flags uint8
	if s.servesAny() {
		flags |= frame.FlagHolder
	}
	if !s.candidate(now) {
		flags |= frame.FlagStandAside
	}
	if s.isSelfMember() {
		flags |= frame.FlagMember | s.digest<<digestShift
	}
	return flags
}

func (s *SharedView) sendPresence(flags uint8) {
	if s.deferred != nil {
		// After the table's changes before it, as when they are made at
		// once: a frame that says "stand aside" or "releasing" must not
		// overtake the emptying of the sets.
		s.changeTable(nil, func(error) { s.sendPresence(flags) })
		return
	}
	a := s.cfg.Addrs[0]
	tag := frame.Tag{Priority: s.group.cfg.Priority, Flags: flags}
	if err := s.cfg.Send.Probe(a, tag, s.cfg.ClusterMAC(a)); err != nil {
		s.group.log.Debug("shared address: cannot send presence", "err", err)
	}
}
