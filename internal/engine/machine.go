package engine

// The VIP's machine: its state, its clock (nextWake, onTick) and what it
// does with each frame heard for its VIP. takeover.go holds the claim and
// the active holder.

import (
	"bytes"
	"context"
	"log/slog"
	"net"
	"net/netip"
	"time"

	"floatip/internal/event"
	"floatip/internal/wire/frame"
)

// Machine holds the decisions of one VIP: standby → claim → active →
// release. It owns no goroutine: the interface's loop (ifaceDaemon) calls
// its handlers, and asks nextWake when it next has something to do.
type Machine struct {
	vip netip.Addr
	cfg Config
	Deps

	ctx  context.Context // of the daemon, for the fencing command
	slot int             // its place in the group's wakeQueue

	state   event.State
	healthy bool
	linkUp  bool
	added   bool // the address is configured by us and must be removed on exit
	deb     *debouncer
	holder  net.HardwareAddr // the other node last seen holding the VIP
	// follow is the watch of the holder that checks its liveness for us
	// (standby with a holder that answers); nil: this machine probes.
	follow *holderWatch
	// watchCheckedAt: the holder's watch found it silent and did the claim
	// check for all its VIPs then; while that is fresh (watchCheckFresh),
	// claim without one of our own. A stale one, or any later sign of a
	// holder or a release notice, means a claim check of our own: several
	// standbys that each skip it all claim at once.
	watchCheckedAt time.Time
	// reconcileWith: a reconcile probe to this node waits for the pacer.
	reconcileWith net.HardwareAddr
	reconcileAt   time.Time

	// standby
	nextProbe          time.Time
	probeOutstanding   bool
	answeredSinceProbe bool
	saidIsolated       bool
	refsAskedAt        time.Time // the first question to the reference hosts of this episode (askReferences)
	saidUnhealthy      bool
	// keepAtLinkUp: a VIP held across a reload stays active at the first
	// link up instead of starting over as a standby.
	keepAtLinkUp bool
	// handedOver: the VIP stays on the interface when this process ends,
	// for the program it re-executes (Group.HandOver).
	handedOver       bool
	lowerHolderSince time.Time // preemption: a lower-ranked holder seen since
	holderReleased   bool      // the holder said it left: no fencing needed
	nextFence        time.Time // after a failed fencing
	// claiming
	claimDeadline time.Time
	// active
	announcementsLeft int
	nextAnnounce      time.Time
	lastIntroduce     time.Time
	lastDefense       time.Time        // against a holder that is not floatip (RFC 5227)
	lastWinnerNotice  time.Time        // against a floatip node we outrank
	identifying       net.HardwareAddr // the first stranger of an episode; nil: none
	identifyDeadline  time.Time
	lastStrangerAt    time.Time // the episode ends after DefendInterval without strangers
	strangerFrames    int       // frames from strangers since the last defence
	lanLog            *limitedLog
	lastGratuitous    net.HardwareAddr // who last announced the VIP, and when
	lastGratuitousAt  time.Time
	lastOwnAnnounce   time.Time      // our last announcement: a winner's must come after it
	lastKernelAnswer  time.Time      // IPv6: our kernel answered another node's probe for the VIP to all nodes
	iso               isolationWatch // reference rounds (isolation.go)
	// yielding
	yieldDeadline time.Time
	yieldTo       rank
}

// Start is how a machine begins.
type Start int

const (
	// StartStandby: probe the VIP, claim it when it is free.
	StartStandby Start = iota
	// StartAdopting: the VIP was found on the interface at start, most
	// likely left by a run that did not exit cleanly: keep it while
	// checking that no other node holds it (recovery.go).
	StartAdopting
	// StartHeld: this process held the VIP before it re-executed itself
	// for a reload (Group.HandOver): it is still ours and never left the
	// interface, so the machine is active at once, with no adoption probe
	// and no announcement (nothing moved), and no state change for the
	// hooks.
	StartHeld
)

// NewMachine adds the machine of vip to deps.Group (a group of its own when
// nil), beginning as start says.
func NewMachine(vip netip.Addr, cfg Config, deps Deps, start Start, now time.Time) *Machine {
	if deps.Refs == nil {
		deps.Refs = EverReachable{}
	}
	if deps.Observer == nil {
		deps.Observer = event.NoObserver{}
	}
	if deps.Group == nil {
		deps.Group = NewGroup(cfg, deps.ARP, deps.Log)
	}
	deps.Log = deps.Log.With("vip", vip.String())
	m := &Machine{
		lanLog:  newLimitedLog(deps.Log, lanLogEvery, lanLogBurst),
		vip:     vip,
		cfg:     cfg,
		Deps:    deps,
		ctx:     context.Background(),
		healthy: !deps.StartUnhealthy,
		deb:     newDebouncer(cfg.Interval, cfg.Misses, now),
	}
	switch start {
	case StartAdopting:
		m.state, m.added = event.Adopting, true
		m.Log.Warn("VIP already configured as /32 (left by an earlier run?): keeping it while checking that no other node holds it")
	case StartHeld:
		m.state, m.added, m.keepAtLinkUp = event.Active, true, true
	}
	deps.Group.add(m)
	if m.state == event.Active {
		deps.Group.held.add(m, now) // the self-checks and refreshes of a holder
	}
	return m
}

// Start tells the observer where the machine stands as the daemon starts;
// ctx is the daemon's, for the fencing command.
func (m *Machine) Start(ctx context.Context, now time.Time) {
	m.ctx = ctx
	m.report("start", now)
}

func (m *Machine) self() rank {
	return rank{priority: m.cfg.Priority, mac: m.ARP.MAC()}
}

func (m *Machine) tag(flags uint8) frame.Tag {
	return frame.Tag{Priority: m.cfg.Priority, Flags: flags}
}

func (m *Machine) queueSlot() *int { return &m.slot }

// setState moves the machine and tells the observer.
func (m *Machine) setState(to event.State, reason string, now time.Time) {
	from := m.state
	m.state = to
	if (from == event.Standby) != (to == event.Standby) {
		if to == event.Standby {
			m.Group.notStandby--
		} else {
			m.Group.notStandby++
		}
	}
	if to != event.Standby {
		m.Group.unfollow(m)
		m.watchCheckedAt = time.Time{}
	}
	if to == event.Active {
		m.Group.held.add(m, now)
	} else if from == event.Active {
		m.Group.held.remove(m)
	}
	if from != to {
		m.Observer.StateChanged(event.Change{VIP: m.vip, Interface: m.Interface, From: from, To: to,
			Holder: m.holder, Reason: reason, At: now})
	}
}

// report tells the observer the current facts without a transition
// (From == To): the state at start, a new holder seen from standby.
func (m *Machine) report(reason string, now time.Time) {
	m.Observer.StateChanged(event.Change{VIP: m.vip, Interface: m.Interface, From: m.state, To: m.state,
		Holder: m.holder, Reason: reason, At: now})
}

// nextWake is when onTick has something to do.
func (m *Machine) nextWake() time.Time {
	far := time.Now().Add(time.Hour)
	if !m.linkUp {
		return far
	}
	switch m.state {
	case event.Standby:
		if m.follow != nil {
			// The holder's watch checks it for us; only a preemption
			// needs a wake-up of our own.
			if m.cfg.Preempt && !m.lowerHolderSince.IsZero() {
				return m.lowerHolderSince.Add(m.cfg.PreemptDelay)
			}
			return far
		}
		return m.nextProbe
	case event.Claiming:
		return m.claimDeadline
	case event.Yielding:
		return m.yieldDeadline
	case event.Fencing:
		return far // woken by the command's result
	case event.Adopting:
		return m.nextProbe
	case event.Active:
		wake := far
		if m.announcementsLeft > 0 {
			wake = m.nextAnnounce
		}
		if m.reconcileWith != nil && m.reconcileAt.Before(wake) {
			wake = m.reconcileAt
		}
		return wake
	}
	return far
}

func (m *Machine) onTick(now time.Time) {
	if !m.linkUp {
		return
	}
	switch m.state {
	case event.Standby:
		if m.follow != nil {
			if m.preemptDue(now) {
				m.preemptClaim(now)
			}
			return
		}
		if !now.Before(m.nextProbe) {
			m.standbyProbe(now)
		}
	case event.Claiming:
		if !now.Before(m.claimDeadline) {
			m.finishClaim(now)
		}
	case event.Yielding:
		if !now.Before(m.yieldDeadline) {
			m.Log.Warn("split brain: the winner did not announce in time; releasing anyway", "winner", m.yieldTo.String())
			m.release(false)
			m.becomeStandby(now, true, "split brain lost")
		}
	case event.Active:
		m.activeTick(now)
	case event.Adopting:
		m.adoptTick(now)
	}
}

func (m *Machine) onFrame(f frame.Frame, now time.Time) {
	own := m.ARP.MAC()
	if own == nil || !f.FromOther(own) {
		return
	}
	p := f.Packet
	isProbeForVIP := p.Operation == 1 && p.SenderIP.IsUnspecified() && p.TargetIP == m.vip
	var tag frame.Tag
	tagged := false
	if isProbeForVIP {
		tag, tagged = frame.ParseTag(p.TargetHardwareAddr)
		if tagged {
			m.Group.peers.observe(p.SenderHardwareAddr, tag, now)
			if m.Group.pool != nil {
				m.Group.pool.heard(p.SenderHardwareAddr, tag, now)
			}
			if bytes.Equal(m.lastGratuitous, p.SenderHardwareAddr) && now.Sub(m.lastGratuitousAt) <= recentAnnouncement {
				m.Group.peers.heard(p.SenderHardwareAddr) // it announced just before its tag
			}
		}
	}
	holderSign := frame.HolderEvidence(f, m.vip, own) || (tagged && tag.Flags&frame.FlagHolder != 0)
	releasing := tagged && tag.Flags&frame.FlagReleasing != 0
	if holderSign && !tagged {
		m.Group.peers.heard(p.SenderHardwareAddr)
	}
	if holderSign {
		m.Group.sawHolderNode(p.SenderHardwareAddr, now)
	}
	if holderSign && frame.IsGratuitous(f) {
		m.lastGratuitous, m.lastGratuitousAt = append(net.HardwareAddr(nil), p.SenderHardwareAddr...), now
	}
	if isProbeForVIP && m.vip.Is6() && m.added {
		// Our kernel has already answered this DAD probe, to all nodes:
		// for the neighbours that is an announcement of ours.
		m.lastKernelAnswer = now
	}

	switch m.state {
	case event.Standby:
		if holderSign {
			m.sawHolder(f, now)
		} else if releasing && (m.holder == nil || bytes.Equal(m.holder, p.SenderHardwareAddr)) {
			m.Log.Info("holder released the VIP", "holder", p.SenderHardwareAddr.String())
			m.Group.unfollow(m)
			m.holderReleased = true
			m.watchCheckedAt = time.Time{} // a claim check of our own, heard by the other standbys
			m.deb.forceFree(now)
			m.lowerHolderSince = time.Time{}
			m.nextProbe = now
		}
	case event.Claiming, event.Fencing:
		if holderSign {
			m.sawHolder(f, now)
			m.Log.Info("claim aborted: VIP is held", "holder", p.SenderHardwareAddr.String())
			m.becomeStandby(now, true, "claim aborted: held")
		} else if tagged && !releasing && tag.Flags&frame.FlagStandAside == 0 && m.Group.pool == nil && (rank{priority: tag.Priority, mac: p.SenderHardwareAddr}).outranks(m.self()) {
			m.Log.Info("claim aborted: a better standby is claiming", "standby", p.SenderHardwareAddr.String())
			m.becomeStandby(now, false, "claim aborted: better standby")
		}
	case event.Active, event.Yielding:
		if holderSign {
			m.Observer.Counted(m.vip, "conflict")
			m.conflict(f, now)
		}
	case event.Adopting:
		if holderSign {
			m.adoptDecide(now, &f)
		}
	}
}

// sawHolder records a sign of life of the holder, and for preemption
// whether it is one this node outranks.
func (m *Machine) sawHolder(f frame.Frame, now time.Time) {
	mac := f.Packet.SenderHardwareAddr
	m.answeredSinceProbe = true
	m.deb.answered(now)
	m.holderReleased = false
	m.watchCheckedAt = time.Time{}
	if !bytes.Equal(m.holder, mac) {
		m.holder = append(net.HardwareAddr(nil), mac...)
		m.lowerHolderSince = time.Time{}
		m.lanLog.logAt(now, slog.LevelInfo, "VIP is held", "holder", m.holder.String())
		m.report("holder seen", now)
	}
	if m.state == event.Standby {
		m.Group.follow(m, mac, now)
	}
	if r, known := m.Group.peers.known(mac); known && m.self().outranks(r) {
		if m.lowerHolderSince.IsZero() {
			m.lowerHolderSince = now
		}
	} else {
		m.lowerHolderSince = time.Time{}
	}
}
