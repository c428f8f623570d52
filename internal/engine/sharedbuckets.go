package engine

// This node's part of a shared address's buckets (shared.go): what it
// takes, at once or by plan, and what it gives up, draining or not;
// sharedtable.go tells the table.

import (
	"bytes"
	"fmt"
	"net"
	"net/netip"
	"slices"
	"time"

	"floatip/internal/pool"
)

// bucket is this node's part in one bucket.
type bucket struct {
	mine     bool
	giveAt   time.Time        // a planned give: mine until then (zero: none)
	giveTo   net.HardwareAddr // ... to this node
	takeAt   time.Time        // a planned take, due then (zero: none)
	takeFrom net.HardwareAddr // ... from this node, which serves it meanwhile (nil: nobody known)
	// takeWhole: the planned take is of a dead node's bucket (catchUpAt):
	// all its flows, as a take at once, so that the dead node's
	// connections are reset, not left hanging for --drain.
	takeWhole     bool
	incomingUntil time.Time // new flows only until then
	drainUntil    time.Time // established TCP flows only until then
}

// dueTake is a bucket's planned move: when its new owner takes it, and the
// node that serves it until then (nil: none known).
type dueTake struct {
	at   time.Time
	from net.HardwareAddr
}

// takeDelay is how long after a planned move's decision the taker starts
// serving the bucket: by then every giver, which decided within an
// interval of the taker, has stopped taking new flows of it.
func (s *SharedView) takeDelay() time.Duration { return 2 * s.group.cfg.Interval }

// giveDelay is how long after a membership change's decision the giver of
// a planned move keeps new flows: the nodes see a join at the newcomer's
// frame (FlagMember), a few milliseconds apart, so the giver can hand over
// half an interval before the taker takes, not a whole takeDelay.
func (s *SharedView) giveDelay() time.Duration { return s.takeDelay() - s.group.cfg.Interval/2 }

// catchUpWindow bounds how long after finding a death a member that hears a
// join takes it for one moment with the death (catchUpAt): a frame's
// delivery to a busy loop. A join heard later than that came after the
// death on the joiner too, which then plans its takes (a joiner that
// guessed the owners always does): the keeper gives by plan, or the
// bucket would wait for the joiner's planned take.
const catchUpWindow = 50 * time.Millisecond

// catchUpDelay is how long after a join a member that finds a death
// within the join's skew waits before it takes the dead node's buckets:
// another member may have found the death before it heard the join, taken
// all of them (pool.Keep), and lets them go when it hears the join.
func (s *SharedView) catchUpDelay() time.Duration { return s.group.cfg.Interval / 2 }

// moveMode is how the nodes come to an assignment, and so how this node
// moves its buckets.
type moveMode int

const (
	// movesPlanned: a membership change, which every node sees at about
	// the same frame: the giver keeps new flows for giveDelay, the taker
	// takes after takeDelay.
	movesPlanned moveMode = iota
	// movesLoose: each node comes to it at its own time (a disagreement),
	// or a joiner serves already (a heal): the giver lets go at once, the
	// taker takes after takeDelay.
	movesLoose
	// movesDone: the others serve by it already: nothing is planned.
	movesDone
)

func bucketNumbers(n int) []int {
	b := make([]int, n)
	for i := range b {
		b[i] = i
	}
	return b
}

// decide turns the new owners into this node's part: what it takes, at
// once or planned, and what it gives up, draining or not, as mode says.
func (s *SharedView) decide(before map[int]net.HardwareAddr, members []pool.Member, now time.Time, mode moveMode) {
	served := mode == movesDone
	self := s.group.arp.MAC()
	member := func(mac net.HardwareAddr) bool {
		return mac != nil && pool.Has(members, mac)
	}
	// serves: another member that says it serves buckets; a move from it
	// is planned, a bucket nobody serves is taken at once.
	serves := func(mac net.HardwareAddr) bool {
		n := s.nodes[string(mac)]
		return member(mac) && !bytes.Equal(mac, self) && n != nil && n.holder
	}
	anyServes := slices.ContainsFunc(members, func(m pool.Member) bool { return serves(m.MAC) })
	// known: the owners this node had before are the ones the others
	// served by: it served by them too, or it serves nothing (it joins)
	// and the serving nodes carry the digest of them, or have just moved
	// from it to the one this node computes now. A joiner that missed a
	// death or a restart before it started does not know who served what:
	// while another node serves, its takes are all planned.
	known := s.servesAny() || s.othersServedBy(members, ownersDigest(before, s.cfg.Buckets))
	// server is the node that serves bucket i, as far as this node can
	// tell, and whether it does: its owner, or, while that owner's planned
	// take is not due (half an interval before, when the giver lets go),
	// the node it takes it from (nil: not known). The change that gave
	// the owner the bucket may be undone or overtaken right after: a heal
	// that brings the nodes back one frame at a time, a death right after
	// a join.
	inFlight := func(i int) bool {
		d := s.takeDue[i]
		return !d.at.IsZero() && now.Before(d.at.Add(-s.group.cfg.Interval/2))
	}
	server := func(i int) (net.HardwareAddr, bool) {
		mac := before[i]
		if inFlight(i) {
			mac = s.takeDue[i].from
		}
		if bytes.Equal(mac, self) {
			return mac, s.buckets[i].mine
		}
		return mac, serves(mac)
	}
	// catchUpAt is when the new owner takes bucket i, when it was served
	// by a node lost within a join's skew of this change, in either order
	// (zero: not so). A member that found the death before it heard the
	// join took all of the dead node's buckets (pool.Keep) and lets go of
	// those the join gives another when it hears the join (below); the
	// new owner takes them catchUpDelay after the join, which every
	// member hears within a few frames' delivery. When no other member
	// serves, nobody could keep the bucket: the owner does not wait. Only
	// owners that were known count (ownersKnown): a joiner that guessed
	// who served what plans all its takes (above).
	lost := func(mac net.HardwareAddr) bool { return mac != nil && !member(mac) && !bytes.Equal(mac, self) }
	catchUpAt := func(i int) time.Time {
		at := s.joinedAt.Add(s.catchUpDelay())
		if served || now.Sub(s.joinedAt) >= s.joinSkew() || !at.After(now) {
			return time.Time{}
		}
		srv, on := server(i)
		deathNow := lost(srv) && (known || s.ownersKnown)
		joinNow := on && now.Sub(s.lostAt) < catchUpWindow && s.beforeLoss.known && lost(s.beforeLoss.owners[i])
		if deathNow || joinNow {
			return at
		}
		return time.Time{}
	}
	// When each bucket's new owner serves it: a move from a node serving
	// it is planned, as the owner does it (below); a planned move still in
	// flight keeps its time, and its giver, for the new owner.
	due := slices.Clone(s.takeDue)
	for i := range s.buckets {
		if prev := before[i]; !bytes.Equal(prev, s.owners[i]) {
			srv, on := server(i)
			unknown := (srv == nil || !known) && anyServes
			switch {
			case anyServes && !catchUpAt(i).IsZero():
				due[i] = dueTake{at: catchUpAt(i)}
			case served || on && bytes.Equal(srv, s.owners[i]) || !on && !unknown:
				due[i] = dueTake{}
			case on && inFlight(i):
				// due[i] stays: its giver lets go as planned
			case on && known:
				due[i] = dueTake{at: now.Add(s.takeDelay()), from: slices.Clone(srv)}
			default:
				due[i] = dueTake{at: now.Add(s.takeDelay())}
			}
		}
	}
	serving := s.candidate(now) && member(self)
	for i := range s.buckets {
		b := &s.buckets[i]
		owner := s.owners[i]
		ownNow := serving && bytes.Equal(owner, self)
		catchUp := catchUpAt(i) // before this bucket changes: it asks whether it is served here
		if ownNow {
			b.giveAt, b.giveTo = time.Time{}, nil // a planned give undone
		}
		switch {
		case ownNow && !b.mine && b.takeAt.IsZero():
			prev := before[i]
			srv, on := server(i)
			planned := !served && (on || (srv == nil || !known) && anyServes)
			gaveIt := !b.drainUntil.IsZero() // this node let it go by plan
			b.drainUntil = time.Time{}
			switch {
			case anyServes && !catchUp.IsZero():
				b.takeAt, b.takeWhole = catchUp, true
			case planned:
				b.takeAt = now.Add(s.takeDelay())
				if on && inFlight(i) {
					// Its giver lets go as planned. A move whose giver this
					// node did not know has no time to keep: the node that
					// serves the bucket now plans its give from now on.
					b.takeAt = s.takeDue[i].at
				}
				if on && known {
					b.takeFrom = slices.Clone(srv)
				}
			case prev != nil && serves(prev) && !gaveIt && s.cfg.Drain > 0:
				// Its owner had not taken it yet from another node, or has
				// let it go already (served): that node keeps its
				// established flows, this one takes new flows only.
				b.mine, b.incomingUntil = true, now.Add(s.cfg.Drain)
			default:
				b.mine = true // its owner is gone, or never took it from here: at once
			}
		case ownNow && !b.mine && b.takeFrom != nil && !serves(b.takeFrom):
			// The node a planned take waited for has left meanwhile (a
			// release notice, a death): nobody serves the bucket now, but
			// for a member that kept it (catchUpAt).
			b.takeAt, b.takeFrom, b.mine = time.Time{}, nil, true
			if anyServes && !catchUp.IsZero() {
				b.takeAt, b.takeWhole, b.mine = catchUp, true, false
			}
		case !ownNow:
			b.takeAt, b.takeFrom, b.takeWhole, b.incomingUntil = time.Time{}, nil, false, time.Time{}
			planned := serving && member(owner) // not a leave, a failing check, a cut
			switch {
			case b.mine && planned && mode == movesPlanned && catchUp.IsZero():
				// A planned give stays planned when the bucket changes
				// hands again before it (its owner died right after a
				// join): the new owner takes it at the same time.
				if b.giveAt.IsZero() {
					b.giveAt = now.Add(s.giveDelay())
				}
				b.giveTo = slices.Clone(owner)
			case b.mine:
				// Not planned: the new owner takes it at once. A dead
				// node's bucket kept for a moment (catchUpAt) keeps
				// nothing: its new owner resets the connections.
				b.mine, b.giveAt, b.giveTo = false, time.Time{}, nil
				if planned && s.cfg.Drain > 0 && catchUp.IsZero() {
					b.drainUntil = now.Add(s.cfg.Drain) // a planned move: keep its connections
				}
			}
			if !serving {
				b.drainUntil = time.Time{} // leaving, unhealthy, cut off: nothing stays
			}
		}
	}
	s.takeDue = due
	s.ownersKnown = served || known
	// The new digest goes out now, not at the next tick: a node that
	// joins in the same moment judges by it what it knows (above). The
	// table's lease is renewed with it, as on a tick.
	s.apply(now, applyAndTell)
}

// sets lists this node's part as the table takes it.
func (s *SharedView) sets() (mine, draining, incoming []int) {
	for i, b := range s.buckets {
		switch {
		case b.mine:
			mine = append(mine, i)
			if !b.incomingUntil.IsZero() {
				incoming = append(incoming, i)
			}
		case !b.drainUntil.IsZero():
			draining = append(draining, i)
		}
	}
	return mine, draining, incoming
}

// servesAny reports whether this node serves a bucket: sets' mine is not
// empty, without building the sets (membership asks on every tick).
func (s *SharedView) servesAny() bool {
	return slices.ContainsFunc(s.buckets, func(b bucket) bool { return b.mine })
}

// timers runs the planned takes, and ends the drains and the incoming
// windows that are due.
func (s *SharedView) timers(now time.Time) {
	for i := range s.buckets {
		b := &s.buckets[i]
		if !b.giveAt.IsZero() && !now.Before(b.giveAt) {
			b.mine, b.giveAt, b.giveTo = false, time.Time{}, nil
			if s.cfg.Drain > 0 {
				b.drainUntil = now.Add(s.cfg.Drain)
			}
		}
		if !b.takeAt.IsZero() && !now.Before(b.takeAt) {
			if s.cfg.Drain > 0 && !b.takeWhole {
				b.incomingUntil = now.Add(s.cfg.Drain)
			}
			b.takeAt, b.takeFrom, b.takeWhole, b.mine = time.Time{}, nil, false, true
		}
		if !b.incomingUntil.IsZero() && !now.Before(b.incomingUntil) {
			b.incomingUntil = time.Time{}
		}
		if !b.drainUntil.IsZero() && !now.Before(b.drainUntil) {
			b.drainUntil = time.Time{}
		}
	}
	s.apply(now, applyChanged)
	if s.announceLeft > 0 && !now.Before(s.nextAnnounce) && s.linkUp {
		s.announceLeft--
		s.nextAnnounce = now.Add(s.group.cfg.AnnounceSpacing)
		for _, a := range s.cfg.Addrs {
			if err := s.cfg.Send.AnnounceAs(a, s.cfg.ClusterMAC(a), s.group.cfg.AnnounceForm); err != nil {
				s.group.log.Warn("shared address: cannot announce", "address", a.String(), "err", err)
			}
		}
	}
}

// SharedFacts is the shared addresses as this node sees them, for status.
type SharedFacts struct {
	Addrs    []netip.Addr
	Buckets  int
	Owners   map[string][]int // bucket numbers by member MAC
	Mine     []int            // served here, new and established flows
	Draining []int            // moved away: established TCP flows only
	Incoming []int            // moved here: new flows only
}

func (s *SharedView) facts() *SharedFacts {
	f := &SharedFacts{Addrs: slices.Clone(s.cfg.Addrs), Buckets: s.cfg.Buckets, Owners: map[string][]int{}}
	for b := range s.cfg.Buckets {
		if o := s.owners[b]; o != nil {
			f.Owners[o.String()] = append(f.Owners[o.String()], b)
		}
	}
	f.Mine, f.Draining, f.Incoming = s.sets()
	return f
}

// String is a one-line summary for logs and systemd.
func (f *SharedFacts) String() string {
	return fmt.Sprintf("%d of %d buckets here (%d draining, %d incoming), %d nodes", len(f.Mine), f.Buckets, len(f.Draining), len(f.Incoming), len(f.Owners))
}
