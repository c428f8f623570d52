package main

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"sync"
	"time"

	"floatip/internal/system"

	"floatip/internal/wire"
)

// debouncer decides when a silent VIP is free. A standby probes every
// interval while the holder answers. One unanswered probe switches it to
// fast re-probing (a quarter of the interval), so a single lost frame is
// re-checked at once instead of counting toward a low bar. The VIP is free
// only when at least `misses` probes in a row went unanswered AND no answer
// was seen for misses × interval. With 5 % loss a false "free" needs about
// five losses in a row; a real death is seen within misses × interval of
// the holder's last answer.
type debouncer struct {
	interval time.Duration
	misses   int

	lastAnswer  time.Time // last sign of life from a holder
	missedInRow int
}

func newDebouncer(interval time.Duration, misses int, now time.Time) *debouncer {
	// Start as if the holder had just answered: a booting standby waits a
	// full dead time before it may claim.
	return &debouncer{interval: interval, misses: misses, lastAnswer: now}
}

// answered records a sign of life from the holder.
func (d *debouncer) answered(now time.Time) {
	d.lastAnswer = now
	d.missedInRow = 0
}

// missed records one probe that went unanswered for its whole spacing.
func (d *debouncer) missed() { d.missedInRow++ }

// deadTime is how long the holder must be silent before the VIP is free.
func (d *debouncer) deadTime() time.Duration { return time.Duration(d.misses) * d.interval }

// free reports whether the holder has been silent long enough.
func (d *debouncer) free(now time.Time) bool {
	return d.missedInRow >= d.misses && now.Sub(d.lastAnswer) >= d.deadTime()
}

// spacing is the time until the next probe: the interval while the holder
// answers, a quarter of it once a probe went unanswered.
func (d *debouncer) spacing() time.Duration {
	if d.missedInRow == 0 {
		return d.interval
	}
	return fastSpacing(d.interval)
}

// forceFree marks the VIP free at once: its holder said it is leaving.
func (d *debouncer) forceFree(now time.Time) {
	d.missedInRow = d.misses
	d.lastAnswer = now.Add(-d.deadTime())
}

func fastSpacing(interval time.Duration) time.Duration {
	return max(interval/4, time.Millisecond)
}

// rank orders floatip nodes: the higher priority wins; between equal
// priorities the numerically lower MAC wins. Every node computes the same
// order from what it hears, so no two nodes disagree on a winner.
type rank struct {
	priority uint8
	mac      net.HardwareAddr
}

// outranks reports whether a beats b.
func (a rank) outranks(b rank) bool {
	if a.priority != b.priority {
		return a.priority > b.priority
	}
	return bytes.Compare(a.mac, b.mac) < 0
}

func (a rank) String() string { return fmt.Sprintf("priority %d, %s", a.priority, a.mac) }

// peer is another floatip node heard on the LAN through its tagged probes.
type peer struct {
	rank       rank
	standAside bool // its last probe said it will not take the VIP
	lastSeen   time.Time
	frames     int // tagged probes, and frames showing it holds the VIP
}

// peerTable remembers the floatip nodes heard on the interface (their
// tagged probes, for any VIP).
type peerTable map[string]*peer

const (
	// maxPeers: past this many entries, the peers heard only once and
	// those silent for peerForget are forgotten, and if that frees no room
	// a new MAC is not recorded. A real group is a few nodes; a flood of
	// tagged probes from random MACs must not grow the table (or a
	// standby's scans of it) without bound.
	maxPeers   = 256
	peerForget = time.Minute
)

// observe records a tagged probe from mac.
func (t peerTable) observe(mac net.HardwareAddr, tag wire.Tag, now time.Time) {
	key := mac.String()
	p := t[key]
	if p == nil {
		if len(t) >= maxPeers {
			if t.forget(now); len(t) >= maxPeers {
				return // a flood that repeats its MACs: hear it as a stranger
			}
		}
		p = &peer{rank: rank{mac: append(net.HardwareAddr(nil), mac...)}}
		t[key] = p
	}
	p.frames++
	p.rank.priority = tag.Priority
	p.standAside = tag.Flags&wire.FlagStandAside != 0
	p.lastSeen = now
	if tag.Flags&wire.FlagReleasing != 0 {
		// A leaving node is no standby any more.
		p.lastSeen = time.Time{}
	}
}

// forget drops the peers heard only once and those long silent.
func (t peerTable) forget(now time.Time) {
	for key, p := range t {
		if p.frames < 2 || now.Sub(p.lastSeen) > peerForget {
			delete(t, key)
		}
	}
}

// heard counts a frame from mac that shows it holds the VIP (an
// announcement, its kernel's answer to a probe), if mac is a known peer.
func (t peerTable) heard(mac net.HardwareAddr) {
	if p := t[mac.String()]; p != nil {
		p.frames++
	}
}

// confirmed returns the rank of a floatip node that has shown itself in
// more than one frame. A real node always does within milliseconds (its
// kernel answers our probe, it probes again); a tag in one frame from a MAC
// never heard again is noise, or a forgery, and gets no say in a split-brain
// verdict.
func (t peerTable) confirmed(mac net.HardwareAddr) (rank, bool) {
	p := t[mac.String()]
	if p == nil || p.frames < 2 {
		return rank{}, false
	}
	return p.rank, true
}

// known returns the rank of a floatip node by MAC, if it has been heard.
func (t peerTable) known(mac net.HardwareAddr) (rank, bool) {
	p := t[mac.String()]
	if p == nil {
		return rank{}, false
	}
	return p.rank, true
}

// betterStandby returns a standby that outranks self and was heard within
// window: while one is alive, self leaves the claim to it. The table is the
// node's, shared by all VIPs: holder is the VIP's own (silent) holder, which
// is no standby for it.
func (t peerTable) betterStandby(self rank, holder net.HardwareAddr, now time.Time, window time.Duration) (rank, bool) {
	var best *peer
	for _, p := range t {
		if p.standAside || now.Sub(p.lastSeen) > window || !p.rank.outranks(self) || bytes.Equal(p.rank.mac, holder) {
			continue
		}
		if best == nil || p.rank.outranks(best.rank) {
			best = p
		}
	}
	if best == nil {
		return rank{}, false
	}
	return best.rank, true
}

// conflictAction is what an active node does about another holder.
type conflictAction int

const (
	// defend: announce (rate-limited) and keep the VIP.
	defend conflictAction = iota
	// yield: the other node outranks us; it announces, then we remove.
	yield
)

// resolveConflict decides a split brain the same way on both sides without
// talking: the better rank keeps the VIP. A holder that is not floatip has no
// rank: it is defended against as RFC 5227 §2.4(c) says, never yielded to.
func resolveConflict(self rank, other rank, otherIsFloatip bool) conflictAction {
	if otherIsFloatip && other.outranks(self) {
		return yield
	}
	return defend
}

// probeRound sends up to count plain RFC 5227 probes for vip, spaced by
// wait, and returns the MAC of the first node that answers, or nil if none
// did. It is the one-shot check behind `floatip probe`.
func probeRound(ctx context.Context, sock *oneShotSocket, vip netip.Addr, count int, wait time.Duration) (net.HardwareAddr, error) {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	answers := make(chan net.HardwareAddr, 1)
	readErr := make(chan error, 1)
	go func() {
		readErr <- sock.run(ctx, func(f wire.Frame) {
			if wire.HolderEvidence(f, vip, sock.mac) {
				select {
				case answers <- f.Packet.SenderHardwareAddr:
				default:
				}
			}
		})
	}()
	for range count {
		if err := sock.probe(); err != nil {
			return nil, err
		}
		timer := time.NewTimer(wait)
		select {
		case mac := <-answers:
			timer.Stop()
			return mac, nil
		case err := <-readErr:
			timer.Stop()
			if err == nil {
				err = ctx.Err()
			}
			return nil, err
		case <-ctx.Done():
			timer.Stop()
			return nil, ctx.Err()
		case <-timer.C:
		}
	}
	return nil, nil
}

// referenceWatch tells whether this node can reach any reference host: a
// standby that cannot is the one cut off, not the holder, and must not
// claim (Heartbeat's "ping nodes"). References are asked over ARP with
// plain RFC 5227 probes, so no cache learns anything and no IP route is
// needed; any ARP sent by a reference counts as an answer. By default the
// reference is the gateway of the default route through the interface,
// looked up again every few seconds (DHCP may change it); --reference
// replaces it.
type referenceWatch struct {
	ifname     string
	explicit   []netip.Addr // --reference; nil means the default gateway
	useGateway bool
	ipv6       bool // IPv6 VIPs: without an IPv4 default route, the IPv6 one's gateway
	sender     interface{ ProbeAddress(netip.Addr) error }
	minGap     time.Duration // between two rounds of reference probes
	log        *slog.Logger

	mu          sync.Mutex
	current     []netip.Addr
	resolvedAt  time.Time
	lastProbe   time.Time
	lastAnswer  time.Time
	saidMissing bool
}

// referenceRefresh is how often the default gateway is looked up again.
const referenceRefresh = 5 * time.Second

func (r *referenceWatch) refs(now time.Time) []netip.Addr {
	if r.explicit != nil {
		r.current = r.explicit
		return r.current
	}
	if !r.useGateway {
		return nil
	}
	if now.Sub(r.resolvedAt) >= referenceRefresh || r.resolvedAt.IsZero() {
		r.resolvedAt = now
		gw, err := system.DefaultGateway(r.ifname, r.ipv6)
		switch {
		case err != nil:
			r.log.Debug("cannot look up the default gateway", "err", err)
		case gw.IsValid():
			if len(r.current) == 0 || r.current[0] != gw {
				r.log.Info("reference host: the default gateway", "reference", gw.String())
			}
			r.current = []netip.Addr{gw}
			r.saidMissing = false
			return r.current
		}
		r.current = nil
		if !r.saidMissing {
			r.log.Info("no default gateway on the interface: no reference host (use --reference to set one)")
			r.saidMissing = true
		}
	}
	return r.current
}

func (r *referenceWatch) Probe(now time.Time) {
	r.mu.Lock()
	if now.Sub(r.lastProbe) < r.minGap {
		r.mu.Unlock()
		return
	}
	r.lastProbe = now
	refs := r.refs(now)
	r.mu.Unlock()
	for _, ip := range refs {
		if err := r.sender.ProbeAddress(ip); err != nil {
			r.log.Debug("reference probe not sent", "reference", ip.String(), "err", err)
		}
	}
}

func (r *referenceWatch) reachable(now time.Time, window time.Duration) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	if len(r.refs(now)) == 0 {
		return true
	}
	return now.Sub(r.lastAnswer) <= window
}

// saw records a frame from the LAN; one sent by a reference is an answer.
func (r *referenceWatch) saw(f wire.Frame) {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, ip := range r.current {
		if f.Packet.SenderIP == ip {
			r.lastAnswer = f.Received
			return
		}
	}
}
