package engine

import (
	"bytes"
	"net"
	"slices"
	"time"

	"floatip/internal/pool"
)

// Facts is what the group knows of this node and of the other floatip
// nodes, as plain values for `floatip status`: built in the interface's
// loop, read anywhere.
type Facts struct {
	MAC      net.HardwareAddr // this node's; nil while the interface is down
	Priority int
	Healthy  bool // false: its --check fails, it claims nothing
	Pool     bool // --spread
	Members  []pool.Member
	Shared   *SharedFacts // --share; nil otherwise
	// Peers are the confirmed floatip nodes heard on the interface.
	Peers []PeerFacts
	// Priorities holds the priority of every node heard, confirmed or
	// not, by MAC (net.HardwareAddr.String).
	Priorities map[string]int
}

// PeerFacts is another floatip node as this node has heard it.
type PeerFacts struct {
	MAC        net.HardwareAddr
	Priority   int
	StandAside bool // its health check fails
	LastHeard  time.Time
}

// Facts reads the group; only the interface's loop may call it.
func (g *Group) Facts() Facts {
	self := g.arp.MAC()
	f := Facts{MAC: self, Priority: int(g.cfg.Priority), Pool: g.pool != nil, Priorities: map[string]int{}}
	f.Healthy = g.healthy()
	for key, p := range g.peers {
		f.Priorities[key] = int(p.rank.priority)
		if p.frames < 2 || p.lastSeen.IsZero() || bytes.Equal(p.rank.mac, self) {
			continue // unconfirmed (noise, a forgery), or gone with a release notice
		}
		f.Peers = append(f.Peers, PeerFacts{MAC: p.rank.mac, Priority: int(p.rank.priority),
			StandAside: p.standAside, LastHeard: p.lastSeen})
	}
	if g.pool != nil {
		f.Members = slices.Clone(g.pool.members)
	}
	if g.shared != nil {
		f.Shared = g.shared.facts()
		if g.pool == nil {
			f.Members = slices.Clone(g.shared.members)
		}
	}
	return f
}

// healthy is whether this node passes its health check: a node-level fact
// every machine is told (false for a group without machines).
func (g *Group) healthy() bool {
	for _, m := range g.machines {
		return m.healthy
	}
	if g.shared != nil {
		return g.shared.healthy
	}
	return false
}
