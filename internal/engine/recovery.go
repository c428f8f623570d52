package engine

import (
	"net"
	"time"

	"floatip/internal/wire/frame"
)

// Crash recovery. A daemon killed with -9 (or by the OOM killer, or a
// panic in the runtime) leaves its VIP/32 on the interface, and the kernel
// keeps answering ARP for it. When floatip starts and finds the VIP there,
// it can neither trust it (another node may have taken the VIP over
// meanwhile: two holders on the wire) nor drop it (if it is still rightly
// ours, clients would be cut for nothing). So it starts in the adopting
// state: it keeps the address, announces nothing, and probes the VIP as a
// suspicious standby does. Our own kernel never answers our own probe, so
// an answer, or any other sign of another holder, means the copy is stale:
// it is removed at once and the node becomes a standby. If nobody answers
// for as long as a standby waits before it claims a silent VIP (`--misses`
// probes in a row and misses × interval), the VIP is ours: it is adopted
// and announced as after a claim.

// adoptVerdict is what an adopting node does with the VIP it found.
type adoptVerdict int

const (
	adoptWait adoptVerdict = iota // keep asking
	adoptKeep                     // nobody else holds it: adopt and announce
	adoptDrop                     // another node holds it: remove our stale copy
)

func (v adoptVerdict) String() string {
	switch v {
	case adoptWait:
		return "wait"
	case adoptKeep:
		return "keep"
	case adoptDrop:
		return "drop"
	}
	return "adoptVerdict(?)"
}

// adoptionVerdict decides from the adopting probes so far: otherHolder is
// whether another node showed it holds the VIP; unanswered counts the probes
// in a row that went unanswered; elapsed is the time since the first probe.
// The bar for "nobody holds it" is the standby's bar for "the holder is
// dead": misses unanswered probes and a dead time of silence.
func adoptionVerdict(otherHolder bool, unanswered int, elapsed time.Duration, misses int, deadTime time.Duration) adoptVerdict {
	switch {
	case otherHolder:
		return adoptDrop
	case unanswered >= misses && elapsed >= deadTime:
		return adoptKeep
	}
	return adoptWait
}

// startAdopting begins the check of a VIP found on the interface at start,
// once the link is up.
func (m *Machine) startAdopting(now time.Time) {
	m.deb = newDebouncer(m.cfg.Interval, m.cfg.Misses, now)
	m.probeOutstanding = false
	m.nextProbe = now
	m.adoptTick(now)
}

// adoptTick counts the last probe as unanswered (an answer never gets
// here: it ends the check at once), decides, and sends the next probe:
// broadcast, tagged "will not take it", so that no standby waits for this
// node and no holder takes it for a rival.
func (m *Machine) adoptTick(now time.Time) {
	if now.Before(m.nextProbe) {
		return
	}
	if m.probeOutstanding {
		m.deb.missed()
		m.Observer.Counted(m.vip, "miss")
	}
	m.probeOutstanding = false
	if m.adoptDecide(now, nil) {
		return
	}
	if !m.Group.pacer.take(now) {
		m.nextProbe = m.Group.pacer.nextToken(now) // many VIPs found at once
		return
	}
	if err := m.ARP.Probe(m.vip, m.tag(frame.FlagStandAside), frame.BroadcastMAC); err != nil {
		m.Log.Debug("adopting probe not sent", "err", err)
		m.nextProbe = now.Add(m.cfg.Interval)
		return
	}
	m.Observer.Counted(m.vip, "probe")
	m.probeOutstanding = true
	m.nextProbe = now.Add(FastSpacing(m.cfg.Interval))
}

// adoptDecide applies adoptionVerdict; holder is the frame that showed
// another holder, if any. It reports whether the check is over.
func (m *Machine) adoptDecide(now time.Time, holder *frame.Frame) bool {
	// The debouncer starts as if answered when the check began.
	elapsed := now.Sub(m.deb.lastAnswer)
	switch adoptionVerdict(holder != nil, m.deb.missedInRow, elapsed, m.cfg.Misses, m.deb.deadTime()) {
	case adoptKeep:
		m.Log.Info("no other node holds the VIP: adopting the copy left by an earlier run", "checked_for", elapsed.Round(time.Millisecond).String())
		m.becomeActive(now, "adopted")
		return true
	case adoptDrop:
		mac := append(net.HardwareAddr(nil), holder.Packet.SenderHardwareAddr...)
		m.Log.Warn("another node holds the VIP: removing the stale copy left by an earlier run", "holder", mac.String())
		// No release notice: the VIP is not free.
		m.release(false)
		if m.added {
			return false // the removal failed (logged): try again on the next sign
		}
		m.sawHolder(*holder, now)
		m.becomeStandby(now, true, "stale VIP dropped")
		return true
	}
	return false
}
