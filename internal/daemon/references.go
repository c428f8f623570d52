package daemon

import (
	"log/slog"
	"net/netip"
	"sync"
	"time"

	"floatip/internal/system"
	"floatip/internal/wire/frame"
)

// References tells whether this node can reach any reference host: a
// standby that cannot is the one cut off, not the holder, and must not
// claim (Heartbeat's "ping nodes"). References are asked over ARP with
// plain RFC 5227 probes, so no cache learns anything and no IP route is
// needed; any ARP sent by a reference counts as an answer. By default the
// reference is the gateway of the default route through the interface,
// looked up again every few seconds (DHCP may change it); --reference
// replaces it.
type References struct {
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

// NewReferences asks the hosts in explicit (--reference) or, with none,
// the gateway of the default route through ifname (with ipv6, the IPv6
// default route's when there is no IPv4 one). sender sends the probes, a
// round at most every minGap.
func NewReferences(ifname string, explicit []netip.Addr, ipv6 bool, sender interface{ ProbeAddress(netip.Addr) error },
	minGap time.Duration, log *slog.Logger) *References {
	return &References{ifname: ifname, explicit: explicit, useGateway: len(explicit) == 0, ipv6: ipv6,
		sender: sender, minGap: minGap, log: log}
}

// referenceRefresh is how often the default gateway is looked up again.
const referenceRefresh = 5 * time.Second

func (r *References) refs(now time.Time) []netip.Addr {
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

func (r *References) Probe(now time.Time) {
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

func (r *References) Reachable(now time.Time, window time.Duration) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	if len(r.refs(now)) == 0 {
		return true
	}
	return now.Sub(r.lastAnswer) <= window
}

// saw records a frame from the LAN; one sent by a reference is an answer.
func (r *References) saw(f frame.Frame) {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, ip := range r.current {
		if f.Packet.SenderIP == ip {
			r.lastAnswer = f.Received
			return
		}
	}
}

// HeardAt implements reachability for the reference hosts: asked is false
// when there are none to ask.
func (r *References) HeardAt(now time.Time) (at time.Time, asked bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if len(r.refs(now)) == 0 {
		return time.Time{}, false
	}
	return r.lastAnswer, true
}
