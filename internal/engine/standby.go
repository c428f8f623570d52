package engine

// A standby's decisions: when to probe, whether the VIP is free (debounce,
// a better standby, health, reference hosts, fencing), and the claim check
// before the VIP is added (takeover.go adds it and announces).

import (
	"context"
	"net"
	"time"

	"floatip/internal/event"
	"floatip/internal/wire/frame"
)

// standbyProbe closes the previous probe (answered or missed), decides
// whether the VIP is free, and sends the next probe: unicast to a holder
// that answers, broadcast once one probe went unanswered (so the other
// standbys hear this one's rank before anyone claims).
func (m *Machine) standbyProbe(now time.Time) {
	if m.probeOutstanding && !m.answeredSinceProbe {
		m.deb.missed()
		m.Observer.Counted(m.vip, "miss")
	}
	m.probeOutstanding = false
	suspicious := m.deb.missedInRow > 0
	if suspicious {
		m.askReferences(now)
	}
	switch {
	case m.deb.free(now):
		if pool := m.Group.pool; pool != nil && !pool.mayClaim(m, now) {
			// Pool mode: the assignment decides, not the rank.
		} else if better, ok := m.Group.peers.betterStandby(m.self(), m.holder, now, m.deb.deadTime()); ok && pool == nil {
			m.Log.Debug("VIP is free but a better standby is alive: leaving the claim to it", "standby", better.String())
		} else if !m.healthy {
			if !m.saidUnhealthy {
				m.Log.Warn("VIP is free but this node's health check fails: not claiming")
				m.saidUnhealthy = true
			}
		} else if !m.Refs.Reachable(now, m.deb.deadTime()) {
			// Not asked lately (a release notice, a holder that was
			// answering until now): ask, and decide once a reference on
			// the LAN has had time to answer, rather than call this node
			// cut off.
			if now.Sub(m.refsAskedAt) > m.deb.deadTime() {
				m.askReferences(now)
			}
			if answered := m.refsAskedAt.Add(referenceAnswerWait); now.Before(answered) {
				m.nextProbe = answered
				return
			}
			if !m.saidIsolated {
				m.Log.Warn("VIP looks free but no reference host answers: this node is probably the one cut off; not claiming")
				m.saidIsolated = true
			}
		} else if m.Fence != nil && m.holder != nil && !m.holderReleased {
			if !now.Before(m.nextFence) {
				m.startFence(now)
				return
			}
		} else if !m.Group.pacer.take(now) {
			m.nextProbe = m.Group.pacer.nextToken(now) // many VIPs claim at once
			return
		} else if m.watchCheckFresh(now) {
			m.claim(now, "claimed VIP", "holder silent")
			return
		} else {
			m.startClaim(now)
			return
		}
	case m.preemptDue(now):
		m.preemptClaim(now)
		return
	}
	if !m.Group.pacer.take(now) {
		m.nextProbe = m.Group.pacer.nextToken(now) // many VIPs probe at once
		return
	}
	dst := frame.BroadcastMAC
	if !suspicious && m.holder != nil {
		dst = m.holder
	}
	if m.probeFor(now, dst) {
		m.probeOutstanding, m.answeredSinceProbe = true, false
		m.nextProbe = now.Add(m.deb.spacing())
	} else {
		m.nextProbe = now.Add(m.cfg.Interval)
	}
}

// probeFor sends a standby's tagged probe for the VIP to dst (the holder,
// or broadcast); the holder's watch uses it too.
func (m *Machine) probeFor(now time.Time, dst net.HardwareAddr) bool {
	var flags uint8
	if !m.healthy {
		flags = frame.FlagStandAside // so that no standby waits for us to claim
	}
	if err := m.ARP.Probe(m.vip, m.tag(flags), dst); err != nil {
		m.Log.Debug("probe not sent", "err", err)
		return false
	}
	m.Observer.Counted(m.vip, "probe")
	return true
}

// askReferences asks the reference hosts (their watch rate-limits the
// probes); the wait for their answer runs from the first question of an
// episode, not from every probe's.
func (m *Machine) askReferences(now time.Time) {
	m.Refs.Probe(now)
	if now.Sub(m.refsAskedAt) > m.deb.deadTime() {
		m.refsAskedAt = now
	}
}

// watchCheckFresh: the holder's watch did the claim check so recently
// (within one interval: the pacer may hold a claim of many VIPs back a
// little) that this machine may claim without one of its own.
func (m *Machine) watchCheckFresh(now time.Time) bool {
	return !m.watchCheckedAt.IsZero() && now.Sub(m.watchCheckedAt) <= m.cfg.Interval
}

// suspect: the holder's watch found the holder alive but silent for this
// VIP; the machine checks it on its own, as after one missed probe.
func (m *Machine) suspect(now time.Time) {
	m.deb.answered(now.Add(-m.cfg.Interval))
	m.deb.missed()
	m.probeOutstanding = false
	m.nextProbe = now
}

// holderSilent: the holder's watch found the holder dead; the machine takes
// over its debounce and decides at once.
func (m *Machine) holderSilent(now time.Time, deb *debouncer) {
	d := *deb
	m.deb = &d
	m.watchCheckedAt = now
	m.probeOutstanding = false
	m.nextProbe = now
}

// reconcileCheck sends a holder's tagged self-check to one node only (a
// reconcile, group.reconcile): its kernel answers if it holds the VIP too.
// Without a token from the pacer it waits in reconcileWith for the
// machine's next tick.
func (m *Machine) reconcileCheck(mac net.HardwareAddr, now time.Time) {
	if !m.Group.pacer.take(now) {
		m.reconcileWith, m.reconcileAt = mac, m.Group.pacer.nextToken(now)
		return
	}
	m.reconcileWith = nil
	if err := m.ARP.Probe(m.vip, m.tag(frame.FlagHolder), mac); err != nil {
		m.Log.Debug("reconcile probe not sent", "err", err)
	}
}

// preemptDue: with --preempt, a holder this node outranks has been seen
// continuously for the hold-down delay, and the references answer.
func (m *Machine) preemptDue(now time.Time) bool {
	deb := m.deb
	if m.follow != nil {
		deb = m.follow.deb
	}
	if !m.cfg.Preempt || m.Group.pool != nil || !m.healthy || m.lowerHolderSince.IsZero() || deb.missedInRow > 0 {
		return false
	}
	return now.Sub(m.lowerHolderSince) >= m.cfg.PreemptDelay && m.Refs.Reachable(now, deb.deadTime())
}

// startFence runs the --fence command against the silent holder, in the
// background: frames keep being handled, and a holder that shows up again
// aborts the claim whatever the command says.
func (m *Machine) startFence(now time.Time) {
	holder := append(net.HardwareAddr(nil), m.holder...)
	m.Log.Info("holder went silent: fencing it before claiming", "holder", holder.String())
	m.setState(event.Fencing, "fencing the silent holder", now)
	go func(ctx context.Context, done chan<- FenceResult) {
		done <- FenceResult{machine: m, err: m.Fence(ctx, m.vip, holder)}
	}(m.ctx, m.FenceDone)
}

func (m *Machine) onFenceDone(err error, now time.Time) {
	if m.state != event.Fencing {
		return // aborted meanwhile: the holder came back, or the link went down
	}
	if err != nil {
		m.Log.Error("fencing failed: not claiming", "err", err)
		m.nextFence = now.Add(fenceRetry)
		m.becomeStandby(now, false, "fencing failed")
		return
	}
	m.Log.Info("fencing succeeded")
	m.startClaim(now)
}

// startClaim sends one last probe before the VIP is added.
func (m *Machine) startClaim(now time.Time) {
	m.setState(event.Claiming, "holder silent", now)
	m.answeredSinceProbe = false
	m.saidIsolated = false
	if err := m.ARP.Probe(m.vip, m.tag(0), frame.BroadcastMAC); err != nil {
		m.Log.Debug("claim probe not sent", "err", err)
		m.becomeStandby(now, false, "claim probe not sent")
		return
	}
	m.claimDeadline = now.Add(FastSpacing(m.cfg.Interval))
}

// finishClaim adds the VIP if the last probe went unanswered too.
func (m *Machine) finishClaim(now time.Time) {
	if m.answeredSinceProbe {
		m.becomeStandby(now, true, "claim answered")
		return
	}
	m.claim(now, "claimed VIP", "holder silent")
}

// preemptClaim takes the VIP from a lower-ranked holder: make before break.
// Adding and announcing first means the old holder sees a better node's
// announcement and only then removes its copy, so clients see no gap.
func (m *Machine) preemptClaim(now time.Time) {
	m.Log.Info("preempting a lower-ranked holder", "holder", m.holder.String())
	m.claim(now, "claimed VIP by preemption", "preempt")
}
