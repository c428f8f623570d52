package engine

import (
	"bytes"
	"fmt"
	"net"
	"time"

	"floatip/internal/wire/frame"
)

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

// observe records a tagged probe from mac.
func (t peerTable) observe(mac net.HardwareAddr, tag frame.Tag, now time.Time) {
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
	p.standAside = tag.Flags&frame.FlagStandAside != 0
	p.lastSeen = now
	if tag.Flags&frame.FlagReleasing != 0 {
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

// resolveConflict decides a split brain the same way on both sides without
// talking: the better rank keeps the VIP. A holder that is not floatip has no
// rank: it is defended against as RFC 5227 §2.4(c) says, never yielded to.
func resolveConflict(self rank, other rank, otherIsFloatip bool) conflictAction {
	if otherIsFloatip && other.outranks(self) {
		return yield
	}
	return defend
}

const (
	// maxPeers: past this many entries, the peers heard only once and
	// those silent for peerForget are forgotten, and if that frees no room
	// a new MAC is not recorded. A real group is a few nodes; a flood of
	// tagged probes from random MACs must not grow the table (or a
	// standby's scans of it) without bound.
	maxPeers   = 256
	peerForget = time.Minute
)

const (
	// defend: announce (rate-limited) and keep the VIP.
	defend conflictAction = iota
	// yield: the other node outranks us; it announces, then we remove.
	yield
)
