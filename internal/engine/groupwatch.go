package engine

// The group's two rotations: a standby's watch of each holder (one probe per
// interval for all of that holder's VIPs) and a holder's self-checks and
// refreshes of its own VIPs, one at a time. group.go is the view they share.

import (
	"net"
	"time"

	"floatip/internal/wire/frame"
)

// holderWatch checks that one holder is alive for all the VIPs this node is
// standby for and that it holds: one probe per interval, for each VIP in
// turn (so each VIP is still checked, at len(VIPs) × interval), with the
// same debounce as a single VIP.
type holderWatch struct {
	group    *Group
	mac      net.HardwareAddr
	machines []*Machine
	slot     int

	deb          *debouncer
	nextProbe    time.Time
	turn         int        // rotation over machines
	probed       *Machine   // the VIP of the outstanding probe
	probedOK     bool       // ... answered for that VIP
	heardSince   bool       // the holder showed life since the last probe
	unanswered   []*Machine // probes missed while the holder was silent
	claimCheck   bool       // the holder is silent: one last probe sent
	claimCheckAt time.Time
}

func (w *holderWatch) queueSlot() *int     { return &w.slot }
func (w *holderWatch) nextWake() time.Time { return w.nextProbe }

// heard records a sign of life of the holder for m's VIP.
func (w *holderWatch) heard(m *Machine, now time.Time) {
	w.deb.answered(now)
	w.heardSince = true
	w.claimCheck = false
	if m == w.probed {
		w.probedOK = true
	}
	for i, x := range w.unanswered {
		if x == m {
			w.unanswered = append(w.unanswered[:i], w.unanswered[i+1:]...)
			break
		}
	}
}

func (w *holderWatch) onTick(now time.Time) {
	g := w.group
	if now.Before(w.nextProbe) {
		return
	}
	if w.probed != nil && !w.probedOK {
		w.unanswered = append(w.unanswered, w.probed)
		if !w.heardSince {
			w.deb.missed()
			g.countMiss(w.probed)
		}
	}
	if w.heardSince && len(w.unanswered) > 0 {
		// The holder is alive but did not answer for these VIPs: their
		// machines check them on their own (one may have been released).
		suspects := append([]*Machine(nil), w.unanswered...)
		w.unanswered = w.unanswered[:0]
		for _, m := range suspects {
			g.unfollow(m)
			m.suspect(now)
		}
	}
	w.probed, w.probedOK, w.heardSince = nil, false, false
	if len(w.machines) == 0 {
		return
	}
	if w.deb.free(now) {
		if !w.claimCheck {
			// One last broadcast probe, as a single VIP's claim check.
			w.claimCheck, w.claimCheckAt = true, now
			w.send(now, frame.BroadcastMAC)
			w.nextProbe = now.Add(FastSpacing(g.cfg.Interval))
			return
		}
		w.holderGone(now)
		return
	}
	dst := w.mac
	if w.deb.missedInRow > 0 {
		// Suspicious: broadcast, so the other standbys hear our rank.
		dst = frame.BroadcastMAC
	}
	w.send(now, dst)
	w.nextProbe = now.Add(w.deb.spacing())
}

// Send probes the next VIP in turn.
func (w *holderWatch) send(now time.Time, dst net.HardwareAddr) {
	w.turn %= len(w.machines)
	m := w.machines[w.turn]
	w.turn++
	w.probed, w.probedOK, w.heardSince = m, false, false
	m.probeFor(now, dst)
}

// holderGone frees every VIP of a holder that stayed silent for the dead
// time and the claim check: each machine decides on its own whether to
// claim (rank, health, references, fencing), without a claim check of its
// own, which the watch has just done for all of them.
func (w *holderWatch) holderGone(now time.Time) {
	g := w.group
	machines := append([]*Machine(nil), w.machines...)
	g.log.Info("holder silent for the dead time", "holder", w.mac.String(), "vips", len(machines))
	if g.pool != nil {
		g.pool.gone(w.mac, now) // the dead node out before its VIPs are decided
	}
	for _, m := range machines {
		g.unfollow(m)
		m.holderSilent(now, w.deb)
	}
}

func (g *Group) countMiss(m *Machine) { m.Observer.Counted(m.vip, "miss") }

// heldRotation self-checks the held VIPs one at a time, one per
// selfCheckEvery, and refreshes one per --refresh: the broadcast cost of a
// holder is that of one VIP, however many it holds. It also runs the
// node's reference rounds while it holds VIPs (isolation.go).
type heldRotation struct {
	group       *Group
	slot        int
	machines    []*Machine
	checkTurn   int
	refreshTurn int
	nextCheck   time.Time
	nextRefresh time.Time
	iso         isolationWatch // reference rounds
}

func (h *heldRotation) queueSlot() *int { return &h.slot }

func (h *heldRotation) nextWake() time.Time {
	if len(h.machines) == 0 {
		return time.Now().Add(time.Hour)
	}
	wake := h.nextCheck
	if h.group.cfg.Refresh > 0 && h.nextRefresh.Before(wake) {
		wake = h.nextRefresh
	}
	if h.iso.nextRound.Before(wake) {
		wake = h.iso.nextRound
	}
	return wake
}

// add starts the rotation's clocks when the first VIP is held.
func (h *heldRotation) add(m *Machine, now time.Time) {
	for _, x := range h.machines {
		if x == m {
			return
		}
	}
	if len(h.machines) == 0 {
		h.nextCheck = now.Add(selfCheckEvery)
		h.nextRefresh = now.Add(h.group.cfg.Refresh)
		h.iso = isolationWatch{nextRound: now}
	}
	h.machines = append(h.machines, m)
	h.group.touch(h)
}

func (h *heldRotation) remove(m *Machine) {
	for i, x := range h.machines {
		if x == m {
			h.machines = append(h.machines[:i], h.machines[i+1:]...)
			h.group.touch(h)
			return
		}
	}
}

func (h *heldRotation) onTick(now time.Time) {
	if len(h.machines) == 0 {
		return
	}
	h.referenceRound(now)
	if len(h.machines) == 0 {
		return // stepped down: cut off
	}
	if !now.Before(h.nextCheck) {
		h.checkTurn %= len(h.machines)
		if m := h.machines[h.checkTurn]; m.selfCheck(now) {
			h.checkTurn++
			h.nextCheck = now.Add(selfCheckEvery)
		} else {
			h.nextCheck = m.lastOwnAnnounce.Add(announceOrderMargin) // after its announcement
		}
	}
	if h.group.cfg.Refresh > 0 && !now.Before(h.nextRefresh) {
		h.refreshTurn %= len(h.machines)
		h.machines[h.refreshTurn].Announce("refresh", now)
		h.refreshTurn++
		h.nextRefresh = now.Add(h.group.cfg.Refresh)
	}
}
