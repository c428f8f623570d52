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
	}
	return fmt.Sprintf("vipState(%d)", int(s))
}

const (
	// selfCheckEvery is how often an active node probes its own VIP, so a
	// second holder (a healed partition) is found even if nobody announces,
	// and so standbys learn the holder's rank.
	selfCheckEvery = time.Second
	// defendInterval is RFC 5227's DEFEND_INTERVAL: at most one defending
	// announcement per 10 s against a holder that is not floatip.
	defendInterval = 10 * time.Second
	// winnerAnnounceEvery limits the re-announcements of a split-brain
	// winner against another floatip node.
	winnerAnnounceEvery = time.Second
	// yieldTimeout bounds how long a split-brain loser waits for the
	// winner's announcement before it removes the VIP anyway.
	yieldTimeout = 2 * time.Second
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

// machineEvent is a change of the interface that a VIP's machine must act on.
type machineEvent int

const (
	evLinkUp      machineEvent = iota // the interface is usable (again): a fresh socket
	evLinkDown                        // carrier lost or interface gone
	evAddrRemoved                     // the VIP/32 was deleted from the interface
	evResync                          // netlink events may have been missed
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

// vipMachine runs one VIP: standby → claim → active → release.
type vipMachine struct {
	vip  netip.Addr
	cfg  machineConfig
	log  *slog.Logger
	arp  arpSender
	addr vipAddress

	frames chan arpFrame
	events chan machineEvent

	state  vipState
	linkUp bool
	added  bool // the address is configured by us and must be removed on exit
	deb    *debouncer
	peers  peerTable
	holder net.HardwareAddr // the other node last seen holding the VIP

	// standby
	nextProbe          time.Time
	probeOutstanding   bool
	answeredSinceProbe bool
	// claiming
	claimDeadline time.Time
	// active
	announcementsLeft int
	nextAnnounce      time.Time
	nextRefresh       time.Time
	nextSelfCheck     time.Time
	lastDefense       time.Time // against a holder that is not floatip (RFC 5227)
	lastWinnerNotice  time.Time // against a floatip node we outrank
	// yielding
	yieldDeadline time.Time
	yieldTo       rank
}

func newVIPMachine(vip netip.Addr, cfg machineConfig, log *slog.Logger, arp arpSender, addr vipAddress, adopt bool, now time.Time) *vipMachine {
	m := &vipMachine{
		vip:    vip,
		cfg:    cfg,
		log:    log.With("vip", vip.String()),
		arp:    arp,
		addr:   addr,
		frames: make(chan arpFrame, 256),
		events: make(chan machineEvent, 16),
		deb:    newDebouncer(cfg.interval, cfg.misses, now),
		peers:  peerTable{},
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
		m.shutdown()
	}()
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
			m.log.Warn("split brain: winner did not announce in time; releasing anyway", "winner", m.yieldTo.String())
			m.release(false)
			m.becomeStandby(now, true)
		}
	case stateActive:
		m.activeTick(now)
	}
}

// standbyProbe closes the previous probe (answered or missed), decides
// whether the VIP is free, and sends the next probe.
func (m *vipMachine) standbyProbe(now time.Time) {
	if m.probeOutstanding && !m.answeredSinceProbe {
		m.deb.missed()
	}
	m.probeOutstanding = false
	if m.deb.free(now) {
		better, ok := m.peers.betterStandby(m.self(), now, m.deb.deadTime())
		if !ok {
			m.startClaim(now)
			return
		}
		m.log.Debug("VIP is free but a better standby is alive: leaving the claim to it", "standby", better.String())
	}
	if err := m.arp.probe(m.vip, m.tag(0), broadcastMAC); err != nil {
		m.log.Debug("probe not sent", "err", err)
		m.nextProbe = now.Add(m.cfg.interval)
		return
	}
	m.probeOutstanding, m.answeredSinceProbe = true, false
	m.nextProbe = now.Add(m.deb.spacing())
}

// startClaim sends one last probe before the VIP is added.
func (m *vipMachine) startClaim(now time.Time) {
	m.state = stateClaiming
	m.answeredSinceProbe = false
	if err := m.arp.probe(m.vip, m.tag(0), broadcastMAC); err != nil {
		m.log.Debug("claim probe not sent", "err", err)
		m.becomeStandby(now, false)
		return
	}
	m.claimDeadline = now.Add(fastSpacing(m.cfg.interval))
}

// finishClaim adds the VIP if the last probe went unanswered too.
func (m *vipMachine) finishClaim(now time.Time) {
	if m.answeredSinceProbe {
		m.becomeStandby(now, true)
		return
	}
	if err := m.addr.add(); err != nil {
		m.log.Error("claim failed: cannot add the VIP", "err", err)
		m.becomeStandby(now, false)
		m.nextProbe = now.Add(time.Second) // do not hammer netlink with a failing add
		return
	}
	m.added = true
	previous := "none"
	if m.holder != nil {
		previous = m.holder.String()
	}
	m.log.Info("claimed VIP", "previous_holder", previous, "priority", m.cfg.priority)
	m.becomeActive(now)
}

func (m *vipMachine) becomeActive(now time.Time) {
	m.state = stateActive
	m.holder = nil
	m.announce("claim")
	m.announcementsLeft = m.cfg.announceCount - 1
	m.nextAnnounce = now.Add(m.cfg.announceSpacing)
	m.nextRefresh = now.Add(m.cfg.refresh)
	// Tell standbys our rank at once, and look for a second holder.
	m.selfCheck(now)
}

// becomeStandby returns to probing. holderAlive says whether a holder was
// just seen, in which case the dead time starts again from now.
func (m *vipMachine) becomeStandby(now time.Time, holderAlive bool) {
	m.state = stateStandby
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
	}
}

// selfCheck probes our own VIP: another holder's kernel answers it.
func (m *vipMachine) selfCheck(now time.Time) {
	if err := m.arp.probe(m.vip, m.tag(flagHolder), broadcastMAC); err != nil {
		m.log.Debug("self-check not sent", "err", err)
	}
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

	switch m.state {
	case stateStandby:
		if holderSign {
			m.sawHolder(f, now)
		} else if releasing && (m.holder == nil || macEqual(m.holder, p.SenderHardwareAddr)) {
			m.log.Info("holder released the VIP", "holder", p.SenderHardwareAddr.String())
			m.deb.forceFree(now)
			m.nextProbe = now
		}
	case stateClaiming:
		if holderSign {
			m.sawHolder(f, now)
			m.log.Info("claim aborted: VIP is held", "holder", p.SenderHardwareAddr.String())
			m.becomeStandby(now, true)
		} else if tagged && (rank{priority: tag.priority, mac: p.SenderHardwareAddr}).outranks(m.self()) {
			m.log.Info("claim aborted: a better standby is claiming", "standby", p.SenderHardwareAddr.String())
			m.becomeStandby(now, false)
		}
	case stateActive, stateYielding:
		if holderSign {
			m.conflict(f, now)
		}
	}
}

func (m *vipMachine) sawHolder(f arpFrame, now time.Time) {
	m.answeredSinceProbe = true
	m.deb.answered(now)
	if !macEqual(m.holder, f.pkt.SenderHardwareAddr) {
		m.holder = append(net.HardwareAddr(nil), f.pkt.SenderHardwareAddr...)
		m.log.Info("VIP is held", "holder", m.holder.String())
	}
}

// conflict handles another node that holds the VIP while we do.
func (m *vipMachine) conflict(f arpFrame, now time.Time) {
	mac := f.pkt.SenderHardwareAddr
	other, isFloatip := m.peers.known(mac)
	if resolveConflict(m.self(), other, isFloatip) == yield {
		if isGratuitous(f) {
			// The winner has re-pointed the neighbours: removing now leaves
			// no gap (make before break).
			m.log.Info("split brain resolved: releasing to the better node", "winner", other.String())
			m.release(false)
			m.holder = append(net.HardwareAddr(nil), mac...)
			m.becomeStandby(now, true)
			return
		}
		if m.state != stateYielding {
			m.log.Warn("split brain: another floatip node holds the VIP and outranks us; waiting for its announcement", "winner", other.String())
			m.state, m.yieldTo, m.yieldDeadline = stateYielding, other, now.Add(yieldTimeout)
		}
		return
	}
	if isFloatip {
		if now.Sub(m.lastWinnerNotice) >= winnerAnnounceEvery {
			m.log.Warn("split brain: another floatip node holds the VIP; we outrank it and re-announce", "other", other.String())
			m.announce("split brain")
			m.lastWinnerNotice = now
		}
		return
	}
	if now.Sub(m.lastDefense) >= defendInterval {
		m.log.Warn("address conflict: another host holds the VIP; defending it (RFC 5227 2.4c)", "other_mac", mac.String())
		m.announce("defend")
		// If it is a floatip node we have not heard yet, this tells it our rank.
		m.selfCheck(now)
		m.lastDefense = now
	}
}

func (m *vipMachine) onEvent(ev machineEvent, now time.Time) {
	switch ev {
	case evLinkUp:
		m.linkUp = true
		switch m.state {
		case stateActive:
			// An adopted VIP at start: announce it on the fresh link.
			m.becomeActive(now)
		default:
			// Wait a whole dead time again before claiming.
			m.deb = newDebouncer(m.cfg.interval, m.cfg.misses, now)
			m.becomeStandby(now, false)
			m.nextProbe = now
		}
	case evLinkDown:
		m.linkUp = false
		if m.state == stateActive || m.state == stateYielding || m.added {
			// A holder without carrier cannot serve the VIP: give it up so
			// the address can move, and come back as a standby.
			m.log.Warn("link down: releasing the VIP")
			m.release(false)
		}
		m.state = stateStandby
	case evAddrRemoved:
		if m.state == stateActive && m.added {
			m.log.Warn("VIP was removed behind floatip's back: adding it again")
			if err := m.addr.add(); err != nil {
				m.log.Error("cannot add the VIP again", "err", err)
				return
			}
			m.becomeActive(now)
		}
	case evResync:
		if m.state == stateActive && m.added {
			if err := m.addr.add(); err != nil {
				m.log.Error("cannot re-add the VIP", "err", err)
			}
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

// shutdown runs when the daemon stops.
func (m *vipMachine) shutdown() {
	m.release(true)
	m.state = stateStandby
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
	adopt := map[netip.Addr]bool{}
	for _, a := range addrs {
		ip, ok := netip.AddrFromSlice(a.IP.To4())
		if !ok {
			continue
		}
		ones, _ := a.Mask.Size()
		prefix := netip.PrefixFrom(ip, ones)
		owner := linkName(a.LinkIndex)
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

func linkName(index int) string {
	link, err := netlink.LinkByIndex(index)
	if err != nil {
		return fmt.Sprintf("interface #%d", index)
	}
	return link.Attrs().Name
}

// lastAddr is the broadcast address of an IPv4 prefix.
func lastAddr(p netip.Prefix) netip.Addr {
	b := p.Masked().Addr().As4()
	host := uint32(1)<<(32-p.Bits()) - 1
	v := uint32(b[0])<<24 | uint32(b[1])<<16 | uint32(b[2])<<8 | uint32(b[3]) | host
	return netip.AddrFrom4([4]byte{byte(v >> 24), byte(v >> 16), byte(v >> 8), byte(v)})
}
