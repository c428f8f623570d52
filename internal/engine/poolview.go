package engine

import (
	"bytes"
	"maps"
	"net"
	"net/netip"
	"slices"
	"strings"
	"time"

	"floatip/internal/pool"
	"floatip/internal/wire/frame"

	"floatip/internal/event"
)

// Pool mode (--spread): the VIPs of the interface are spread over every
// healthy node, active-active, instead of all going to the best node.
//
// Membership comes from the tagged frames the nodes already send (a
// holder's self-checks, and a presence probe once a second from a node
// that holds nothing): a member is a confirmed floatip node heard within
// poolWindow, not standing aside, present continuously for the hold-down,
// and not found dead by a holder watch. Every node computes the same
// assignment from the same members (pool.Assign: a pure function of the
// members and the VIPs), and a VIP's machine only claims a VIP assigned to
// its own node; a node moves a VIP held by a live node to itself (make
// before break) once the membership has been stable for poolSettle; and in
// a split brain the assignee wins, not the better rank.
//
// That holds for the canonical assignment (pool.Assign), which a node
// computes on its first view and whenever a member joins or a weight
// changes. When members only leave (a death, a release, a failed health
// check) it is not recomputed: the VIPs held by a surviving member stay
// where they are, because they carry live connections, and only the
// departed members' VIPs move (pool.Keep over the observed holders, see
// keepAssignment). Exact balance comes back with the next join, by planned
// moves.

const (
	// poolWindow: a member not heard for this long has left.
	poolWindow = 3 * time.Second
	// poolPresenceEvery: a node holding nothing broadcasts a tagged probe
	// this often, so that the others know it is there.
	poolPresenceEvery = time.Second
	// poolSettle: planned moves wait until the membership has not changed
	// for this long, so that a momentary disagreement between nodes (one
	// has found a dead holder 50 ms before another) moves nothing.
	poolSettle = 500 * time.Millisecond
	// poolMoveMargin: a joining node takes its share this long after its
	// own hold-down, by when the others count it as a member too.
	poolMoveMargin = 500 * time.Millisecond
	// poolProvokeEvery: how often a split-brain loser reminds the winner.
	poolProvokeEvery = 500 * time.Millisecond
)

// poolNode is what this node knows of another node's presence.
type poolNode struct {
	since time.Time // start of its continuous presence (zero: not a candidate)
	last  time.Time // last tagged frame as a candidate
	dead  bool      // a holder watch found it silent
}

// PoolView is the pool of one interface: membership, the assignment, the
// presence probes and the planned moves. It is a scheduled item of the
// Group and ticks every --interval.
type PoolView struct {
	group    *Group
	vips     []netip.Addr // sorted
	holdDown time.Duration
	slot     int

	nodes       map[string]*poolNode // by MAC bytes
	started     time.Time            // first tick with the link up
	selfSince   time.Time            // this node a candidate since (zero: not)
	members     []pool.Member        // sorted by MAC
	changedAt   time.Time            // last change of members
	assign      map[netip.Addr]net.HardwareAddr
	keep        bool                  // members only left since the last canonical assignment: assign is keepAssignment's
	reported    map[netip.Addr]string // assignee last told to the observers
	nextTick    time.Time
	lastPresent time.Time
	presTurn    int
	checks      []*Machine // self-checks still to send after a change
}

// NewPoolView turns group into a pool (--spread) of vips; a node (re)joining
// takes its share after being heard for holdDown.
func NewPoolView(g *Group, vips []netip.Addr, holdDown time.Duration) *PoolView {
	sorted := slices.Clone(vips)
	slices.SortFunc(sorted, netip.Addr.Compare)
	p := &PoolView{group: g, vips: sorted, holdDown: holdDown, slot: -1, nodes: map[string]*poolNode{},
		assign: map[netip.Addr]net.HardwareAddr{}, reported: map[netip.Addr]string{}}
	g.pool = p
	g.queue.push(p)
	return p
}

func (p *PoolView) queueSlot() *int { return &p.slot }

// nextWake: zero (at once) before the first tick.
func (p *PoolView) nextWake() time.Time { return p.nextTick }

// heard records a tagged frame from another node (any VIP of the pool).
func (p *PoolView) heard(mac net.HardwareAddr, tag frame.Tag, now time.Time) {
	key := string(mac)
	n := p.nodes[key]
	if n == nil {
		if len(p.nodes) >= maxPeers {
			p.forget(now)
			if len(p.nodes) >= maxPeers {
				return // a flood of tagged frames from new MACs
			}
		}
		n = &poolNode{}
		p.nodes[key] = n
	}
	if tag.Flags&(frame.FlagReleasing|frame.FlagStandAside) != 0 {
		// Leaving or unhealthy: out at once, so that the VIP it frees
		// goes to its new assignee without waiting for a window.
		was := n.since
		n.since, n.last = time.Time{}, time.Time{}
		if !was.IsZero() {
			p.recompute(now)
		}
		return
	}
	if n.since.IsZero() || n.dead || now.Sub(n.last) > poolWindow {
		n.since, n.dead = now, false
		if !p.started.IsZero() && now.Sub(p.started) < p.holdDown {
			// Heard while this node starts: a node of the running group,
			// not a newcomer (a newcomer holds nothing yet and moves
			// nothing before its own hold-down anyway).
			n.since = now.Add(-p.holdDown)
		}
	}
	n.last = now
	if tag.Flags&frame.FlagHolder != 0 {
		// It holds VIPs: a member already (the other side of a healed
		// partition, a holder wrongly found dead), not a newcomer, which
		// holds nothing until its hold-down is over.
		if now.Sub(n.since) < p.holdDown {
			n.since = now.Add(-p.holdDown)
		}
		if !pool.Has(p.members, mac) {
			p.recompute(now)
		}
	}
}

// forget drops the nodes that are neither confirmed floatip peers nor
// heard within the window: a flood of forged tags from random MACs must not
// fill the table and keep a real newcomer out.
func (p *PoolView) forget(now time.Time) {
	for key, n := range p.nodes {
		if _, ok := p.group.peers.confirmed(net.HardwareAddr(key)); !ok || now.Sub(n.last) > poolWindow {
			delete(p.nodes, key)
		}
	}
}

// gone marks a holder found silent by its watch: out of the membership at
// once, before its VIPs' machines decide who claims them.
func (p *PoolView) gone(mac net.HardwareAddr, now time.Time) {
	if n := p.nodes[string(mac)]; n != nil {
		n.dead = true
	}
	p.recompute(now)
}

// self reports whether the interface is up and whether this node may hold
// VIPs (up and healthy); every machine gets the same events.
func (p *PoolView) self() (linkUp, candidate bool) {
	for _, m := range p.group.machines {
		return m.linkUp, m.linkUp && m.healthy
	}
	return false, false
}

// currentMembers lists the members as this node sees them now, by MAC.
func (p *PoolView) currentMembers(now time.Time) []pool.Member {
	var ms []pool.Member
	if !p.selfSince.IsZero() && now.Sub(p.selfSince) >= p.holdDown {
		ms = append(ms, pool.Member{MAC: p.group.arp.MAC(), Weight: int(p.group.cfg.Priority)})
	}
	for key, n := range p.nodes {
		mac := net.HardwareAddr(key)
		r, ok := p.group.peers.confirmed(mac)
		if !ok || n.dead || n.since.IsZero() || now.Sub(n.last) > poolWindow || now.Sub(n.since) < p.holdDown {
			continue
		}
		ms = append(ms, pool.Member{MAC: mac, Weight: int(r.priority)})
	}
	slices.SortFunc(ms, func(a, b pool.Member) int { return bytes.Compare(a.MAC, b.MAC) })
	return ms
}

// recompute refreshes the members and, when they changed, the assignment:
// the canonical one after a join, a weight change or on the first view;
// after members only left, the one that keeps every survivor's VIPs where
// they are (keepAssignment), refreshed on every call while no member joins.
func (p *PoolView) recompute(now time.Time) {
	ms := p.currentMembers(now)
	if slices.EqualFunc(ms, p.members, func(a, b pool.Member) bool { return bytes.Equal(a.MAC, b.MAC) && a.Weight == b.Weight }) {
		if p.keep {
			if a := p.keepAssignment(); !sameAssignment(a, p.assign) {
				p.assign = a
				p.report(now)
			}
		}
		return
	}
	p.keep = len(p.members) > 0 && pool.OnlyLeft(p.members, ms)
	p.members, p.changedAt = ms, now
	if p.keep {
		p.assign = p.keepAssignment()
	} else {
		p.assign = pool.Assign(p.vips, ms)
	}
	names := make([]string, len(ms))
	for i, m := range ms {
		names[i] = m.MAC.String()
	}
	mine := 0
	for _, mac := range p.assign {
		if bytes.Equal(mac, p.group.arp.MAC()) {
			mine++
		}
	}
	// Check every held VIP against the LAN at once (a broadcast tagged
	// self-check each): a second holder of one (the other side of a healed
	// partition) answers, and the split brain is decided by the new
	// assignment now rather than at the next turn of the self-checks.
	p.checks = append(p.checks[:0], p.group.held.machines...)
	p.sendChecks(now)
	p.group.log.Info("pool membership changed", "members", strings.Join(names, ","), "assigned_here", mine, "vips", len(p.vips), "kept", p.keep)
	p.report(now)
}

// keepAssignment is the assignment after members only left: pool.Keep with
// the holders this node observes as "before". A VIP held by a member stays
// with it; the VIPs of departed members, and any VIP nobody live holds, go
// one by one to the member furthest below its share.
//
// Why the observed holders and not the previous assignment (p.assign): the
// rule is about where a VIP is held, since that is where its connections
// are, and the holders are history that every node sees on the wire (the
// announcements and answers every standby follows), whatever membership
// changes it went through and in whatever order. The previous assignment is
// each node's own history: two nodes that found two dead members in
// opposite orders, or a node that restarted in between, chain pool.Keep
// differently and would disagree until the next join; and it can differ from
// the holders (a VIP claimed by the orphan fallback, planned moves not yet
// made), so keeping it would move a survivor's VIP after all. Recomputed on
// every tick, the assignment follows what is held: once a departed member's
// VIP is claimed it is its claimer's, and nodes that disagreed for a moment
// (a double claim, settled by rank in resolve) agree again without any move.
func (p *PoolView) keepAssignment() map[netip.Addr]net.HardwareAddr {
	own := p.group.arp.MAC()
	held := make(map[netip.Addr]net.HardwareAddr, len(p.vips))
	for _, vip := range p.vips {
		m := p.group.machines[vip]
		switch {
		case m == nil:
		case m.state == event.Active || m.state == event.Yielding || m.state == event.Adopting:
			held[vip] = own
		case !m.holderReleased:
			held[vip] = m.holder // Standby: the holder it follows; Claiming, Fencing: the silent one
		}
	}
	return pool.Keep(p.vips, held, p.members)
}

func sameAssignment(a, b map[netip.Addr]net.HardwareAddr) bool {
	return len(a) == len(b) && maps.EqualFunc(a, b, func(x, y net.HardwareAddr) bool { return bytes.Equal(x, y) })
}

// sendChecks sends the pending self-checks the pacer allows; the rest on
// the next tick.
func (p *PoolView) sendChecks(now time.Time) {
	for len(p.checks) > 0 && p.group.pacer.take(now) {
		m := p.checks[0]
		p.checks = p.checks[1:]
		if m.state == event.Active {
			m.selfCheck(now) // held back right after an IPv6 announcement: the rotation checks later
		}
	}
}

// report tells the observers each VIP's assignee when it changed.
func (p *PoolView) report(now time.Time) {
	for _, vip := range p.vips {
		a := p.assign[vip].String()
		if p.reported[vip] == a {
			continue
		}
		p.reported[vip] = a
		if m := p.group.machines[vip]; m != nil {
			if po, ok := m.Observer.(event.PoolObserver); ok {
				po.Assigned(vip, p.assign[vip], bytes.Equal(p.assign[vip], p.group.arp.MAC()))
			}
		}
	}
}

// assignee is the node a VIP is assigned to (nil: nobody, no members).
func (p *PoolView) assignee(vip netip.Addr) net.HardwareAddr { return p.assign[vip] }

func (p *PoolView) mine(vip netip.Addr) bool {
	a := p.assign[vip]
	return a != nil && bytes.Equal(a, p.group.arp.MAC())
}

// mayClaim decides whether a free VIP may be claimed here: it is assigned
// to this node, or it has been free for so long (no member claims it: a
// member that cannot, or nodes that disagree) that the plain rank rule
// applies as a safety net.
func (p *PoolView) mayClaim(m *Machine, now time.Time) bool {
	if p.mine(m.vip) {
		return true
	}
	orphaned := now.Sub(m.deb.lastAnswer) >= m.deb.deadTime()+p.holdDown+poolWindow
	if !orphaned {
		return false
	}
	// The assignee evidently cannot claim it: the best of the others.
	skip := p.assign[m.vip]
	if skip == nil {
		skip = m.holder
	}
	_, better := p.group.peers.betterStandby(m.self(), skip, now, poolWindow)
	return !better
}

// resolve decides a split brain in pool mode: the assignee keeps the VIP;
// between two nodes that are not, the usual rank rule. After members only
// left, two members that both hold a VIP go by rank alone: that assignment
// follows the holders, so each would find the VIP assigned to itself (two
// survivors that, for a moment, disagreed on a departed member's VIP and
// both claimed it). The rank gives one verdict on both; the loser then sees
// the winner hold the VIP, which is thereby assigned to it, and nothing
// moves back. Against a holder that is no member (the stale copy of a
// daemon killed with -9, whose kernel still answers) the assignee still
// wins. A healed partition is a join (heard holding VIPs, a member at
// once), so the canonical assignee decides it as before.
func (p *PoolView) resolve(vip netip.Addr, other net.HardwareAddr, byRank conflictAction) conflictAction {
	if p.keep && pool.Has(p.members, other) {
		return byRank
	}
	switch a := p.assign[vip]; {
	case a == nil:
		return byRank
	case bytes.Equal(a, p.group.arp.MAC()):
		return defend
	case bytes.Equal(a, other):
		return yield
	}
	return byRank
}

func (p *PoolView) onTick(now time.Time) {
	p.nextTick = now.Add(p.group.cfg.Interval)
	up, candidate := p.self()
	if up && p.started.IsZero() {
		p.started = now
	}
	if !candidate {
		p.selfSince = time.Time{}
		p.recompute(now)
		p.presence(now)
		return
	}
	if p.selfSince.IsZero() {
		p.selfSince = now
	}
	p.recompute(now)
	p.sendChecks(now)
	p.presence(now)
	p.provoke(now)
	p.moves(now)
}

// presence broadcasts a tagged probe once a second while this node holds
// nothing (a holder's self-checks already say it is there).
func (p *PoolView) presence(now time.Time) {
	g := p.group
	if len(g.held.machines) > 0 || now.Sub(p.lastPresent) < poolPresenceEvery || len(p.vips) == 0 {
		return
	}
	p.presTurn %= len(p.vips)
	m := g.machines[p.vips[p.presTurn]]
	p.presTurn++
	if m == nil || !m.linkUp {
		return
	}
	var flags uint8
	if !m.healthy {
		flags = frame.FlagStandAside
	}
	if err := g.arp.Probe(m.vip, m.tag(flags), frame.BroadcastMAC); err == nil {
		p.lastPresent = now
	}
}

// provoke: a split-brain loser waits for the winner's announcement before
// it removes its copy; its tagged self-check, every half second, makes the
// winner announce again (once a second) should the winner's last one have
// come before ours, so that the clients' caches end on the winner.
func (p *PoolView) provoke(now time.Time) {
	for _, m := range p.group.machines {
		if m.state == event.Yielding && now.Sub(m.lastIntroduce) >= poolProvokeEvery && p.group.pacer.take(now) {
			m.selfCheck(now)
		}
	}
}

// moves takes the VIPs assigned here from live holders that are not their
// assignee: make before break (add, announce; the old holder removes its
// copy on our announcement), once this node is a member and the membership
// has been stable for poolSettle.
func (p *PoolView) moves(now time.Time) {
	g := p.group
	if now.Sub(p.selfSince) < p.holdDown+poolMoveMargin || now.Sub(p.changedAt) < poolSettle {
		return
	}
	for _, vip := range p.vips {
		m := g.machines[vip]
		if m == nil || m.state != event.Standby || m.follow == nil || !p.mine(vip) {
			continue
		}
		if m.follow.deb.missedInRow > 0 || !m.Refs.Reachable(now, m.deb.deadTime()) {
			continue // the holder looks unwell: the failover path decides
		}
		if !g.pacer.take(now) {
			return // the rest on the next tick
		}
		m.Log.Info("pool: taking the VIP assigned to this node from its holder", "holder", m.holder.String())
		m.claim(now, "claimed VIP (pool rebalance)", "pool move")
		g.touch(m)
	}
}
