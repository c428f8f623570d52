package clusterip

import (
	"fmt"
	"net"
	"net/netip"
)

// Hash is what a flow's bucket is computed from, CLUSTERIP's --hashmode.
type Hash int

const (
	HashSource             Hash = iota // jhash ip saddr (CLUSTERIP sourceip, the default)
	HashSourcePort                     // jhash ip saddr . th sport (sourceip-sourceport)
	HashSourcePortDestPort             // jhash ip saddr . th sport . th dport (sourceip-sourceport-destport)
)

var hashNames = [...]string{
	HashSource:             "source",
	HashSourcePort:         "source-port",
	HashSourcePortDestPort: "source-port-dest-port",
}

// ParseHash reads "source", "source-port" or "source-port-dest-port".
func ParseHash(s string) (Hash, error) {
	for h, name := range hashNames {
		if s == name {
			return Hash(h), nil
		}
	}
	return 0, fmt.Errorf("unknown hash %q (want source, source-port or source-port-dest-port)", s)
}

func (h Hash) String() string {
	if h < 0 || int(h) >= len(hashNames) {
		return fmt.Sprintf("Hash(%d)", int(h))
	}
	return hashNames[h]
}

// ports is how many port fields the hash reads after the source address.
func (h Hash) ports() int {
	switch h {
	case HashSourcePort:
		return 1
	case HashSourcePortDestPort:
		return 2
	}
	return 0
}

// ClusterMAC is the multicast MAC a shared address is answered with:
// 01:00:5e + the low 23 bits of Group(addr). It is nil for an address that
// is not IPv4.
func ClusterMAC(addr netip.Addr) net.HardwareAddr {
	if addr = addr.Unmap(); !addr.Is4() {
		return nil
	}
	g := Group(addr).As4()
	return net.HardwareAddr{0x01, 0x00, 0x5e, g[1] & 0x7f, g[2], g[3]}
}

// Group is the IPv4 multicast group 239.(b&0x7f).c.d for addr a.b.c.d, which
// maps to ClusterMAC(addr); joining it makes IGMP-snooping switches forward
// the cluster MAC to this node. It is the zero Addr for an address that is
// not IPv4.
func Group(addr netip.Addr) netip.Addr {
	if addr = addr.Unmap(); !addr.Is4() {
		return netip.Addr{}
	}
	a := addr.As4()
	return netip.AddrFrom4([4]byte{239, a[1] & 0x7f, a[2], a[3]})
}
