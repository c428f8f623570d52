package engine

// What the interface's changes do to a machine: the link coming and going, its
// address removed or added behind its back, netlink events missed, the
// health check's verdicts.

import (
	"time"

	"floatip/internal/event"
)

// onEvent applies one change of the interface, or a health verdict.
func (m *Machine) onEvent(ev MachineEvent, now time.Time) {
	switch ev {
	case EvLinkUp:
		m.linkUp = true
		if m.keepAtLinkUp {
			// Held across a reload: the address never left the interface.
			m.keepAtLinkUp = false
			if m.state == event.Active {
				return
			}
		}
		if m.state == event.Adopting {
			// A VIP found at start: ask who holds it before announcing.
			m.startAdopting(now)
			return
		}
		// Wait a whole dead time again before claiming.
		m.deb = newDebouncer(m.cfg.Interval, m.cfg.Misses, now)
		m.becomeStandby(now, false, "link up")
		m.nextProbe = now
	case EvLinkDown:
		m.linkUp = false
		if m.state == event.Active || m.state == event.Yielding || m.added {
			// A holder without carrier cannot serve the VIP: give it up so
			// the address can move, and come back as a standby.
			m.Log.Warn("link down: releasing the VIP")
			m.release(false)
		}
		m.holder = nil
		m.Group.unfollow(m)
		m.setState(event.Standby, "link down", now)
	case EvAddrRemoved:
		if m.state == event.Adopting {
			m.added = false
			m.becomeStandby(now, false, "VIP removed while adopting")
			return
		}
		if m.state == event.Active && m.added {
			m.Log.Warn("VIP was removed behind floatip's back: adding it again")
			if err := m.Address.Add(); err != nil {
				m.Log.Error("cannot add the VIP again", "err", err)
				return
			}
			m.becomeActive(now, "re-added")
		}
	case EvAddrAdded:
		if m.added || m.state != event.Standby {
			return // ours: the echo of a claim's or an adoption's add, or a holder's re-add
		}
		// Added by hand (or by another tool) while we stand by: the kernel
		// now answers for it, a second holder on the wire if another node
		// holds it. Treat it as a copy found at start (recovery.go).
		m.Log.Warn("VIP was added to the interface outside floatip: checking that no other node holds it")
		m.added = true
		m.setState(event.Adopting, "VIP added by hand", now)
		if m.linkUp {
			m.startAdopting(now)
		} // else at link up
	case EvResync:
		if m.state == event.Active && m.added {
			if err := m.Address.Add(); err != nil {
				m.Log.Error("cannot re-add the VIP", "err", err)
			}
		}
	case EvHealthy:
		m.healthy, m.saidUnhealthy = true, false
	case EvUnhealthy:
		m.healthy = false
		if m.state == event.Active || m.state == event.Yielding {
			// Hand over gracefully: the release notice makes a healthy
			// standby claim at once.
			m.Log.Warn("health check fails: releasing the VIP to a healthy standby")
			m.release(m.state == event.Active)
			m.becomeStandby(now, false, "health check failed")
		}
	}
}
