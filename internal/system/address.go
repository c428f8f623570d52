package system

// The VIP on the interface: adding and removing it through netlink (the
// vipAddress side effect of a machine), and the look at the host's
// addresses before anything is changed.

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"sync/atomic"

	"floatip/internal/privilege"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

// NetlinkAddress manages the VIP as a /32 with a label on one interface,
// an IPv6 VIP as a /128 with IFA_F_NODAD (the kernel's own DAD would hold
// it tentative for a second, and could refuse it) and no label (IPv6
// addresses have none). The link is the one the interface's loop has open
// (index), or, while it has none, looked up by name: it may have been
// recreated. Not looking it up for every add keeps a claim of hundreds of
// VIPs to one netlink round trip each.
type NetlinkAddress struct {
	ifname string
	vip    netip.Addr
	label  string
	index  *LinkIndex // nil or 0: look the link up by name
}

// address is a VIP's address on the interface, as a machine adds and
// removes it (NetlinkAddress, and resetThenRemove around it).
type address interface {
	Add() error
	Remove() error
}

// LinkIndex is the index of the interface while its socket is open.
type LinkIndex struct{ v atomic.Int32 }

// Set records the open socket's interface index; 0 while none is open.
func (l *LinkIndex) Set(i int) { l.v.Store(int32(i)) }

func (l *LinkIndex) get() int {
	if l == nil {
		return 0
	}
	return int(l.v.Load())
}

// NewAddress is vip on the interface ifname with an address label ("" for
// none); index, when set, saves the look-up of the link by name.
func NewAddress(ifname string, vip netip.Addr, label string, index *LinkIndex) *NetlinkAddress {
	return &NetlinkAddress{ifname: ifname, vip: vip, label: label, index: index}
}

func (a *NetlinkAddress) link() (netlink.Link, error) {
	i, err := linkIndexOf(a.ifname, a.index)
	if err != nil {
		return nil, err
	}
	return &netlink.Dummy{LinkAttrs: netlink.LinkAttrs{Index: i, Name: a.ifname}}, nil
}

// linkIndexOf is the index of ifname: the open socket's (index), or, while
// there is none, looked up by name (the link may have been recreated).
func linkIndexOf(ifname string, index *LinkIndex) (int, error) {
	if i := index.get(); i > 0 {
		return i, nil
	}
	link, err := netlink.LinkByName(ifname)
	if err != nil {
		return 0, err
	}
	return link.Attrs().Index, nil
}

func (a *NetlinkAddress) netlinkAddr() *netlink.Addr {
	if a.vip.Is6() {
		return &netlink.Addr{
			IPNet: &net.IPNet{IP: a.vip.AsSlice(), Mask: net.CIDRMask(128, 128)},
			Flags: unix.IFA_F_NODAD | unix.IFA_F_NOPREFIXROUTE,
		}
	}
	return &netlink.Addr{
		IPNet: &net.IPNet{IP: a.vip.AsSlice(), Mask: net.CIDRMask(32, 32)},
		Label: a.label,
	}
}

// add configures the VIP/32 (/128); it is idempotent (RTM_NEWADDR with replace).
func (a *NetlinkAddress) Add() error {
	link, err := a.link()
	if err != nil {
		return fmt.Errorf("add %s to %s: %w", hostPrefix(a.vip), a.ifname, err)
	}
	if err := netlink.AddrReplace(link, a.netlinkAddr()); err != nil {
		return fmt.Errorf("add %s to %s: %w", hostPrefix(a.vip), a.ifname, privilege.Hint(err))
	}
	return nil
}

// remove deletes the VIP/32 (/128); an address or interface already gone is fine.
func (a *NetlinkAddress) Remove() error {
	link, err := a.link()
	if err != nil {
		var notFound netlink.LinkNotFoundError
		if errors.As(err, &notFound) {
			return nil // the interface is gone, and its addresses with it
		}
		return fmt.Errorf("remove %s from %s: %w", hostPrefix(a.vip), a.ifname, err)
	}
	// By address and prefix only, whatever its label: the kernel matches a
	// Label given in a delete, so a copy added by hand or by a run with
	// another --label would stay while we thought it gone.
	addr := a.netlinkAddr()
	addr.Label = ""
	if err := netlink.AddrDel(link, addr); err != nil && !errors.Is(err, unix.EADDRNOTAVAIL) {
		return fmt.Errorf("remove %s from %s: %w", hostPrefix(a.vip), a.ifname, privilege.Hint(err))
	}
	return nil
}

// hostPrefix is ip/32 or ip/128.
func hostPrefix(ip netip.Addr) netip.Prefix { return netip.PrefixFrom(ip, ip.BitLen()) }

// CheckExistingAddresses looks at the host's addresses before anything
// is changed. A VIP that is this host's own address (another prefix on
// ifname, or any address on another interface) is refused; a VIP/32
// (/128) already on ifname is returned for adoption; a VIP that is the network or
// broadcast address of a subnet on ifname is refused.
func CheckExistingAddresses(ifname string, vips []netip.Addr) (map[netip.Addr]bool, error) {
	addrs, err := netlink.AddrList(nil, netlink.FAMILY_ALL)
	if err != nil {
		return nil, fmt.Errorf("list addresses: %w", err)
	}
	links, err := netlink.LinkList()
	if err != nil {
		return nil, fmt.Errorf("list interfaces: %w", err)
	}
	names := make(map[int]string, len(links))
	for _, l := range links {
		names[l.Attrs().Index] = l.Attrs().Name
	}
	adopt := map[netip.Addr]bool{}
	for _, a := range addrs {
		ip, ok := addrFromNetlink(a.IP)
		if !ok {
			continue
		}
		ones, _ := a.Mask.Size()
		prefix := netip.PrefixFrom(ip, ones)
		owner, known := names[a.LinkIndex]
		if !known {
			owner = fmt.Sprintf("interface #%d", a.LinkIndex)
		}
		for _, vip := range vips {
			switch {
			case ip == vip && owner == ifname && ones == vip.BitLen():
				adopt[vip] = true
			case ip == vip:
				return nil, fmt.Errorf("%s is already this host's own address (%s on %s): floatip only manages addresses it adds itself as /32 (IPv6: /128)", vip, prefix, owner)
			case vip.Is4() && owner == ifname && ones <= 30 && prefix.Masked().Contains(vip) && (vip == prefix.Masked().Addr() || vip == lastAddr(prefix)):
				return nil, fmt.Errorf("%s is the network or broadcast address of %s on %s", vip, prefix.Masked(), ifname)
			}
		}
	}
	return adopt, nil
}

// addrFromNetlink reads an address from netlink: 4 bytes (or 16 in the
// v4-mapped form) for IPv4, 16 for IPv6.
func addrFromNetlink(ip net.IP) (netip.Addr, bool) {
	a, ok := netip.AddrFromSlice(ip)
	return a.Unmap(), ok
}

// lastAddr is the broadcast address of an IPv4 prefix.
func lastAddr(p netip.Prefix) netip.Addr {
	b := p.Masked().Addr().As4()
	host := uint32(1)<<(32-p.Bits()) - 1
	v := uint32(b[0])<<24 | uint32(b[1])<<16 | uint32(b[2])<<8 | uint32(b[3]) | host
	return netip.AddrFrom4([4]byte{byte(v >> 24), byte(v >> 16), byte(v >> 8), byte(v)})
}

// HasAddress reports whether ip is configured on the interface, any prefix.
func HasAddress(ifname string, ip netip.Addr) (bool, error) {
	link, err := netlink.LinkByName(ifname)
	if err != nil {
		return false, fmt.Errorf("interface %s: %w", ifname, err)
	}
	addrs, err := netlink.AddrList(link, netlink.FAMILY_ALL)
	if err != nil {
		return false, fmt.Errorf("list addresses of %s: %w", ifname, err)
	}
	for _, a := range addrs {
		if got, ok := addrFromNetlink(a.IP); ok && got == ip {
			return true, nil
		}
	}
	return false, nil
}
