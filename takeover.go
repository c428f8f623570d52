package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"time"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

// vipState is where one VIP's state machine stands.
type vipState int

const (
	stateStandby  vipState = iota // someone else holds the VIP, or nobody yet: probe
	stateClaiming                 // the holder is silent: one last check before adding
	stateActive                   // this node holds the VIP
	stateYielding                 // split brain lost: wait for the winner's announcement, then remove
	stateFencing                  // the holder went silent: the --fence command runs before the claim
)

func (s vipState) String() string {
	switch s {
	case stateStandby:
		return "standby"
	case stateClaiming:
		return "claiming"
	case stateActive:
		return "active"
	case stateYielding:
		return "yielding"
	case stateFencing:
		return "fencing"
	}
	return fmt.Sprintf("vipState(%d)", int(s))
}

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
	// defendInterval is RFC 5227's DEFEND_INTERVAL: at most one defending
	// announcement per 10 s against a holder that is not floatip.
	defendInterval = 10 * time.Second
	// winnerAnnounceEvery limits the re-announcements of a split-brain
	// winner against another floatip node.
	winnerAnnounceEvery = time.Second
	// yieldTimeout bounds how long a split-brain loser waits for the
	// winner's announcement before it removes the VIP anyway.
	yieldTimeout = 2 * time.Second
	// recentAnnouncement: a winner's announcement seen this recently still
	// counts when the loser learns the winner's rank just after it.
	recentAnnouncement = time.Second
	// fenceRetry is the pause after a failed fencing before trying again.
	fenceRetry = 5 * time.Second
)

// machineConfig is what one VIP's state machine needs from the command line.
type machineConfig struct {
	priority        uint8
	interval        time.Duration
	misses          int
	announceCount   int
	announceSpacing time.Duration
	announceForm    announceForm
	refresh         time.Duration // 0: no periodic re-announcement
	preempt         bool          // take the VIP from a lower-ranked holder
	preemptDelay    time.Duration // ... after seeing it continuously this long
}

// arpSender sends the ARP packets of a VIP; arpPort implements it.
type arpSender interface {
	mac() net.HardwareAddr
	probe(vip netip.Addr, tag peerTag, dst net.HardwareAddr) error
	announce(vip netip.Addr, form announceForm) error
}

// vipAddress adds and removes the VIP on the interface; netlinkAddress
// implements it.
type vipAddress interface {
	add() error
	remove() error
}

// reachability tells whether this node can reach a reference host (its
// gateway, or --reference): a node that cannot is the one cut off, and must
// not claim. referenceWatch implements it.
type reachability interface {
	// probe asks the reference hosts whether they are there; rate-limited.
	probe(now time.Time)
	// reachable reports whether one answered within window (true when there
	// are no reference hosts to ask).
	reachable(now time.Time, window time.Duration) bool
}

// everReachable is the reachability of a node with no reference hosts.
type everReachable struct{}

func (everReachable) probe(time.Time)                         {}
func (everReachable) reachable(time.Time, time.Duration) bool { return true }

// machineEvent is a change of the interface that a VIP's machine must act on.
type machineEvent int

const (
	evLinkUp      machineEvent = iota // the interface is usable (again): a fresh socket
	evLinkDown                        // carrier lost or interface gone
	evAddrRemoved                     // the VIP/32 was deleted from the interface
	evResync                          // netlink events may have been missed
	evHealthy                         // the --check passes (again)
	evUnhealthy                       // the --check fails: do not hold the VIP
)

// stateChange is reported on every transition of a VIP's machine, for
// hooks, metrics and status.
type stateChange struct {
	VIP       netip.Addr
	Interface string
	From, To  vipState
	Holder    net.HardwareAddr // the other holder known at the time, if any
	Reason    string
	At        time.Time
}

// observer learns what the machines do; it must never block.
type observer interface {
	stateChanged(stateChange)
	// counted records one event of a VIP: "probe", "miss", "conflict", "announce".
	counted(vip netip.Addr, what string)
}

// noObserver is the observer of a machine nobody watches.
type noObserver struct{}

func (noObserver) stateChanged(stateChange)   {}
func (noObserver) counted(netip.Addr, string) {}

// fenceFunc runs the operator's fencing step against a silent holder; the
// claim goes ahead only if it returns nil.
type fenceFunc func(ctx context.Context, vip netip.Addr, holder net.HardwareAddr) error

// machineDeps are a VIP machine's links to the world.
type machineDeps struct {
	ifname string
	log    *slog.Logger
	arp    arpSender
	addr   vipAddress
	refs   reachability
	obs    observer
	fence  fenceFunc // nil: no fencing
	// checked: a health check gates claims; the node starts unhealthy
	// until the check has passed.
	checked bool
}

// vipMachine runs one VIP: standby → claim → active → release.
type vipMachine struct {
	vip netip.Addr
	cfg machineConfig
	machineDeps

	frames    chan arpFrame
	events    chan machineEvent
	fenceDone chan error
	ctx       context.Context // of Run, for the fencing command

	state   vipState
	healthy bool
	linkUp  bool
	added   bool // the address is configured by us and must be removed on exit
	deb     *debouncer
	peers   peerTable
	holder  net.HardwareAddr // the other node last seen holding the VIP

	// standby
	nextProbe          time.Time
	probeOutstanding   bool
	answeredSinceProbe bool
	saidIsolated       bool
	saidUnhealthy      bool
	lowerHolderSince   time.Time // preemption: a lower-ranked holder seen since
	holderReleased     bool      // the holder said it left: no fencing needed
	nextFence          time.Time // after a failed fencing
	// claiming
	claimDeadline time.Time
	// active
	announcementsLeft int
	nextAnnounce      time.Time
	nextRefresh       time.Time
	nextSelfCheck     time.Time
	lastIntroduce     time.Time
	lastDefense       time.Time // against a holder that is not floatip (RFC 5227)
	lastWinnerNotice  time.Time // against a floatip node we outrank
	identifying       net.HardwareAddr
	identifyDeadline  time.Time
	lastGratuitous    net.HardwareAddr // who last announced the VIP, and when
	lastGratuitousAt  time.Time
	// yielding
	yieldDeadline time.Time
	yieldTo       rank
}

func newVIPMachine(vip netip.Addr, cfg machineConfig, deps machineDeps, adopt bool, now time.Time) *vipMachine {
	if deps.refs == nil {
		deps.refs = everReachable{}
	}
	if deps.obs == nil {
		deps.obs = noObserver{}
	}
	deps.log = deps.log.With("vip", vip.String())
	m := &vipMachine{
		vip:         vip,
		cfg:         cfg,
		machineDeps: deps,
		frames:      make(chan arpFrame, 256),
		events:      make(chan machineEvent, 16),
		fenceDone:   make(chan error, 1),
		ctx:         context.Background(),
		healthy:     !deps.checked,
		deb:         newDebouncer(cfg.interval, cfg.misses, now),
		peers:       peerTable{},
	}
	if adopt {
		// The VIP/32 is already on the interface, most likely left by a run
		// that did not exit cleanly: keep serving it and let the self-check
		// find any other holder, rather than cause an outage.
		m.state, m.added = stateActive, true
		m.log.Warn("VIP already configured as /32: adopting it as active (left by an earlier run?)")
	}
	return m
}

// deliver hands a received frame to the machine without ever blocking the
// interface's read loop; a machine that falls 256 frames behind loses some.
func (m *vipMachine) deliver(f arpFrame) {
	select {
	case m.frames <- f:
	default:
	}
}

// notify hands an interface event to the machine.
func (m *vipMachine) notify(ctx context.Context, ev machineEvent) {
	select {
	case m.events <- ev:
	case <-ctx.Done():
	}
}

// Run drives the machine until ctx ends, then releases the VIP if this node
// holds it, and returns nil. A panic is turned into an error after the
// release: the address is never left behind by an exit path we control.
func (m *vipMachine) Run(ctx context.Context) (err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("internal error in the state machine of %s: %v", m.vip, r)
		}
		m.shutdown(time.Now())
	}()
	m.ctx = ctx
	m.report("start", time.Now())
	timer := time.NewTimer(time.Hour)
	defer timer.Stop()
	for {
		timer.Reset(time.Until(m.nextWake()))
		select {
		case <-ctx.Done():
			return nil
		case f := <-m.frames:
			m.onFrame(f, time.Now())
		case ev := <-m.events:
			m.onEvent(ev, time.Now())
		case err := <-m.fenceDone:
			m.onFenceDone(err, time.Now())
		case <-timer.C:
			m.onTick(time.Now())
		}
	}
}

func (m *vipMachine) self() rank {
	return rank{priority: m.cfg.priority, mac: m.arp.mac()}
}

func (m *vipMachine) tag(flags uint8) peerTag {
	return peerTag{priority: m.cfg.priority, flags: flags}
}

// setState moves the machine and tells the observer.
func (m *vipMachine) setState(to vipState, reason string, now time.Time) {
	from := m.state
	m.state = to
	if from != to {
		m.obs.stateChanged(stateChange{VIP: m.vip, Interface: m.ifname, From: from, To: to,
			Holder: m.holder, Reason: reason, At: now})
	}
}

// report tells the observer the current facts without a transition
// (From == To): the state at start, a new holder seen from standby.
func (m *vipMachine) report(reason string, now time.Time) {
	m.obs.stateChanged(stateChange{VIP: m.vip, Interface: m.ifname, From: m.state, To: m.state,
		Holder: m.holder, Reason: reason, At: now})
}

// nextWake is when onTick has something to do.
func (m *vipMachine) nextWake() time.Time {
	far := time.Now().Add(time.Hour)
	if !m.linkUp {
		return far
	}
	switch m.state {
	case stateStandby:
		return m.nextProbe
	case stateClaiming:
		return m.claimDeadline
	case stateYielding:
		return m.yieldDeadline
	case stateFencing:
		return far // woken by the command's result
	case stateActive:
		wake := m.nextSelfCheck
		if m.announcementsLeft > 0 && m.nextAnnounce.Before(wake) {
			wake = m.nextAnnounce
		}
		if m.cfg.refresh > 0 && m.nextRefresh.Before(wake) {
			wake = m.nextRefresh
		}
		return wake
	}
	return far
}

func (m *vipMachine) onTick(now time.Time) {
	if !m.linkUp {
		return
	}
	switch m.state {
	case stateStandby:
		if !now.Before(m.nextProbe) {
			m.standbyProbe(now)
		}
	case stateClaiming:
		if !now.Before(m.claimDeadline) {
			m.finishClaim(now)
		}
	case stateYielding:
		if !now.Before(m.yieldDeadline) {
			m.log.Warn("split brain: the winner did not announce in time; releasing anyway", "winner", m.yieldTo.String())
			m.release(false)
			m.becomeStandby(now, true, "split brain lost")
		}
	case stateActive:
		m.activeTick(now)
	}
}

// standbyProbe closes the previous probe (answered or missed), decides
// whether the VIP is free, and sends the next probe: unicast to a holder
// that answers, broadcast once one probe went unanswered (so the other
// standbys hear this one's rank before anyone claims).
func (m *vipMachine) standbyProbe(now time.Time) {
	if m.probeOutstanding && !m.answeredSinceProbe {
		m.deb.missed()
		m.obs.counted(m.vip, "miss")
	}
	m.probeOutstanding = false
	suspicious := m.deb.missedInRow > 0
	if suspicious {
		m.refs.probe(now)
	}
	switch {
	case m.deb.free(now):
		if better, ok := m.peers.betterStandby(m.self(), now, m.deb.deadTime()); ok {
			m.log.Debug("VIP is free but a better standby is alive: leaving the claim to it", "standby", better.String())
		} else if !m.healthy {
			if !m.saidUnhealthy {
				m.log.Warn("VIP is free but this node's health check fails: not claiming")
				m.saidUnhealthy = true
			}
		} else if !m.refs.reachable(now, m.deb.deadTime()) {
			if !m.saidIsolated {
				m.log.Warn("VIP looks free but no reference host answers: this node is probably the one cut off; not claiming")
				m.saidIsolated = true
			}
		} else if m.fence != nil && m.holder != nil && !m.holderReleased {
			if !now.Before(m.nextFence) {
				m.startFence(now)
				return
			}
		} else {
			m.startClaim(now)
			return
		}
	case m.preemptDue(now):
		m.preemptClaim(now)
		return
	}
	dst := broadcastMAC
	if !suspicious && m.holder != nil {
		dst = m.holder
	}
	var flags uint8
	if !m.healthy {
		flags = flagStandAside // so that no standby waits for us to claim
	}
	if err := m.arp.probe(m.vip, m.tag(flags), dst); err != nil {
		m.log.Debug("probe not sent", "err", err)
		m.nextProbe = now.Add(m.cfg.interval)
		return
	}
	m.obs.counted(m.vip, "probe")
	m.probeOutstanding, m.answeredSinceProbe = true, false
	m.nextProbe = now.Add(m.deb.spacing())
}

// preemptDue: with --preempt, a holder this node outranks has been seen
// continuously for the hold-down delay, and the references answer.
func (m *vipMachine) preemptDue(now time.Time) bool {
	if !m.cfg.preempt || !m.healthy || m.lowerHolderSince.IsZero() || m.deb.missedInRow > 0 {
		return false
	}
	return now.Sub(m.lowerHolderSince) >= m.cfg.preemptDelay && m.refs.reachable(now, m.deb.deadTime())
}

// startFence runs the --fence command against the silent holder, in the
// background: frames keep being handled, and a holder that shows up again
// aborts the claim whatever the command says.
func (m *vipMachine) startFence(now time.Time) {
	holder := append(net.HardwareAddr(nil), m.holder...)
	m.log.Info("holder went silent: fencing it before claiming", "holder", holder.String())
	m.setState(stateFencing, "fencing the silent holder", now)
	go func(ctx context.Context) {
		m.fenceDone <- m.fence(ctx, m.vip, holder)
	}(m.ctx)
}

func (m *vipMachine) onFenceDone(err error, now time.Time) {
	if m.state != stateFencing {
		return // aborted meanwhile: the holder came back, or the link went down
	}
	if err != nil {
		m.log.Error("fencing failed: not claiming", "err", err)
		m.nextFence = now.Add(fenceRetry)
		m.becomeStandby(now, false, "fencing failed")
		return
	}
	m.log.Info("fencing succeeded")
	m.startClaim(now)
}

// startClaim sends one last probe before the VIP is added.
func (m *vipMachine) startClaim(now time.Time) {
	m.setState(stateClaiming, "holder silent", now)
	m.answeredSinceProbe = false
	m.saidIsolated = false
	if err := m.arp.probe(m.vip, m.tag(0), broadcastMAC); err != nil {
		m.log.Debug("claim probe not sent", "err", err)
		m.becomeStandby(now, false, "claim probe not sent")
		return
	}
	m.claimDeadline = now.Add(fastSpacing(m.cfg.interval))
}

// finishClaim adds the VIP if the last probe went unanswered too.
func (m *vipMachine) finishClaim(now time.Time) {
	if m.answeredSinceProbe {
		m.becomeStandby(now, true, "claim answered")
		return
	}
	m.claim(now, "claimed VIP", "holder silent")
}

// preemptClaim takes the VIP from a lower-ranked holder: make before break.
// Adding and announcing first means the old holder sees a better node's
// announcement and only then removes its copy, so clients see no gap.
func (m *vipMachine) preemptClaim(now time.Time) {
	m.log.Info("preempting a lower-ranked holder", "holder", m.holder.String())
	m.claim(now, "claimed VIP by preemption", "preempt")
}

func (m *vipMachine) claim(now time.Time, msg, reason string) {
	if err := m.addr.add(); err != nil {
		m.log.Error("claim failed: cannot add the VIP", "err", err)
		m.becomeStandby(now, false, "add failed")
		m.nextProbe = now.Add(time.Second) // do not hammer netlink with a failing add
		return
	}
	m.added = true
	previous := "none"
	if m.holder != nil {
		previous = m.holder.String()
	}
	m.log.Info(msg, "previous_holder", previous, "priority", m.cfg.priority)
	m.becomeActive(now, reason)
}

func (m *vipMachine) becomeActive(now time.Time, reason string) {
	m.setState(stateActive, reason, now)
	m.holder = nil
	m.lowerHolderSince = time.Time{}
	m.identifying = nil
	// Rank first, then the announcement: a holder we split-brain with must
	// know that we outrank it when our announcement reaches it.
	m.selfCheck(now)
	m.announce("claim")
	m.announcementsLeft = m.cfg.announceCount - 1
	m.nextAnnounce = now.Add(m.cfg.announceSpacing)
	m.nextRefresh = now.Add(m.cfg.refresh)
}

// becomeStandby returns to probing. holderAlive says whether a holder was
// just seen, in which case the dead time starts again from now.
func (m *vipMachine) becomeStandby(now time.Time, holderAlive bool, reason string) {
	m.setState(stateStandby, reason, now)
	m.probeOutstanding = false
	if holderAlive {
		m.deb.answered(now)
	}
	m.nextProbe = now.Add(m.deb.spacing())
}

func (m *vipMachine) activeTick(now time.Time) {
	if m.announcementsLeft > 0 && !now.Before(m.nextAnnounce) {
		m.announce("repeat")
		m.announcementsLeft--
		m.nextAnnounce = now.Add(m.cfg.announceSpacing)
	}
	if m.cfg.refresh > 0 && !now.Before(m.nextRefresh) {
		m.announce("refresh")
		m.nextRefresh = now.Add(m.cfg.refresh)
	}
	if !now.Before(m.nextSelfCheck) {
		m.selfCheck(now)
	}
}

func (m *vipMachine) announce(why string) {
	if err := m.arp.announce(m.vip, m.cfg.announceForm); err != nil {
		m.log.Warn("announcement not sent", "why", why, "err", err)
		return
	}
	m.obs.counted(m.vip, "announce")
}

// selfCheck probes our own VIP: another holder's kernel answers it, and the
// tag tells standbys and other holders our rank.
func (m *vipMachine) selfCheck(now time.Time) {
	if err := m.arp.probe(m.vip, m.tag(flagHolder), broadcastMAC); err != nil {
		m.log.Debug("self-check not sent", "err", err)
	}
	m.lastIntroduce = now
	m.nextSelfCheck = now.Add(selfCheckEvery)
}

func (m *vipMachine) onFrame(f arpFrame, now time.Time) {
	own := m.arp.mac()
	if own == nil || !f.fromOther(own) {
		return
	}
	p := f.pkt
	isProbeForVIP := p.Operation == 1 && p.SenderIP == zeroIPv4 && p.TargetIP == m.vip
	var tag peerTag
	tagged := false
	if isProbeForVIP {
		tag, tagged = parsePeerTag(p.TargetHardwareAddr)
		if tagged {
			m.peers.observe(p.SenderHardwareAddr, tag, now)
		}
	}
	holderSign := holderEvidence(f, m.vip, own) || (tagged && tag.flags&flagHolder != 0)
	releasing := tagged && tag.flags&flagReleasing != 0
	if holderSign && isGratuitous(f) {
		m.lastGratuitous, m.lastGratuitousAt = append(net.HardwareAddr(nil), p.SenderHardwareAddr...), now
	}

	switch m.state {
	case stateStandby:
		if holderSign {
			m.sawHolder(f, now)
		} else if releasing && (m.holder == nil || macEqual(m.holder, p.SenderHardwareAddr)) {
			m.log.Info("holder released the VIP", "holder", p.SenderHardwareAddr.String())
			m.holderReleased = true
			m.deb.forceFree(now)
			m.lowerHolderSince = time.Time{}
			m.nextProbe = now
		}
	case stateClaiming, stateFencing:
		if holderSign {
			m.sawHolder(f, now)
			m.log.Info("claim aborted: VIP is held", "holder", p.SenderHardwareAddr.String())
			m.becomeStandby(now, true, "claim aborted: held")
		} else if tagged && !releasing && tag.flags&flagStandAside == 0 && (rank{priority: tag.priority, mac: p.SenderHardwareAddr}).outranks(m.self()) {
			m.log.Info("claim aborted: a better standby is claiming", "standby", p.SenderHardwareAddr.String())
			m.becomeStandby(now, false, "claim aborted: better standby")
		}
	case stateActive, stateYielding:
		if holderSign {
			m.obs.counted(m.vip, "conflict")
			m.conflict(f, now)
		}
	}
}

// sawHolder records a sign of life of the holder, and for preemption
// whether it is one this node outranks.
func (m *vipMachine) sawHolder(f arpFrame, now time.Time) {
	mac := f.pkt.SenderHardwareAddr
	m.answeredSinceProbe = true
	m.deb.answered(now)
	m.holderReleased = false
	if !macEqual(m.holder, mac) {
		m.holder = append(net.HardwareAddr(nil), mac...)
		m.lowerHolderSince = time.Time{}
		m.log.Info("VIP is held", "holder", m.holder.String())
		m.report("holder seen", now)
	}
	if r, known := m.peers.known(mac); known && m.self().outranks(r) {
		if m.lowerHolderSince.IsZero() {
			m.lowerHolderSince = now
		}
	} else {
		m.lowerHolderSince = time.Time{}
	}
}

// conflict handles another node that holds the VIP while we do. Both sides
// first make sure the other knows their rank (a tagged self-check), then
// reach the same verdict without talking: the loser removes its copy only
// after the winner has announced (make before break).
func (m *vipMachine) conflict(f arpFrame, now time.Time) {
	mac := f.pkt.SenderHardwareAddr
	if now.Sub(m.lastIntroduce) >= introduceEvery {
		m.selfCheck(now)
	}
	other, isFloatip := m.peers.known(mac)
	if !isFloatip {
		// It may be a floatip node whose tag we have not heard yet: give it
		// a moment to introduce itself before treating it as a stranger.
		if !macEqual(m.identifying, mac) {
			m.identifying, m.identifyDeadline = append(net.HardwareAddr(nil), mac...), now.Add(identifyTimeout)
			m.log.Info("another host answers for the VIP; finding out whether it runs floatip", "other_mac", mac.String())
		}
		if now.Before(m.identifyDeadline) {
			return
		}
		if now.Sub(m.lastDefense) >= defendInterval {
			m.log.Warn("address conflict: a host that does not run floatip holds the VIP; defending it (RFC 5227 2.4c)", "other_mac", mac.String())
			m.announce("defend")
			m.lastDefense = now
		}
		return
	}
	if resolveConflict(m.self(), other, true) == yield {
		if macEqual(m.lastGratuitous, mac) && now.Sub(m.lastGratuitousAt) <= recentAnnouncement {
			// The winner has re-pointed the neighbours: removing now leaves
			// no gap.
			m.log.Info("split brain resolved: releasing to the better node", "winner", other.String())
			m.release(false)
			m.holder = append(net.HardwareAddr(nil), mac...)
			m.becomeStandby(now, true, "split brain lost")
			return
		}
		if m.state != stateYielding {
			m.log.Warn("split brain: another floatip node holds the VIP and outranks us; waiting for its announcement", "winner", other.String())
			m.yieldTo, m.yieldDeadline = other, now.Add(yieldTimeout)
			m.setState(stateYielding, "split brain lost", now)
		}
		return
	}
	if m.state == stateYielding {
		// We outrank this holder but lose to another one (three holders
		// after a partition of two heals): an announcement now would pull
		// the clients to us just before we let go.
		return
	}
	if now.Sub(m.lastWinnerNotice) >= winnerAnnounceEvery {
		m.log.Warn("split brain: another floatip node holds the VIP; we outrank it and re-announce", "other", other.String())
		m.lastWinnerNotice = now
		// Announce a moment later, not at once: with three holders, the
		// middle one outranks the worst but must first hear (from the
		// introductions just exchanged) that the best outranks it, or its
		// announcement comes last and the clients follow a node that is
		// about to let go. Then once more after the announcement spacing,
		// so the last word the clients hear is the winner's.
		m.announcementsLeft = max(m.announcementsLeft, 2)
		if soon := now.Add(fastSpacing(m.cfg.interval)); m.nextAnnounce.After(soon) || m.nextAnnounce.Before(now) {
			m.nextAnnounce = soon
		}
	}
}

func (m *vipMachine) onEvent(ev machineEvent, now time.Time) {
	switch ev {
	case evLinkUp:
		m.linkUp = true
		if m.state == stateActive {
			// An adopted VIP at start: announce it on the fresh link.
			m.becomeActive(now, "adopted")
			return
		}
		// Wait a whole dead time again before claiming.
		m.deb = newDebouncer(m.cfg.interval, m.cfg.misses, now)
		m.becomeStandby(now, false, "link up")
		m.nextProbe = now
	case evLinkDown:
		m.linkUp = false
		if m.state == stateActive || m.state == stateYielding || m.added {
			// A holder without carrier cannot serve the VIP: give it up so
			// the address can move, and come back as a standby.
			m.log.Warn("link down: releasing the VIP")
			m.release(false)
		}
		m.holder = nil
		m.setState(stateStandby, "link down", now)
	case evAddrRemoved:
		if m.state == stateActive && m.added {
			m.log.Warn("VIP was removed behind floatip's back: adding it again")
			if err := m.addr.add(); err != nil {
				m.log.Error("cannot add the VIP again", "err", err)
				return
			}
			m.becomeActive(now, "re-added")
		}
	case evResync:
		if m.state == stateActive && m.added {
			if err := m.addr.add(); err != nil {
				m.log.Error("cannot re-add the VIP", "err", err)
			}
		}
	case evHealthy:
		m.healthy, m.saidUnhealthy = true, false
	case evUnhealthy:
		m.healthy = false
		if m.state == stateActive || m.state == stateYielding {
			// Hand over gracefully: the release notice makes a healthy
			// standby claim at once.
			m.log.Warn("health check fails: releasing the VIP to a healthy standby")
			m.release(m.state == stateActive)
			m.becomeStandby(now, false, "health check failed")
		}
	}
}

// release removes the VIP; notify also tells the standbys at once that it
// is free (a tagged probe with the releasing flag, sent after the removal
// so that their claim check is not answered by our own kernel).
func (m *vipMachine) release(notify bool) {
	if m.added {
		if err := m.addr.remove(); err != nil {
			m.log.Error("cannot remove the VIP", "err", err)
			return
		}
		m.added = false
		m.log.Info("released VIP")
	}
	if notify && m.linkUp {
		if err := m.arp.probe(m.vip, m.tag(flagReleasing), broadcastMAC); err != nil {
			m.log.Debug("release notice not sent", "err", err)
		}
	}
}

// shutdown runs when the daemon stops. Only a sole holder announces that
// the VIP is free; a yielding loser leaves it to the winner.
func (m *vipMachine) shutdown(now time.Time) {
	m.release(m.state == stateActive)
	m.setState(stateStandby, "shutdown", now)
}

func macEqual(a, b net.HardwareAddr) bool {
	return len(a) == len(b) && string(a) == string(b)
}

// netlinkAddress manages the VIP as a /32 with a label on one interface.
// The link is looked up by name each time: it may have been recreated.
type netlinkAddress struct {
	ifname string
	vip    netip.Addr
	label  string
}

func (a *netlinkAddress) netlinkAddr() *netlink.Addr {
	return &netlink.Addr{
		IPNet: &net.IPNet{IP: a.vip.AsSlice(), Mask: net.CIDRMask(32, 32)},
		Label: a.label,
	}
}

// add configures the VIP/32; it is idempotent (RTM_NEWADDR with replace).
func (a *netlinkAddress) add() error {
	link, err := netlink.LinkByName(a.ifname)
	if err != nil {
		return fmt.Errorf("add %s/32 to %s: %w", a.vip, a.ifname, err)
	}
	if err := netlink.AddrReplace(link, a.netlinkAddr()); err != nil {
		return fmt.Errorf("add %s/32 to %s: %w", a.vip, a.ifname, privilegeHint(err))
	}
	return nil
}

// remove deletes the VIP/32; an address or interface already gone is fine.
func (a *netlinkAddress) remove() error {
	link, err := netlink.LinkByName(a.ifname)
	if err != nil {
		var notFound netlink.LinkNotFoundError
		if errors.As(err, &notFound) {
			return nil // the interface is gone, and its addresses with it
		}
		return fmt.Errorf("remove %s/32 from %s: %w", a.vip, a.ifname, err)
	}
	if err := netlink.AddrDel(link, a.netlinkAddr()); err != nil && !errors.Is(err, unix.EADDRNOTAVAIL) {
		return fmt.Errorf("remove %s/32 from %s: %w", a.vip, a.ifname, privilegeHint(err))
	}
	return nil
}

// checkExistingAddresses looks at the host's IPv4 addresses before anything
// is changed. A VIP that is this host's own address (another prefix on
// ifname, or any address on another interface) is refused; a VIP/32
// already on ifname is returned for adoption; a VIP that is the network or
// broadcast address of a subnet on ifname is refused.
func checkExistingAddresses(ifname string, vips []netip.Addr) (map[netip.Addr]bool, error) {
	addrs, err := netlink.AddrList(nil, netlink.FAMILY_V4)
	if err != nil {
		return nil, fmt.Errorf("list IPv4 addresses: %w", err)
	}
	links, err := netlink.LinkList()
	if err != nil {
		return nil, fmt.Errorf("list interfaces: %w", err)
	}
	names := make(map[int]string, len(links))
	for _, l := range links {
		names[l.Attrs().Index] = l.Attrs().Name
	}
	adopt := map[netip.Addr]bool{}
	for _, a := range addrs {
		ip, ok := netip.AddrFromSlice(a.IP.To4())
		if !ok {
			continue
		}
		ones, _ := a.Mask.Size()
		prefix := netip.PrefixFrom(ip, ones)
		owner, known := names[a.LinkIndex]
		if !known {
			owner = fmt.Sprintf("interface #%d", a.LinkIndex)
		}
		for _, vip := range vips {
			switch {
			case ip == vip && owner == ifname && ones == 32:
				adopt[vip] = true
			case ip == vip:
				return nil, fmt.Errorf("%s is already this host's own address (%s on %s): floatip only manages addresses it adds itself as /32", vip, prefix, owner)
			case owner == ifname && ones <= 30 && prefix.Masked().Contains(vip) && (vip == prefix.Masked().Addr() || vip == lastAddr(prefix)):
				return nil, fmt.Errorf("%s is the network or broadcast address of %s on %s", vip, prefix.Masked(), ifname)
			}
		}
	}
	return adopt, nil
}

// lastAddr is the broadcast address of an IPv4 prefix.
func lastAddr(p netip.Prefix) netip.Addr {
	b := p.Masked().Addr().As4()
	host := uint32(1)<<(32-p.Bits()) - 1
	v := uint32(b[0])<<24 | uint32(b[1])<<16 | uint32(b[2])<<8 | uint32(b[3]) | host
	return netip.AddrFrom4([4]byte{byte(v >> 24), byte(v >> 16), byte(v >> 8), byte(v)})
}
