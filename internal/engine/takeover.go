package engine

import (
	"time"

	"floatip/internal/event"
	"floatip/internal/wire/frame"
)

const (
	// selfCheckEvery is how often an active node probes its own VIP, so a
	// second holder (a healed partition) is found even if nobody announces,
	// and so standbys learn the holder's rank. 1.1 s keeps a group's
	// broadcast ARP under one frame per second per VIP.
	selfCheckEvery = 1100 * time.Millisecond
	// introduceEvery limits the extra self-checks an active node sends to
	// tell a second holder its rank.
	introduceEvery = 200 * time.Millisecond
	// identifyTimeout is how long a holder waits for a second holder to
	// show a floatip tag before treating it as a host that is not floatip.
	identifyTimeout = 2 * time.Second
	// DefendInterval is RFC 5227's DEFEND_INTERVAL: at most one defending
	// announcement per 10 s against a holder that is not floatip.
	DefendInterval = 10 * time.Second
	// winnerAnnounceEvery limits the re-announcements of a split-brain
	// winner against another floatip node.
	winnerAnnounceEvery = time.Second
	// yieldTimeout bounds how long a split-brain loser waits for the
	// winner's announcement before it removes the VIP anyway.
	yieldTimeout = 2 * time.Second
	// recentAnnouncement: a winner's announcement seen this recently still
	// counts when the loser learns the winner's rank just after it.
	recentAnnouncement = time.Second
	// referenceAnswerWait: how long a standby that finds the VIP free
	// waits for a reference host it has just asked (one on the LAN answers
	// ARP within a millisecond or two) before it calls itself cut off.
	referenceAnswerWait = 20 * time.Millisecond
	// announceOrderMargin: a winner's announcement heard this soon after
	// our own may have reached the clients before ours; the loser waits for
	// the next one.
	announceOrderMargin = 100 * time.Millisecond
	// kernelAnswerMargin: our kernel answers a DAD probe as it arrives, so a
	// winner's announcement heard this long after the probe reached the
	// neighbours after that answer too.
	kernelAnswerMargin = 2 * time.Millisecond
	// fenceRetry is the pause after a failed fencing before trying again.
	fenceRetry = 5 * time.Second
)

func (m *Machine) claim(now time.Time, msg, reason string) {
	if err := m.Address.Add(); err != nil {
		m.Log.Error("claim failed: cannot add the VIP", "err", err)
		m.becomeStandby(now, false, "add failed")
		m.nextProbe = now.Add(time.Second) // do not hammer netlink with a failing add
		return
	}
	m.added = true
	previous := "none"
	if m.holder != nil {
		previous = m.holder.String()
	}
	m.Log.Info(msg, "previous_holder", previous, "priority", m.cfg.Priority)
	m.becomeActive(now, reason)
}

func (m *Machine) becomeActive(now time.Time, reason string) {
	m.setState(event.Active, reason, now)
	m.holder = nil
	m.lowerHolderSince = time.Time{}
	m.identifying = nil
	// Rank first, then the announcement: a holder we split-brain with must
	// know that we outrank it when our announcement reaches it. The rank is
	// the node's: one introduction serves a claim of many VIPs.
	if m.Group.introduce(now) {
		m.selfCheck(now)
	}
	m.announcementsLeft = m.cfg.AnnounceCount
	m.nextAnnounce = now
	m.announceDue(now, "claim")
}

// announceDue sends the next announcement round if it is due and the pacer
// lets it (a claim of many VIPs spreads its rounds over ~100 ms per 256).
func (m *Machine) announceDue(now time.Time, why string) {
	if m.announcementsLeft == 0 || now.Before(m.nextAnnounce) {
		return
	}
	if !m.Group.pacer.take(now) {
		m.nextAnnounce = m.Group.pacer.nextToken(now)
		return
	}
	m.Announce(why, now)
	m.announcementsLeft--
	m.nextAnnounce = now.Add(m.cfg.AnnounceSpacing)
}

// becomeStandby returns to probing. holderAlive says whether a holder was
// just seen, in which case the dead time starts again from now.
func (m *Machine) becomeStandby(now time.Time, holderAlive bool, reason string) {
	m.setState(event.Standby, reason, now)
	m.probeOutstanding = false
	m.watchCheckedAt = time.Time{}
	if holderAlive {
		m.deb.answered(now)
		if m.holder != nil {
			m.Group.follow(m, m.holder, now)
		}
	}
	m.nextProbe = now.Add(m.deb.spacing())
}

func (m *Machine) activeTick(now time.Time) {
	why := "repeat"
	if m.announcementsLeft == m.cfg.AnnounceCount {
		why = "claim" // the first round waited for the pacer
	}
	m.announceDue(now, why)
	if m.reconcileWith != nil && !now.Before(m.reconcileAt) {
		m.reconcileCheck(m.reconcileWith, now)
	}
}

func (m *Machine) Announce(why string, now time.Time) {
	if err := m.ARP.Announce(m.vip, m.cfg.AnnounceForm); err != nil {
		m.Log.Warn("announcement not sent", "why", why, "err", err)
		return
	}
	m.lastOwnAnnounce = now
	m.Observer.Counted(m.vip, "announce")
}

// selfCheck probes our own VIP: another holder's kernel answers it, and the
// tag tells standbys and other holders our rank. It reports false when it
// held the check back (checkWouldOverrideAnnouncement).
func (m *Machine) selfCheck(now time.Time) bool {
	if m.checkWouldOverrideAnnouncement(now) {
		return false
	}
	if err := m.ARP.Probe(m.vip, m.tag(frame.FlagHolder), frame.BroadcastMAC); err != nil {
		m.Log.Debug("self-check not sent", "err", err)
	}
	m.lastIntroduce = now
	return true
}

// checkWouldOverrideAnnouncement: over IPv6 another holder's kernel answers
// our self-check (a DAD probe) with an NA to all nodes, which re-points the
// neighbours at it. Right after our own announcement that answer would be
// the last word the clients hear, from a split-brain loser that releases on
// our announcement (the lab's IPv6 heal lost the client for 200 ms). Over
// IPv4 the answer is unicast to us and moves nobody.
func (m *Machine) checkWouldOverrideAnnouncement(now time.Time) bool {
	return m.vip.Is6() && !m.lastOwnAnnounce.IsZero() && now.Sub(m.lastOwnAnnounce) < announceOrderMargin
}

// release removes the VIP; notify also tells the standbys at once that it
// is free (a tagged probe with the releasing flag, sent after the removal
// so that their claim check is not answered by our own kernel).
func (m *Machine) release(notify bool) {
	if m.added {
		if err := m.Address.Remove(); err != nil {
			m.Log.Error("cannot remove the VIP", "err", err)
			return
		}
		m.added = false
		m.Log.Info("released VIP")
	}
	if notify && m.linkUp {
		if err := m.ARP.Probe(m.vip, m.tag(frame.FlagReleasing), frame.BroadcastMAC); err != nil {
			m.Log.Debug("release notice not sent", "err", err)
		}
	}
}

// Shutdown runs when the daemon stops. Only a sole holder announces that
// the VIP is free; a yielding loser leaves it to the winner. A VIP handed
// over to the next program of a reload stays, and nobody is told.
func (m *Machine) Shutdown(now time.Time) {
	if m.handedOver {
		return
	}
	m.release(m.state == event.Active)
	m.setState(event.Standby, "shutdown", now)
}
