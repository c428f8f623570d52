package engine

// What the bucket table is told of this node's part (sharedbuckets.go):
// when it is set, its lease renewed every interval off the daemon's loop,
// and the changes collected while the group removes its VIPs.

import (
	"slices"
	"time"
)

// applyMode says when apply sets the table and tells the others.
type applyMode int

const (
	applyChanged applyMode = iota // set and tell when the sets changed
	applyRefresh                  // set, to renew the lease (the tick's probe went out)
	applyAndTell                  // set and tell: the owners changed (a new digest)
)

// apply gives the table this node's part when it changed, or every
// interval (applyRefresh): the table forgets buckets not refreshed for a
// while, so that a process that died (kill -9) stops serving its buckets
// about when the others take them.
func (s *SharedView) apply(now time.Time, mode applyMode) {
	s.renewalDone()
	mine, draining, incoming := s.sets()
	next := [3][]int{mine, draining, incoming}
	changed := !slices.EqualFunc(next[:], s.applied[:], slices.Equal[[]int])
	if !s.failed && mode == applyChanged && !changed {
		return
	}
	tell := !s.leaving && (mode == applyAndTell || mode == applyChanged && changed)
	// A node that stops serving altogether (a failing check, cut off)
	// empties its table before it tells: the others take its buckets at
	// once when they hear it.
	emptied := len(mine) == 0 && len(s.applied[0]) > 0
	if tell && !emptied {
		// The table's lease runs from this change: the others must count
		// this node's silence from no earlier, or a death right after it
		// would leave its buckets served here and by their new owner. The
		// probe goes first: a death between the two leaves a short gap,
		// never two owners.
		s.presence(now)
	}
	expire := s.expiring(now)
	set := func() error { return s.cfg.Table.SetBuckets(mine, draining, incoming, expire) }
	if !changed && !s.failed {
		switch {
		case s.deferred != nil && len(*s.deferred) > 0:
			return // the change collected renews the lease
		case s.cfg.RenewOffLoop && s.deferred == nil:
			// The same sets, their lease renewed: nothing waits for it.
			if s.renewal == nil { // else the one in flight renews it
				done := make(chan error, 1)
				go func() { done <- set() }()
				s.renewal, s.renewing = done, next
			}
			return
		}
	}
	s.renewalFirst()
	// What the table is given from now on, even while the change is
	// collected (changeTable): a failure sets failed, and the next tick
	// sets them again.
	s.applied = next
	s.changeTable(set, func(err error) {
		if tell && emptied {
			s.presence(now) // nothing left to outlive the others' dead time
		}
		s.setResult(err, next)
	})
}

// setResult keeps what the table was given, or that it failed (then the
// next tick tries again).
func (s *SharedView) setResult(err error, sets [3][]int) {
	if err != nil {
		if !s.failed { // once, not every interval
			s.group.log.Error("shared address: cannot set the buckets; trying again every interval", "err", err)
		}
		s.failed = true
		return
	}
	if s.failed {
		s.group.log.Info("shared address: the buckets are set again")
	}
	s.failed = false
	s.applied = sets
}

// renewalDone takes the result of the lease renewal in flight, if it is
// done.
func (s *SharedView) renewalDone() {
	if s.renewal == nil {
		return
	}
	select {
	case err := <-s.renewal:
		s.renewal = nil
		s.setResult(err, s.renewing)
	default:
	}
}

// renewalFirst makes the next change of the table wait for the lease
// renewal in flight: after it, the renewal would set the sets before the
// change again.
func (s *SharedView) renewalFirst() {
	if s.renewal == nil {
		return
	}
	r, sets := s.renewal, s.renewing
	s.renewal = nil
	s.changeTable(func() error { return <-r }, func(err error) { s.setResult(err, sets) })
}

// tableChange is one change of the bucket table: run makes it (the
// nftables transaction, which reads nothing of the view) and after takes
// its result in the loop. run nil: after only waits for the changes
// before it.
type tableChange struct {
	run   func() error
	after func(error)
}

// changeTable makes a change of the table, at once, or, while the group
// removes its VIPs (Group.removeAtOnce), collected for it to make off the
// loop: an nftables transaction takes 10 to 20 ms on a busy host, and the
// VIPs' release notices must not wait for it.
func (s *SharedView) changeTable(run func() error, after func(error)) {
	if s.deferred != nil {
		*s.deferred = append(*s.deferred, tableChange{run, after})
		return
	}
	var err error
	if run != nil {
		err = run()
	}
	after(err)
}

// makeChanges makes collected changes in order; the errors are theirs.
func makeChanges(changes []tableChange) []error {
	errs := make([]error, len(changes))
	for i, c := range changes {
		if c.run != nil {
			errs[i] = c.run()
		}
	}
	return errs
}

// expiring is how long each bucket given by plan may still be served, even
// if this process cannot run to give it (SIGSTOP, a paused VM): a little
// past its give, well before the taker takes it half an interval later.
func (s *SharedView) expiring(now time.Time) map[int]time.Duration {
	var out map[int]time.Duration
	for i, b := range s.buckets {
		if b.mine && !b.giveAt.IsZero() {
			if out == nil {
				out = map[int]time.Duration{}
			}
			out[i] = b.giveAt.Add(s.group.cfg.Interval / 4).Sub(now)
		}
	}
	return out
}
