package engine

// Another holder of a VIP this node holds: a floatip node (a split brain,
// resolved by rank, or by the pool's assignment, make before break) or a
// stranger (defended against as RFC 5227 §2.4(c) says).

import (
	"bytes"
	"log/slog"
	"net"
	"time"

	"floatip/internal/event"
	"floatip/internal/wire/frame"
)

// conflict handles another node that holds the VIP while we do. Both sides
// first make sure the other knows their rank (a tagged self-check), then
// reach the same verdict without talking: the loser removes its copy only
// after the winner has announced (make before break). Only a confirmed
// floatip node gets a verdict; anything else is a stranger.
func (m *Machine) conflict(f frame.Frame, now time.Time) {
	mac := f.Packet.SenderHardwareAddr
	other, isFloatip := m.Group.peers.confirmed(mac)
	if !isFloatip {
		m.stranger(mac, now)
		return
	}
	if now.Sub(m.lastIntroduce) >= introduceEvery {
		m.selfCheck(now)
	}
	// The same node may hold more of our VIPs: check them all now.
	m.Group.reconcile(mac, now)
	verdict := resolveConflict(m.self(), other, true)
	if m.Group.pool != nil {
		verdict = m.Group.pool.resolve(m.vip, mac, verdict) // the assignee wins
	}
	if verdict == yield {
		if bytes.Equal(m.lastGratuitous, mac) && now.Sub(m.lastGratuitousAt) <= recentAnnouncement &&
			m.lastGratuitousAt.Sub(m.lastOwnAnnounce) > announceOrderMargin && m.lastGratuitousAt.Sub(m.lastKernelAnswer) > kernelAnswerMargin {
			// The winner has re-pointed the neighbours, clearly after our
			// own last announcement: removing now leaves no gap.
			m.Log.Info("split brain resolved: releasing to the better node", "winner", other.String())
			m.release(false)
			m.holder = append(net.HardwareAddr(nil), mac...)
			m.becomeStandby(now, true, "split brain lost")
			return
		}
		if m.state != event.Yielding {
			m.Log.Warn("split brain: another floatip node holds the VIP and outranks us; waiting for its announcement", "winner", other.String())
			m.yieldTo, m.yieldDeadline = other, now.Add(yieldTimeout)
			m.setState(event.Yielding, "split brain lost", now)
		}
		return
	}
	if m.state == event.Yielding {
		if !bytes.Equal(m.yieldTo.mac, mac) {
			// We outrank this holder but lose to another one (three holders
			// after a partition of two heals): an announcement now would pull
			// the clients to us just before we let go.
			return
		}
		// The verdict against the very node we yield to has turned: a
		// pool's assignment changed since (right after a heal, a node sees
		// the other side's members one by one), and that node may be
		// yielding to us for the same reason. Keep the VIP and say so,
		// rather than both letting go at the yield timeout.
		m.Log.Info("split brain: the verdict turned, keeping the VIP", "other", other.String())
		m.setState(event.Active, "split brain won after all", now)
	}
	if now.Sub(m.lastWinnerNotice) >= winnerAnnounceEvery {
		m.lanLog.logAt(now, slog.LevelWarn, "split brain: another floatip node holds the VIP; we outrank it and re-announce", "other", other.String())
		m.lastWinnerNotice = now
		// Announce a moment later, not at once: with three holders, the
		// middle one outranks the worst but must first hear (from the
		// introductions just exchanged) that the best outranks it, or its
		// announcement comes last and the clients follow a node that is
		// about to let go. Then once more after the announcement spacing,
		// so the last word the clients hear is the winner's.
		m.announcementsLeft = max(m.announcementsLeft, 2)
		if soon := now.Add(FastSpacing(m.cfg.Interval)); m.nextAnnounce.After(soon) || m.nextAnnounce.Before(now) {
			m.nextAnnounce = soon
		}
	}
	// The loser lets go only after an announcement of ours clearly later
	// than its own (announceOrderMargin). When its last one came just
	// before ours would (the heal met one of its claim rounds), ours would
	// not count and the loser would wait a whole spacing for the next one.
	if m.announcementsLeft > 0 && bytes.Equal(m.lastGratuitous, mac) {
		if after := m.lastGratuitousAt.Add(announceOrderMargin + FastSpacing(m.cfg.Interval)); m.nextAnnounce.Before(after) {
			m.nextAnnounce = after
		}
	}
}

// stranger handles a holder of the VIP that has not shown itself a floatip
// node: a host that is not floatip, a floatip node not yet heard twice, or
// noise. An episode of strangers (until DefendInterval passes without one)
// gets one identification window, whatever their MACs, then the RFC 5227
// defence: a flood from changing MACs neither postpones the defence nor
// makes it more frequent. A stranger that shows up again after a quiet
// spell gets no second window.
func (m *Machine) stranger(mac net.HardwareAddr, now time.Time) {
	if m.identifying == nil || (now.Sub(m.lastStrangerAt) >= DefendInterval && !bytes.Equal(m.identifying, mac)) {
		m.identifying, m.identifyDeadline = append(net.HardwareAddr(nil), mac...), now.Add(identifyTimeout)
		m.strangerFrames = 0
		m.lanLog.logAt(now, slog.LevelInfo, "another host answers for the VIP; finding out whether it runs floatip", "other_mac", mac.String())
	}
	m.lastStrangerAt = now
	m.strangerFrames++
	if now.Before(m.identifyDeadline) {
		// It may be a floatip node that has not heard our rank yet.
		if now.Sub(m.lastIntroduce) >= introduceEvery {
			m.selfCheck(now)
		}
		return
	}
	if now.Sub(m.lastDefense) >= DefendInterval {
		m.lanLog.logAt(now, slog.LevelWarn, "address conflict: a host that does not run floatip holds the VIP; defending it (RFC 5227 2.4c)",
			"other_mac", mac.String(), "frames", m.strangerFrames)
		m.strangerFrames = 0
		m.Announce("defend", now)
		m.lastDefense = now
	}
}
