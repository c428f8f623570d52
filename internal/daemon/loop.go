package daemon

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"time"

	"floatip/internal/engine"
	"floatip/internal/wire/frame"

	"floatip/internal/system"

	"floatip/internal/wire"
)

// Daemon runs every VIP of one interface in ONE goroutine: it opens the
// shared ARP socket whenever the interface is usable, closes it when it is
// not, and feeds the VIP machines the frames, link and address changes,
// health verdicts and fencing results, each routed to its machine in O(1).
// One timer serves all machines: the loop sleeps until the earliest wake-up
// any machine asked for. No goroutine, channel or timer per VIP: an idle
// daemon wakes once per due event, however many VIPs it watches.
type Daemon struct {
	ifname string
	log    *slog.Logger
	port   *wire.Port
	Refs   *References   // nil: no reference hosts
	group  *engine.Group // the VIP machines and what they share
	// Index is the interface's while its socket is open, for the VIPs'
	// netlink requests.
	Index system.LinkIndex
	// IPv6 lists the IPv6 VIPs and reference hosts: with any, an NDP socket
	// (wire.NDPSocket) is opened beside the ARP socket, joined to their
	// solicited-node groups.
	IPv6 []netip.Addr

	frames    chan frame.Frame         // the socket reader → the loop
	health    chan engine.MachineEvent // the health check → the loop
	FenceDone chan engine.FenceResult  // fencing commands → the loop
	calls     chan func(now time.Time) // a look at the group from outside (call)
}

// frameBacklog is how many received frames may wait for the loop; beyond it
// frames are dropped (and counted) rather than block the socket reader.
const frameBacklog = 4096

// New is the loop of the interface ifname: group's machines, sending
// through port, whose sockets the loop opens and replaces.
func New(ifname string, log *slog.Logger, port *wire.Port, group *engine.Group) *Daemon {
	return &Daemon{
		ifname:    ifname,
		log:       log,
		port:      port,
		group:     group,
		frames:    make(chan frame.Frame, frameBacklog),
		health:    make(chan engine.MachineEvent, 4),
		FenceDone: make(chan engine.FenceResult, 16),
		calls:     make(chan func(time.Time)),
	}
}

// SetHealthy is called by the health check, from its own goroutine.
func (d *Daemon) SetHealthy(ctx context.Context, healthy bool) {
	ev := engine.EvUnhealthy
	if healthy {
		ev = engine.EvHealthy
	}
	select {
	case d.health <- ev:
	case <-ctx.Done():
	}
}

// HandOver has the loop hand the VIPs this node holds to the program this
// process is about to re-execute (engine.Group.HandOver): from then on the
// group decides nothing, and the caller ends the loop (its ctx) and
// re-executes. ok is false when the loop did not take the request before
// ctx ended.
func (d *Daemon) HandOver(ctx context.Context) (held []netip.Addr, healthy, ok bool) {
	done := make(chan struct{})
	if !d.Call(ctx, func(now time.Time) {
		held, healthy = d.group.HandOver(now)
		close(done)
	}) {
		return nil, false, false
	}
	<-done // the loop runs a call as soon as it takes it
	return held, healthy, true
}

// Call runs fn in the loop, the only goroutine that may read the group
// (e.g. for `floatip status`); false when the loop did not take it before
// ctx ended (it is not running). fn must be quick and must not block.
func (d *Daemon) Call(ctx context.Context, fn func(now time.Time)) bool {
	select {
	case d.calls <- fn:
		return true
	case <-ctx.Done():
		return false
	}
}

// Run returns nil when ctx ends, after every VIP machine has released its
// address. The ARP socket stays open until then, for the release notices.
// A panic in a machine is turned into an error after every VIP is released:
// the addresses are never left behind by an exit path we control.
func (d *Daemon) Run(ctx context.Context) (err error) {
	g := d.group
	var (
		sock        *wire.ARPSocket
		nd          *wire.NDPSocket // with IPv6 VIPs, opened and closed with sock
		sockIndex   int
		stopReader  context.CancelFunc = func() {}
		readerDone                     = make(chan error, 2)
		retry       <-chan time.Time
		last        system.LinkStatus
		saidWaiting bool
	)
	// Deferred calls run last first: the machines release their VIPs (and
	// Send their release notices) before the socket closes.
	defer func() {
		stopReader()
		if sock != nil {
			_ = sock.Close()
		}
		if nd != nil {
			_ = nd.Close()
		}
	}()
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("internal error in the VIP state machines of %s: %v", d.ifname, r)
		}
		g.Shutdown(time.Now())
	}()
	g.Start(ctx, time.Now())

	events := make(chan system.WatchEvent, 16)
	watcher := system.NewLinkWatcher(d.ifname, d.log)
	watcherCtx, stopWatcher := context.WithCancel(ctx)
	defer stopWatcher()
	go func() { _ = watcher.Run(watcherCtx, events) }()

	broadcast := func(ev engine.MachineEvent) { g.Broadcast(ev, time.Now()) }
	closeSocket := func() {
		if sock == nil {
			return
		}
		stopReader()
		d.port.Set(nil)
		d.Index.Set(0)
		d.port.SetND(nil)
		_ = sock.Close()
		sock = nil
		if nd != nil {
			_ = nd.Close()
			nd = nil
		}
		broadcast(engine.EvLinkDown)
	}
	openSocket := func() {
		ifi, err := net.InterfaceByIndex(last.Index)
		if err == nil {
			sock, err = wire.OpenSplitARPSocket(ifi, g.AllStandby())
		}
		if err == nil && len(d.IPv6) > 0 {
			if nd, err = wire.OpenNDPSocket(ifi, d.IPv6); err != nil {
				_ = sock.Close()
				sock = nil
			}
		}
		if err != nil {
			d.log.Error("cannot open the interface's sockets; trying again in 1s", "err", err)
			retry = time.After(time.Second)
			return
		}
		sockIndex = last.Index
		d.Index.Set(last.Index)
		readerCtx, cancel := context.WithCancel(ctx)
		stopReader = cancel
		go func(s *wire.ARPSocket) { readerDone <- s.Run(readerCtx, d.receive) }(sock)
		d.port.Set(sock)
		if nd != nil {
			go func(s *wire.NDPSocket) { readerDone <- s.Run(readerCtx, d.receive) }(nd)
			d.port.SetND(nd)
		}
		d.log.Info("interface is up", "mac", ifi.HardwareAddr.String())
		saidWaiting = false
		broadcast(engine.EvLinkUp)
	}
	apply := func() {
		switch {
		case !last.Usable:
			closeSocket()
			if !saidWaiting {
				reason := "to appear"
				if last.Exists {
					reason = "to come up (no carrier or administratively down)"
				}
				d.log.Warn("waiting for interface " + reason)
				saidWaiting = true
			}
		case sock == nil || sockIndex != last.Index:
			closeSocket()
			openSocket()
		}
	}

	// handle takes a frame from either socket; a routine frame is handled
	// as of its receive time.
	handle := func(f frame.Frame, now time.Time) {
		if d.Refs != nil {
			d.Refs.saw(f)
		}
		g.Dispatch(f, now)
	}
	routine := func(f frame.Frame) { handle(f, f.Received) }
	// drain handles the routine frames that arrived before whatever woke
	// the loop, so that it acts on them in order.
	drain := func(limit time.Time) {
		if sock != nil {
			sock.DrainRoutine(limit, routine)
		}
	}

	timer, err := system.NewWakeTimer()
	if err != nil {
		return err
	}
	defer timer.Close()
	for {
		if sock != nil {
			if err := sock.SetStandby(g.AllStandby()); err != nil {
				d.log.Warn("socket failed; reopening", "err", err)
				closeSocket()
				retry = time.After(200 * time.Millisecond)
			}
		}
		timer.Reset(time.Until(g.Next()))
		select {
		case <-ctx.Done():
			return nil
		case f := <-d.frames:
			drain(f.Received)
			handle(f, time.Now())
		case <-timer.C: // possibly with nothing due: tick runs only what is
			now := time.Now()
			drain(now)
			g.Tick(now)
		case ev := <-d.health:
			drain(time.Now())
			broadcast(ev)
		case r := <-d.FenceDone:
			drain(time.Now())
			g.FenceDone(r, time.Now())
		case fn := <-d.calls:
			fn(time.Now())
		case ev := <-events:
			drain(time.Now())
			if ev.Link != nil {
				last = *ev.Link
				apply()
			}
			if ev.AddrRemoved.IsValid() {
				g.EventFor(ev.AddrRemoved, engine.EvAddrRemoved, time.Now())
			}
			if ev.AddrAdded.IsValid() {
				g.EventFor(ev.AddrAdded, engine.EvAddrAdded, time.Now())
			}
			if ev.Resync {
				broadcast(engine.EvResync)
			}
		case err := <-readerDone:
			if ctx.Err() != nil || err == nil {
				continue // a reader we stopped
			}
			d.log.Warn("socket failed; reopening", "err", err)
			closeSocket()
			retry = time.After(200 * time.Millisecond)
		case <-retry:
			retry = nil
			apply()
		}
	}
}

// receive is the socket reader's hand-off to the loop; it never blocks the
// reader: when the loop is 4096 frames behind (a flood), frames are dropped.
func (d *Daemon) receive(f frame.Frame) {
	select {
	case d.frames <- f:
	default:
	}
}
