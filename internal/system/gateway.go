package system

import (
	"fmt"
	"net"
	"net/netip"

	"github.com/vishvananda/netlink"
)

// isDefaultRoute: netlink gives a default route's destination as nil or as
// 0.0.0.0/0.
func isDefaultRoute(dst *net.IPNet) bool {
	if dst == nil {
		return true
	}
	ones, _ := dst.Mask.Size()
	return ones == 0 && dst.IP.IsUnspecified()
}

// DefaultGateway returns the gateway of the IPv4 default route through
// ifname, or with ipv6, when there is none, that of the IPv6 default route
// (usually a router's link-local address, probed the same way); an invalid
// address when there is none.
func DefaultGateway(ifname string, ipv6 bool) (netip.Addr, error) {
	link, err := netlink.LinkByName(ifname)
	if err != nil {
		return netip.Addr{}, fmt.Errorf("look up %s: %w", ifname, err)
	}
	families := []int{netlink.FAMILY_V4}
	if ipv6 {
		families = append(families, netlink.FAMILY_V6)
	}
	for _, family := range families {
		routes, err := netlink.RouteList(link, family)
		if err != nil {
			return netip.Addr{}, fmt.Errorf("list routes of %s: %w", ifname, err)
		}
		for _, rt := range routes {
			if !isDefaultRoute(rt.Dst) || rt.Gw == nil {
				continue
			}
			if gw, ok := addrFromNetlink(rt.Gw); ok && gw.Is4() == (family == netlink.FAMILY_V4) {
				return gw, nil
			}
		}
	}
	return netip.Addr{}, nil
}
