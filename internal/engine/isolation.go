package engine

import "time"

// The isolated holder. A holder whose carrier stays up but whose switch port
// is cut upstream keeps answering for the VIP on its dead segment while a
// standby that still reaches the clients takes it over; when the cut heals,
// the split brain is resolved by rank, and if the old holder outranks the
// new one the clients move a second time. So a holder with reference hosts
// asks them periodically, and gives the VIP up when it has heard nothing from
// them nor from any other floatip node of the VIP for a while: it is the one
// cut off, and it comes back as a standby (which never claims while its
// references are silent).
//
// Why the other floatip nodes count too: if only the reference host went
// away (the gateway reboots) the holder still hears its standbys' probes,
// and releasing would leave the VIP with nobody, since the standbys do not
// reach the reference either. And a holder that has heard no standby for
// long before its references fell silent has nobody to hand over to: it
// keeps the VIP.

const (
	// isolationRounds is how many reference rounds in a row must go
	// unanswered before a holder may consider itself cut off.
	isolationRounds = 5
	// isolationSilenceRounds × the round period is how long the holder must
	// have heard neither a reference host nor another floatip node.
	isolationSilenceRounds = 3
)

// referenceRoundEvery is how often a holder asks its reference hosts: once
// a second, or every --interval when that is longer. After an unanswered
// round it asks four times as often, as a suspicious standby does.
func referenceRoundEvery(interval time.Duration) time.Duration {
	return max(time.Second, interval)
}

// isolationSilence is how long a holder must hear nothing (no reference, no
// floatip node) before it releases: 3 s at the default --interval.
func isolationSilence(interval time.Duration) time.Duration {
	return isolationSilenceRounds * referenceRoundEvery(interval)
}

// isolationFacts is what an active node knows about its reachability.
type isolationFacts struct {
	missedRounds  int       // reference rounds in a row without an answer
	lastReference time.Time // last answer of any reference host; zero: none since start
	lastPeer      time.Time // last tagged probe of another floatip node; zero: none heard
}

// holderIsolated decides whether an active node is cut off and must give
// the VIP up: enough unanswered rounds, and silence from both the
// references and the group for the whole window, after both had been heard
// together (the group fell silent no earlier than `silence` before the
// references did). Unknown facts (never heard a reference, or no other
// node) keep the VIP: there is nothing to compare, or nobody to hand to.
func holderIsolated(f isolationFacts, now time.Time, silence time.Duration) bool {
	switch {
	case f.missedRounds < isolationRounds:
		return false
	case f.lastReference.IsZero() || f.lastPeer.IsZero():
		return false
	case now.Sub(f.lastReference) < silence || now.Sub(f.lastPeer) < silence:
		return false
	}
	return f.lastReference.Sub(f.lastPeer) < silence
}

// isolationWatch is an active node's bookkeeping of its reference rounds.
type isolationWatch struct {
	nextRound    time.Time
	countFrom    time.Time // an answer after this answers the current round
	missedRounds int
}

// roundSpacing is the time to the next reference round.
func (w *isolationWatch) roundSpacing(interval time.Duration) time.Duration {
	if w.missedRounds == 0 {
		return referenceRoundEvery(interval)
	}
	return referenceRoundEvery(interval) / 4
}

// referenceRound runs on the held VIPs' rotation: isolation is the node's,
// not a VIP's, so one round serves every VIP it holds. It closes the current
// round (answered or not), steps down from every VIP if the node is cut off,
// and asks the references again.
func (h *heldRotation) referenceRound(now time.Time) {
	g := h.group
	if now.Before(h.iso.nextRound) {
		return
	}
	last, asked := g.refs.HeardAt(now)
	if !asked {
		// No reference hosts (--no-reference, no gateway): a holder keeps
		// its VIPs whatever it hears, as before.
		h.iso = isolationWatch{nextRound: now.Add(referenceRoundEvery(g.cfg.Interval))}
		return
	}
	if !h.iso.countFrom.IsZero() {
		if last.After(h.iso.countFrom) {
			h.iso.missedRounds = 0
		} else {
			h.iso.missedRounds++
		}
	}
	spacing := h.iso.roundSpacing(g.cfg.Interval)
	h.iso.countFrom = now.Add(-spacing / 2)
	h.iso.nextRound = now.Add(spacing)
	peer := g.peers.lastHeard()
	if holderIsolated(isolationFacts{h.iso.missedRounds, last, peer}, now, isolationSilence(g.cfg.Interval)) {
		g.log.Warn("isolated: no reference host and no other floatip node heard; releasing the VIPs (a standby that reaches them has most likely taken over)",
			"references_silent_for", now.Sub(last).Round(time.Millisecond).String(),
			"group_silent_for", now.Sub(peer).Round(time.Millisecond).String(), "unanswered_rounds", h.iso.missedRounds,
			"vips", len(h.machines))
		for _, m := range append([]*Machine(nil), h.machines...) {
			m.stepDownIsolated(now)
			g.touch(m)
		}
		return
	}
	if now.Sub(last) >= spacing/2 {
		g.refs.Probe(now)
	}
}

// stepDownIsolated gives the VIP up on a node that is cut off. The notice
// reaches nobody if the cut is complete; if only our receiving side is cut
// it makes a standby claim at once. A failed removal (logged) leaves the
// node the holder, and the next round tries again.
func (m *Machine) stepDownIsolated(now time.Time) {
	m.release(true)
	if m.added {
		return
	}
	m.becomeStandby(now, false, "isolated")
}

// lastHeard is when another floatip node that could hold the VIP last sent
// a tagged probe (zero if none, or if all that were heard have left). A node
// standing aside (its health check fails) could not take the VIP over.
func (t peerTable) lastHeard() time.Time {
	var last time.Time
	for _, p := range t {
		if !p.standAside && p.lastSeen.After(last) {
			last = p.lastSeen
		}
	}
	return last
}
