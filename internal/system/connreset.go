package system

// Connection reset on release: a client idle in read on a moved VIP never
// learns that its server is gone (it sends nothing, so nobody answers it
// with an RST). Before the VIP is removed, floatip destroys the TCP sockets
// whose local address is the VIP, as `ss -K` does: SOCK_DESTROY through
// sock_diag makes the kernel send an RST to each peer and fail the local
// socket with ECONNABORTED. It must happen while the VIP is still
// configured: without its address the kernel has no route for the RST.
//
// A client that reconnects at once after its RST would reach this host
// again, in the moment before the address goes, and be stranded there. So
// the VIP's local route goes first: the address stays (the RSTs can leave
// from it) but nothing is delivered to it any more, so a new connection
// attempt waits for the next holder instead.

import (
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

// tcpConn is one TCP socket as sock_diag lists it.
type tcpConn struct {
	local, remote netip.AddrPort
	state         uint8 // the kernel's TCP_* state
}

// The kernel's TCP states (include/net/tcp_states.h).
const (
	tcpEstablished = 1
	tcpSynSent     = 2
	tcpSynRecv     = 3
	tcpFinWait1    = 4
	tcpFinWait2    = 5
	tcpTimeWait    = 6
	tcpClose       = 7
	tcpCloseWait   = 8
	tcpLastAck     = 9
	tcpListen      = 10
	tcpClosing     = 11
)

// connsToReset picks the connections of the VIPs that reset says, that
// have a peer to tell: not listeners (the server keeps listening for the
// VIP's return), not TIME_WAIT or CLOSE (nothing left to reset).
func connsToReset(conns []tcpConn, reset func(vip netip.Addr) bool) []tcpConn {
	var out []tcpConn
	for _, c := range conns {
		if !reset(c.local.Addr().Unmap()) {
			continue
		}
		switch c.state {
		case tcpEstablished, tcpSynSent, tcpSynRecv, tcpFinWait1, tcpFinWait2, tcpCloseWait, tcpLastAck, tcpClosing:
			out = append(out, c)
		}
	}
	return out
}

// socketTable lists and destroys the TCP sockets of this network
// namespace; netlinkSockets implements it.
type socketTable interface {
	tcpConns(ipv6 bool) ([]tcpConn, error) // of one address family
	destroy(c tcpConn) error
}

// errResetUnavailable marks a failure that will not go away by retrying:
// no CONFIG_INET_DIAG_DESTROY, no inet_diag, or no CAP_NET_ADMIN.
var errResetUnavailable = errors.New("connection reset unavailable")

// unavailable tells whether err means this kernel or this process cannot
// destroy sockets at all.
func unavailable(err error) bool {
	return errors.Is(err, unix.EOPNOTSUPP) || errors.Is(err, unix.EPERM) || errors.Is(err, unix.EACCES) ||
		errors.Is(err, unix.EPROTONOSUPPORT) || errors.Is(err, errResetUnavailable)
}

// maxResetPasses bounds the passes of one reset: a pass that destroyed
// something is followed by another, for connections that arrived meanwhile
// or a dump the kernel interrupted.
const maxResetPasses = 3

// vipGate stops and restores the delivery of packets to a VIP that is
// still configured; localRouteGate implements it.
type vipGate interface {
	close(vip netip.Addr) error
	reopen(vip netip.Addr) error
}

// ConnResetter resets a VIP's TCP connections. One serves every VIP of the
// daemon; the VIP machines call it concurrently.
// ConnResetter destroys a VIP's TCP sockets before the VIP is removed
// (WithConnReset), with the VIP's local route deleted meanwhile so that no
// new connection slips in.
type ConnResetter struct {
	log     *slog.Logger
	sockets socketTable
	gate    vipGate
	off     atomic.Bool // unavailable here: said once, not tried again

	// The resets asked for while a listing runs wait for the next one,
	// which serves them all: a node that releases 16 VIPs at once lists
	// the sockets twice, not 16 times (each listing is a dump of every
	// TCP socket of the namespace, milliseconds on a busy host).
	mu      sync.Mutex
	queue   []*resetRequest
	working bool // a goroutine serves the queue
}

// resetRequest is one VIP's reset, its gate closed, waiting for a listing.
type resetRequest struct {
	vip  netip.Addr
	done chan resetResult
}

type resetResult struct {
	reset int
	err   error
}

// NewConnResetter resets connections of VIPs on ifname; index, when set,
// saves the look-up of the link by name (as for NewAddress).
func NewConnResetter(ifname string, index *LinkIndex, log *slog.Logger) *ConnResetter {
	return &ConnResetter{log: log, sockets: netlinkSockets{}, gate: localRouteGate{ifname: ifname, index: index}}
}

// Reset closes the gate of vip and destroys its TCP connections, and logs
// one line with the count. It never fails the release: without support it
// says so once and does nothing from then on. It reports whether the gate
// was closed (then the caller must remove the VIP, or reopen it).
func (r *ConnResetter) Reset(vip netip.Addr) (closed bool) {
	if r.off.Load() {
		return false
	}
	start := time.Now()
	if err := r.gate.close(vip); err != nil {
		// Not fatal: only a reconnect in the next milliseconds may land here.
		r.log.Warn("cannot stop new connections to the VIP before resetting its connections", "vip", vip.String(), "err", err)
	} else {
		closed = true
	}
	n, err := r.resetTogether(vip)
	switch {
	case err != nil && unavailable(err):
		if !r.off.Swap(true) {
			r.log.Warn("cannot reset the TCP connections of a released VIP (needs CONFIG_INET_DIAG_DESTROY and CAP_NET_ADMIN): their clients learn of the move only when they send", "vip", vip.String(), "err", err)
		}
	case err != nil:
		r.log.Error("resetting the VIP's TCP connections failed", "vip", vip.String(), "reset", n, "err", err)
	default:
		r.log.Info("reset the VIP's TCP connections", "vip", vip.String(), "connections", n,
			"took", time.Since(start).Round(10*time.Microsecond).String())
	}
	return closed
}

// reopen undoes the gate of a VIP that could not be removed after all: it
// stays configured, so it must be served.
func (r *ConnResetter) reopen(vip netip.Addr) {
	if err := r.gate.reopen(vip); err != nil {
		r.log.Error("cannot restore the VIP's local route after a failed removal", "vip", vip.String(), "err", err)
	}
}

// resetTogether destroys vip's connections in the next round of listings,
// with those of the other VIPs whose resets are asked for meanwhile.
func (r *ConnResetter) resetTogether(vip netip.Addr) (int, error) {
	req := &resetRequest{vip: vip, done: make(chan resetResult, 1)}
	r.mu.Lock()
	r.queue = append(r.queue, req)
	if !r.working {
		r.working = true
		go r.serve()
	}
	r.mu.Unlock()
	res := <-req.done
	return res.reset, res.err
}

// serve runs rounds of resets until nobody waits.
func (r *ConnResetter) serve() {
	for {
		r.mu.Lock()
		batch := r.queue
		r.queue = nil
		if len(batch) == 0 {
			r.working = false
			r.mu.Unlock()
			return
		}
		r.mu.Unlock()
		for _, ipv6 := range []bool{false, true} {
			var family []*resetRequest
			for _, req := range batch {
				if req.vip.Is6() == ipv6 {
					family = append(family, req)
				}
			}
			if len(family) > 0 {
				r.resetPasses(family, ipv6)
			}
		}
	}
}

// resetPasses destroys the connections of the VIPs of reqs (one address
// family), and answers each request.
func (r *ConnResetter) resetPasses(reqs []*resetRequest, ipv6 bool) {
	count := make(map[netip.Addr]int, len(reqs))
	failed := make(map[netip.Addr]error)
	for _, req := range reqs {
		count[req.vip] = 0
	}
	pending := func(vip netip.Addr) bool {
		_, ours := count[vip]
		return ours && failed[vip] == nil
	}
	tab := r.sockets
	for range maxResetPasses {
		conns, err := tab.tcpConns(ipv6)
		interrupted := errors.Is(err, netlink.ErrDumpInterrupted)
		if err != nil && !interrupted {
			for vip := range count {
				if failed[vip] == nil {
					failed[vip] = fmt.Errorf("list TCP sockets: %w", err)
				}
			}
			break
		}
		destroyed := 0
		for _, c := range connsToReset(conns, pending) {
			vip := c.local.Addr().Unmap()
			if failed[vip] != nil {
				continue // failed earlier in this pass
			}
			err := tab.destroy(c)
			switch {
			case err == nil:
				destroyed++
				count[vip]++
			case errors.Is(err, unix.ENOENT):
				// closed meanwhile
			case unavailable(err):
				for vip := range count {
					failed[vip] = err // the same for every VIP: no use trying
				}
			default:
				failed[vip] = fmt.Errorf("destroy %s -> %s: %w", c.local, c.remote, err)
			}
		}
		if destroyed == 0 && !interrupted || len(failed) == len(count) {
			break
		}
	}
	for _, req := range reqs {
		req.done <- resetResult{count[req.vip], failed[req.vip]}
	}
}

// resetThenRemove is a address whose remove first resets the VIP's TCP
// connections: every release path (SIGTERM, handover, failed check, split
// brain, link loss) goes through remove.
type resetThenRemove struct {
	address
	r   *ConnResetter
	vip netip.Addr
}

func (a resetThenRemove) Remove() error {
	closed := a.r.Reset(a.vip)
	err := a.address.Remove()
	if err != nil && closed {
		a.r.reopen(a.vip)
	}
	return err
}

// WithConnReset wraps addr so that its removal resets vip's connections first.
func WithConnReset(addr address, r *ConnResetter, vip netip.Addr) address {
	return resetThenRemove{address: addr, r: r, vip: vip}
}

// localRouteGate deletes the VIP's route in the local table, which the
// kernel added with the address and deletes with it anyway. Without it
// nothing addressed to the VIP is delivered (nor answered by ARP), while
// the address itself still lets the RSTs leave.
type localRouteGate struct {
	ifname string
	index  *LinkIndex // nil or 0: look the link up by name
}

func (g localRouteGate) route(vip netip.Addr) (*netlink.Route, error) {
	index, err := linkIndexOf(g.ifname, g.index)
	if err != nil {
		return nil, err
	}
	ip := vip.AsSlice()
	if vip.Is6() {
		return localRoute6(index, vip), nil
	}
	return &netlink.Route{LinkIndex: index, Dst: &net.IPNet{IP: ip, Mask: net.CIDRMask(32, 32)},
		Src: ip, Table: unix.RT_TABLE_LOCAL, Type: unix.RTN_LOCAL, Scope: netlink.SCOPE_HOST, Protocol: unix.RTPROT_KERNEL}, nil
}

func (g localRouteGate) close(vip netip.Addr) error {
	rt, err := g.route(vip)
	var gone netlink.LinkNotFoundError
	if errors.As(err, &gone) {
		return nil // the interface is gone, and the address with it
	}
	if err == nil {
		err = netlink.RouteDel(rt)
	}
	if err != nil && !errors.Is(err, unix.ESRCH) {
		return fmt.Errorf("delete the local route of %s on %s: %w", vip, g.ifname, err)
	}
	return nil
}

func (g localRouteGate) reopen(vip netip.Addr) error {
	rt, err := g.route(vip)
	if err == nil {
		err = netlink.RouteReplace(rt)
	}
	if err != nil {
		return fmt.Errorf("restore the local route of %s on %s: %w", vip, g.ifname, err)
	}
	return nil
}

// netlinkSockets lists and destroys through sock_diag in the current
// network namespace. (The package functions, not a netlink.Handle: a
// Handle's hundreds of methods would add 1 MB to the binary.)
type netlinkSockets struct{}

func (netlinkSockets) tcpConns(ipv6 bool) ([]tcpConn, error) {
	family := uint8(unix.AF_INET)
	if ipv6 {
		family = unix.AF_INET6
	}
	socks, err := netlink.SocketDiagTCP(family)
	if err != nil && !errors.Is(err, netlink.ErrDumpInterrupted) {
		if errors.Is(err, unix.ENOENT) {
			// sock_diag has no handler for inet: no inet_diag in this kernel.
			err = fmt.Errorf("%w: %w", errResetUnavailable, err)
		}
		return nil, err
	}
	conns := make([]tcpConn, 0, len(socks))
	for _, so := range socks {
		local, ok1 := addrFromNetlink(so.ID.Source)
		remote, ok2 := addrFromNetlink(so.ID.Destination)
		if !ok1 || !ok2 || local.Is6() != ipv6 {
			continue // an IPv4-mapped IPv6 socket is not the IPv6 VIP's
		}
		conns = append(conns, tcpConn{
			local:  netip.AddrPortFrom(local, so.ID.SourcePort),
			remote: netip.AddrPortFrom(remote, so.ID.DestinationPort),
			state:  so.State,
		})
	}
	return conns, err
}

func (netlinkSockets) destroy(c tcpConn) error {
	if c.local.Addr().Is6() {
		return destroyTCP6(c) // netlink.SocketDestroy is IPv4-only
	}
	return netlink.SocketDestroy(net.TCPAddrFromAddrPort(c.local), net.TCPAddrFromAddrPort(c.remote))
}
