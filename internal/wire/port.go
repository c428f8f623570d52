package wire

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"sync"

	"floatip/internal/wire/frame"
)

// Port is the sending side of the interface's ARP socket as the VIP
// machines see it. The socket underneath is replaced when the link comes
// back after a flap or is recreated; while there is none, sends fail with
// errLinkDown and the machines hold still.
type Port struct {
	mu   sync.Mutex
	sock *ARPSocket
	nd   *NDPSocket // IPv6 VIPs' neighbour discovery ; nil without IPv6 VIPs
}

var errLinkDown = errors.New("link is down")

// Set puts the socket the loop has just opened under the port (nil: none).
func (p *Port) Set(s *ARPSocket) {
	p.mu.Lock()
	p.sock = s
	p.mu.Unlock()
}

func (p *Port) current() *ARPSocket {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.sock
}

// SetND does the same for the NDP socket of IPv6 VIPs.
func (p *Port) SetND(s *NDPSocket) {
	p.mu.Lock()
	p.nd = s
	p.mu.Unlock()
}

func (p *Port) currentND() *NDPSocket {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.nd
}

// MAC is the interface's MAC, or nil while the link is down.
func (p *Port) MAC() net.HardwareAddr {
	if s := p.current(); s != nil {
		return s.MAC
	}
	return nil
}

// Probe sends an RFC 5227 probe for vip carrying tag, to dst (broadcast,
// or the known holder's MAC); for an IPv6 VIP, a DAD-style NS (ndp.go).
func (p *Port) Probe(vip netip.Addr, tag frame.Tag, dst net.HardwareAddr) error {
	if vip.Is6() {
		nd := p.currentND()
		if nd == nil {
			return errLinkDown
		}
		return nd.Probe(vip, &tag, dst)
	}
	s := p.current()
	if s == nil {
		return errLinkDown
	}
	pkt, err := frame.ProbePacket(s.MAC, vip, &tag)
	if err != nil {
		return fmt.Errorf("build probe for %s: %w", vip, err)
	}
	return s.Send(pkt, dst)
}

// ProbeAddress sends a plain RFC 5227 probe (no tag) for ip, broadcast: it
// asks a reference host whether it is there.
func (p *Port) ProbeAddress(ip netip.Addr) error {
	if ip.Is6() {
		nd := p.currentND()
		if nd == nil {
			return errLinkDown
		}
		return nd.Probe(ip, nil, frame.BroadcastMAC)
	}
	s := p.current()
	if s == nil {
		return errLinkDown
	}
	pkt, err := frame.ProbePacket(s.MAC, ip, nil)
	if err != nil {
		return fmt.Errorf("build probe for %s: %w", ip, err)
	}
	return s.Send(pkt, frame.BroadcastMAC)
}

// Announce sends one round of unsolicited ARP for vip; for an IPv6 VIP,
// one unsolicited NA (form is ARP's: an NA has one form only).
func (p *Port) Announce(vip netip.Addr, form frame.AnnounceForm) error {
	if vip.Is6() {
		nd := p.currentND()
		if nd == nil {
			return errLinkDown
		}
		return nd.Announce(vip)
	}
	s := p.current()
	if s == nil {
		return errLinkDown
	}
	return announceARP(s, s.MAC, vip, form)
}

// announceARP sends one round of unsolicited ARP for addr in form, with
// mac as the sender hardware address, broadcast.
func announceARP(s *ARPSocket, mac net.HardwareAddr, addr netip.Addr, form frame.AnnounceForm) error {
	pkts, err := frame.AnnouncePackets(mac, addr, form)
	if err != nil {
		return err
	}
	for _, pkt := range pkts {
		if err := s.Send(pkt, frame.BroadcastMAC); err != nil {
			return err
		}
	}
	return nil
}

// AnnounceAs sends one round of unsolicited ARP for addr in form, with mac
// as the sender hardware address: a shared address is announced with its
// cluster multicast MAC, the same from every node.
func (p *Port) AnnounceAs(addr netip.Addr, mac net.HardwareAddr, form frame.AnnounceForm) error {
	if addr.Is6() {
		return fmt.Errorf("announce %s: a shared IPv6 address is not supported", addr)
	}
	s := p.current()
	if s == nil {
		return errLinkDown
	}
	if err := announceARP(s, mac, addr, form); err != nil {
		return fmt.Errorf("announce %s as %s: %w", addr, mac, err)
	}
	return nil
}
