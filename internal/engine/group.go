package engine

import (
	"context"
	"log/slog"
	"net"
	"net/netip"
	"slices"
	"time"

	"floatip/internal/event"
	"floatip/internal/wire/frame"
)

// The group view of one interface: what this node knows of the other floatip
// nodes and of the holders of its VIPs, and the work that is shared by all
// VIPs so that the cost on the LAN grows with the nodes, not with the VIPs:
//
//   - a standby checks each distinct holder once per interval (one unicast
//     probe for one of that holder's VIPs, in turn), not every VIP; a missed
//     answer switches that holder to fast broadcast re-probes, and a holder
//     that stays silent frees all its VIPs at once;
//   - a holder self-checks one of its VIPs per selfCheckEvery, in turn, and
//     refreshes one per --refresh, in turn; a second holder found for one VIP
//     makes it check every held VIP against that node at once (reconcile);
//   - bursts of frames (a claim of many VIPs, a reconcile) go through one
//     pacer.

// Group is shared by the VIP machines of one interface; only the
// interface's loop touches it.
type Group struct {
	cfg      Config
	arp      arpSender
	refs     Reachability // the reference hosts, from the first machine
	log      *slog.Logger
	machines map[netip.Addr]*Machine
	peers    peerTable               // node level: rank, stand-aside, last heard
	holders  map[string]*holderWatch // by holder MAC, for standbys
	held     *heldRotation           // self-checks and refreshes of held VIPs
	queue    *wakeQueue              // everything with a wake-up time
	dirty    []scheduled             // items whose wake-up time may have changed
	pacer    pacer                   // bounds bursts of frames
	holderAt map[string]time.Time    // other nodes last seen holding a VIP we watch
	reconAt  map[string]time.Time    // last reconcile against a node
	lastIntr time.Time               // last introduction (tagged self-check) on a claim
	pool     *PoolView               // --spread: the pool (poolview.go); nil otherwise
	shared   *SharedView             // --share: the shared addresses (shared.go); nil otherwise
	// notStandby counts the machines not in standby (add, then setState).
	notStandby int
	// handedOver: the process is about to re-execute itself (HandOver);
	// nothing is decided any more.
	handedOver bool
}

const (
	// pacerRate and pacerBurst bound the frames of a burst (a claim of many
	// VIPs, a reconcile): 256 announcements leave within about 50 ms (the
	// failover of the last VIP must stay near a single VIP's), and no node
	// sends more than one announcement round per VIP per
	// --announce-spacing, so any second carries at most one frame per VIP.
	pacerRate  = 5000 // frames per second
	pacerBurst = 64
	// holderNodeFresh: a node seen holding a VIP within this time is known;
	// one seen again after longer (a healed partition) is reconciled with.
	holderNodeFresh = 5 * time.Second
	// reconcileEvery limits reconciles against one node.
	reconcileEvery = 2 * time.Second
)

// NewGroup is the group view of one interface, whose machines send
// through arp.
func NewGroup(cfg Config, arp arpSender, log *slog.Logger) *Group {
	g := &Group{
		cfg:      cfg,
		arp:      arp,
		log:      log,
		machines: map[netip.Addr]*Machine{},
		peers:    peerTable{},
		holders:  map[string]*holderWatch{},
		queue:    &wakeQueue{},
		pacer:    pacer{rate: pacerRate, burst: pacerBurst},
		holderAt: map[string]time.Time{},
		reconAt:  map[string]time.Time{},
	}
	g.held = &heldRotation{group: g, slot: -1}
	g.queue.push(g.held)
	return g
}

// Start starts every machine, with the daemon's ctx for their fencing
// commands.
func (g *Group) Start(ctx context.Context, now time.Time) {
	for _, m := range g.machines {
		m.Start(ctx, now)
	}
	g.queue.refresh()
}

// HandOver ends this process's part before it re-executes itself for a
// reload: the group stops deciding (frames, ticks and events are ignored
// from now on), and the VIPs held here (active) stay on the interface
// through Shutdown, with no release notice and no state change, for the
// next program to take back (StartHeld). It returns those VIPs, in order,
// and whether this node passes its health check.
func (g *Group) HandOver(now time.Time) (held []netip.Addr, healthy bool) {
	g.handedOver = true
	for vip, m := range g.machines {
		if m.state == event.Active && m.added {
			m.handedOver = true
			held = append(held, vip)
		}
	}
	slices.SortFunc(held, netip.Addr.Compare)
	if g.shared != nil {
		// The buckets are not handed over: the others take them at once,
		// and the next program joins again after the hold-down.
		g.shared.shutdown(now)
	}
	return held, g.healthy()
}

// Shutdown releases every VIP this node holds: the daemon is stopping.
func (g *Group) Shutdown(now time.Time) {
	// The shared addresses leave while the VIPs' removals run: the
	// others' tables change (an nftables transaction in their loop, 10 to
	// 20 ms on a busy host) early in their claim checks of the VIPs, not
	// at their end.
	g.removeAtOnce(func(m *Machine) bool { return m.added && !m.handedOver }, func() {
		if g.shared != nil {
			g.shared.shutdown(now)
		}
	}, func(m *Machine) { m.Shutdown(now) })
}

// removeAtOnce removes the VIPs of the machines that remove says all at
// once. Each removal resets the VIP's connections and deletes the address,
// a few milliseconds on a busy host, and one after another the 16th VIP
// would be handed over 50 to 140 ms after the first. then runs for each
// machine whose VIP is removed as soon as its own removal is done, so that
// it tells the LAN at once, and for the others after. meanwhile runs in the
// loop while the removals run; the shared table's changes it makes (an
// nftables transaction, 10 to 20 ms on a busy host) are made on a
// goroutine of their own, so that no VIP's notice waits for them, and
// what follows a change (the shared address's release notice) runs in the
// loop once it is made. A removal that failed leaves the VIP added: the
// machine's own release tries again.
func (g *Group) removeAtOnce(remove func(*Machine) bool, meanwhile func(), then func(*Machine)) {
	type removal struct {
		m   *Machine
		err error
	}
	var ms, others []*Machine
	for _, m := range g.machines {
		if remove(m) {
			ms = append(ms, m)
		} else {
			others = append(others, m)
		}
	}
	removed := make(chan removal, len(ms))
	for _, m := range ms {
		go func() { removed <- removal{m, m.Address.Remove()} }()
	}
	var changes []tableChange
	if g.shared != nil {
		g.shared.deferred = &changes
	}
	meanwhile()
	if g.shared != nil {
		g.shared.deferred = nil
	}
	made := make(chan []error, 1)
	go func() { made <- makeChanges(changes) }()
	for left := len(ms); left > 0 || made != nil; {
		select {
		case r := <-removed:
			left--
			if r.err != nil {
				r.m.Log.Error("cannot remove the VIP", "err", r.err)
			} else {
				r.m.added = false
				r.m.Log.Info("released VIP")
			}
			then(r.m)
		case errs := <-made:
			for i, c := range changes {
				c.after(errs[i])
			}
			made = nil
		}
	}
	for _, m := range others {
		then(m)
	}
}

func (g *Group) add(m *Machine) {
	if g.refs == nil {
		g.refs = m.Refs
	}
	g.machines[m.vip] = m
	m.slot = -1
	if m.state != event.Standby {
		g.notStandby++ // adopting a copy found at start: setState keeps it from here
	}
	g.queue.push(m)
}

// touch marks an item whose wake-up time may have changed; settle re-reads them.
func (g *Group) touch(s scheduled) { g.dirty = append(g.dirty, s) }

func (g *Group) settle() {
	for _, s := range g.dirty {
		if *s.queueSlot() >= 0 {
			g.queue.fix(s)
		}
	}
	g.dirty = g.dirty[:0]
}

// Next is when the loop must wake up next; after HandOver, not before the
// loop ends.
func (g *Group) Next() time.Time {
	if g.handedOver {
		return time.Now().Add(time.Hour) // as an empty queue
	}
	return g.queue.next()
}

// Tick runs everything that is due.
func (g *Group) Tick(now time.Time) {
	if g.handedOver {
		return
	}
	for _, s := range g.queue.due(now) {
		s.onTick(now)
		g.touch(s)
	}
	g.settle()
}

// Broadcast hands an interface event to every machine.
func (g *Group) Broadcast(ev MachineEvent, now time.Time) {
	if g.handedOver {
		return
	}
	toMachine := func(m *Machine) {
		m.onEvent(ev, now)
		g.touch(m)
	}
	toShared := func() {
		if g.shared != nil {
			g.shared.onEvent(ev, now)
			g.touch(g.shared)
		}
	}
	if ev == EvUnhealthy {
		// A failing check hands every held VIP over, as SIGTERM does: all
		// removed at once, and the shared addresses stand aside meanwhile.
		handing := func(m *Machine) bool { return m.added && (m.state == event.Active || m.state == event.Yielding) }
		g.removeAtOnce(handing, toShared, toMachine)
		g.touch(g.held)
		g.settle()
		return
	}
	for _, m := range g.machines {
		toMachine(m)
	}
	g.touch(g.held)
	toShared()
	g.settle()
}

// EventFor hands an event to the machine of one VIP, if any.
func (g *Group) EventFor(vip netip.Addr, ev MachineEvent, now time.Time) {
	if g.handedOver {
		return
	}
	if m := g.machines[vip]; m != nil {
		m.onEvent(ev, now)
		g.touch(m)
		g.settle()
	}
	if g.shared != nil && g.shared.isShared(vip) {
		g.shared.onEvent(ev, now)
		g.touch(g.shared)
		g.settle()
	}
}

// FenceDone hands a fencing result back to its machine.
func (g *Group) FenceDone(r FenceResult, now time.Time) {
	if g.handedOver {
		return
	}
	r.machine.onFenceDone(r.err, now)
	g.touch(r.machine)
	g.settle()
}

// Dispatch routes a frame to the machines of the VIPs it names, as sender
// (replies, announcements) or as target (probes): two map look-ups, however
// many VIPs there are.
func (g *Group) Dispatch(f frame.Frame, now time.Time) {
	if g.handedOver {
		return
	}
	if g.shared != nil && g.shared.isShared(f.Packet.TargetIP) {
		g.shared.onFrame(f, now)
		g.touch(g.shared)
	}
	if m := g.machines[f.Packet.SenderIP]; m != nil {
		m.onFrame(f, now)
		g.touch(m)
	}
	if f.Packet.TargetIP != f.Packet.SenderIP {
		if m := g.machines[f.Packet.TargetIP]; m != nil {
			m.onFrame(f, now)
			g.touch(m)
		}
	}
	g.settle()
}

// sawHolderNode records that mac showed it holds one of our VIPs. A node
// that was not known as a holder (a healed partition, a node that took some
// VIPs over) is reconciled with at once when we hold VIPs ourselves. Only
// confirmed floatip peers count, so the map is as bounded as the peer table.
func (g *Group) sawHolderNode(mac net.HardwareAddr, now time.Time) {
	if _, ok := g.peers.confirmed(mac); !ok {
		return // a stranger, or a flood of forged frames: no reconcile, no entry
	}
	key := string(mac)
	last, known := g.holderAt[key]
	g.holderAt[key] = now
	if !known || now.Sub(last) > holderNodeFresh {
		g.reconcile(mac, now)
	}
}

// reconcile checks every VIP this node holds against another node: a tagged
// self-check sent to it alone, which its kernel answers for every VIP it
// holds too (a split brain, resolved per VIP as usual), and which tells it
// our rank for each. Rate-limited per node; the probes go through the pacer.
func (g *Group) reconcile(mac net.HardwareAddr, now time.Time) {
	key := string(mac)
	if last, ok := g.reconAt[key]; ok && now.Sub(last) < reconcileEvery {
		return
	}
	if len(g.held.machines) == 0 {
		return
	}
	g.reconAt[key] = now
	g.log.Debug("checking our VIPs against another holder", "node", mac.String(), "vips", len(g.held.machines))
	for _, m := range g.held.machines {
		m.reconcileCheck(append(net.HardwareAddr(nil), mac...), now)
		g.touch(m)
	}
}

// introduce reports whether a claim should tell the LAN our rank now (a
// tagged self-check): once per introduceEvery for the whole group, so a
// claim of many VIPs sends one, not one per VIP.
func (g *Group) introduce(now time.Time) bool {
	if !g.lastIntr.IsZero() && now.Sub(g.lastIntr) < introduceEvery {
		return false
	}
	g.lastIntr = now
	return true
}

// follow makes holder mac's watch check the liveness of m's VIP for it.
func (g *Group) follow(m *Machine, mac net.HardwareAddr, now time.Time) {
	key := string(mac)
	if m.follow != nil {
		if string(m.follow.mac) == key {
			m.follow.heard(m, now)
			return
		}
		g.unfollow(m)
	}
	w := g.holders[key]
	if w == nil {
		w = &holderWatch{group: g, mac: append(net.HardwareAddr(nil), mac...), slot: -1,
			deb: newDebouncer(g.cfg.Interval, g.cfg.Misses, now), nextProbe: now.Add(g.cfg.Interval)}
		g.holders[key] = w
		g.queue.push(w)
	}
	w.machines = append(w.machines, m)
	m.follow = w
	w.heard(m, now)
	g.touch(m)
}

// unfollow takes m's VIP off its holder's watch (m probes it itself again).
func (g *Group) unfollow(m *Machine) {
	w := m.follow
	if w == nil {
		return
	}
	m.follow = nil
	for i, x := range w.machines {
		if x == m {
			w.machines = append(w.machines[:i], w.machines[i+1:]...)
			break
		}
	}
	if w.probed == m {
		w.probed = nil
	}
	for i, x := range w.unanswered {
		if x == m {
			w.unanswered = append(w.unanswered[:i], w.unanswered[i+1:]...)
			break
		}
	}
	if len(w.machines) == 0 {
		delete(g.holders, string(w.mac))
		g.queue.remove(w)
	}
	g.touch(m)
}

// AllStandby reports whether every VIP of the interface is in standby:
// then replies to probes are routine frames (internal/wire/routine.go).
func (g *Group) AllStandby() bool { return g.notStandby == 0 }
