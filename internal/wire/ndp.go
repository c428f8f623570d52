package wire

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"time"

	"floatip/internal/wire/frame"

	"floatip/internal/privilege"

	"github.com/mdlayher/arp"
	"github.com/mdlayher/ndp"
	"github.com/mdlayher/packet"
	"golang.org/x/net/bpf"
	"golang.org/x/sys/unix"
)

// IPv6 over Neighbour Discovery (RFC 4861, RFC 4862), the same way as IPv4
// over ARP:
//
//   - a probe is a Duplicate Address Detection NS: source ::, destination
//     the VIP's solicited-node group, target the VIP, hop limit 255, no
//     source link-layer option; a holder's kernel answers it with an NA to
//     all-nodes (ff02::1), Override set, whose target link-layer option
//     names the holder's MAC. Like an ARP probe it is broadcast (here: to
//     the solicited-node group's MAC), or sent to the known holder's MAC
//     (the IPv6 destination stays the solicited-node group, as RFC 4861
//     §7.1.1 requires of an NS from ::).
//   - the floatip tag rides in an ND option of type 253, one of the two
//     types RFC 4727 reserves for experiments; receivers must ignore options
//     they do not know (RFC 4861 §4.6), and Linux does. Its 8 bytes:
//
//     253 1 'f' 'i' 'p' version priority flags
//
//     (the six bytes after type and length are those of the ARP tag).
//   - an announcement is an unsolicited NA as the kernel sends it itself
//     (ndisc_notify): source the VIP, destination ff02::1, Override set,
//     Solicited clear, a target link-layer option with our MAC.
//
// The socket is a packet socket for IPv6 with a BPF filter that passes only
// NS and NA with hop limit 255, so the Ethernet source is known (a DAD NS
// carries no link-layer option, and floatip ranks nodes by MAC) and an NS
// can leave from ::, which an ICMPv6 socket does not allow (the kernel
// picks a source address for it). mdlayher/ndp is the codec of the ND
// messages; the 40-byte IPv6 header around them is built and checked here.
//
// Each NDP message is handed to the VIP machines as the ARP facts they read
// (see NDPFrame), so their decisions are the same for both families.

const (
	tagOptionType = 253 // RFC 4727: "RFC3692-style Experiment 1" ND option
	ipv6HeaderLen = 40
	ndpHopLimit   = 255
)

var (
	allNodes     = netip.MustParseAddr("ff02::1")
	allNodesMAC  = net.HardwareAddr{0x33, 0x33, 0, 0, 0, 1}
	zeroIPv6     = netip.IPv6Unspecified()
	errNotNDP    = errors.New("not a valid NS or NA")
	ndpBPFFilter = mustAssemble([]bpf.Instruction{
		bpf.LoadAbsolute{Off: 0, Size: 1}, // version and traffic class
		bpf.ALUOpConstant{Op: bpf.ALUOpShiftRight, Val: 4},
		bpf.JumpIf{Cond: bpf.JumpNotEqual, Val: 6, SkipTrue: 8},
		bpf.LoadAbsolute{Off: 6, Size: 1}, // next header: ICMPv6, no extension header
		bpf.JumpIf{Cond: bpf.JumpNotEqual, Val: unix.IPPROTO_ICMPV6, SkipTrue: 6},
		bpf.LoadAbsolute{Off: 7, Size: 1}, // hop limit
		bpf.JumpIf{Cond: bpf.JumpNotEqual, Val: ndpHopLimit, SkipTrue: 4},
		bpf.LoadAbsolute{Off: ipv6HeaderLen, Size: 1}, // ICMPv6 type
		bpf.JumpIf{Cond: bpf.JumpEqual, Val: 135, SkipTrue: 1},
		bpf.JumpIf{Cond: bpf.JumpNotEqual, Val: 136, SkipTrue: 1},
		bpf.RetConstant{Val: 1500},
		bpf.RetConstant{Val: 0},
	})
)

func mustAssemble(prog []bpf.Instruction) []bpf.RawInstruction {
	raw, err := bpf.Assemble(prog)
	if err != nil {
		panic(err)
	}
	return raw
}

// solicitedNode returns the solicited-node multicast group of ip and its
// Ethernet address (33:33:ff + the low 24 bits).
func solicitedNode(ip netip.Addr) (netip.Addr, net.HardwareAddr) {
	group, err := ndp.SolicitedNodeMulticast(ip)
	if err != nil {
		panic(fmt.Sprintf("solicited-node group of %s: %v", ip, err)) // callers pass IPv6 only
	}
	return group, multicastMAC(group)
}

// multicastMAC maps an IPv6 multicast group to its Ethernet address (RFC 2464).
func multicastMAC(group netip.Addr) net.HardwareAddr {
	b := group.As16()
	return net.HardwareAddr{0x33, 0x33, b[12], b[13], b[14], b[15]}
}

// tagOption is the floatip tag as an ND option.
func tagOption(t frame.Tag) *ndp.RawOption {
	return &ndp.RawOption{Type: tagOptionType, Length: 1, Value: t.HardwareAddr()}
}

// ipv6Packet returns an IPv6 header with payload (an ICMPv6 message whose
// checksum is already set) behind it.
func ipv6Packet(src, dst netip.Addr, icmp []byte) []byte {
	b := make([]byte, ipv6HeaderLen, ipv6HeaderLen+len(icmp))
	b[0] = 6 << 4 // version 6, traffic class 0, flow label 0: as the kernel's own ND
	binary.BigEndian.PutUint16(b[4:], uint16(len(icmp)))
	b[6] = unix.IPPROTO_ICMPV6
	b[7] = ndpHopLimit
	s, d := src.As16(), dst.As16()
	copy(b[8:24], s[:])
	copy(b[24:40], d[:])
	return append(b, icmp...)
}

// ndpPacket marshals m from src to dst with its IPv6 header.
func ndpPacket(m ndp.Message, src, dst netip.Addr) ([]byte, error) {
	icmp, err := ndp.MarshalMessageChecksum(m, src, dst)
	if err != nil {
		return nil, fmt.Errorf("marshal %s: %w", m.Type(), err)
	}
	return ipv6Packet(src, dst, icmp), nil
}

// ProbeNS builds a DAD-style NS for target (source ::, to its
// solicited-node group), with the floatip tag when tag is not nil.
func ProbeNS(target netip.Addr, tag *frame.Tag) ([]byte, error) {
	ns := &ndp.NeighborSolicitation{TargetAddress: target}
	if tag != nil {
		ns.Options = []ndp.Option{tagOption(*tag)}
	}
	group, _ := solicitedNode(target)
	return ndpPacket(ns, zeroIPv6, group)
}

// UnsolicitedNA builds the announcement of vip: as the kernel's own
// unsolicited NA (RFC 4861 §7.2.6), source vip, to all-nodes, Override set.
func UnsolicitedNA(mac net.HardwareAddr, vip netip.Addr) ([]byte, error) {
	na := &ndp.NeighborAdvertisement{
		Override:      true,
		TargetAddress: vip,
		Options:       []ndp.Option{&ndp.LinkLayerAddress{Direction: ndp.Target, Addr: mac}},
	}
	return ndpPacket(na, vip, allNodes)
}

// NDPFrame translates one received IPv6 packet (from the Ethernet source
// src) into the ARP facts the VIP machines read; ok is false for anything
// but a valid NS or NA (RFC 4861 §7.1: hop limit 255, code 0, a correct
// checksum, no NS from :: to a unicast address). The translation:
//
//	NS from :: for T      op request, SHA src, SPA ::, THA the tag (or zero), TPA T: a probe
//	NS from S for T       op request, SHA its source link-layer option (or src), SPA S, TPA T
//	NA for T, unsolicited op reply, SHA its target link-layer option (or src), SPA T, TPA T: an announcement
//	NA for T, solicited   the same with TPA :: (an answer, as the kernel's ARP reply to a probe)
func NDPFrame(b []byte, src net.HardwareAddr) (*arp.Packet, error) {
	if len(b) < ipv6HeaderLen+4 || b[0]>>4 != 6 || b[6] != unix.IPPROTO_ICMPV6 || b[7] != ndpHopLimit {
		return nil, errNotNDP
	}
	plen := int(binary.BigEndian.Uint16(b[4:]))
	if plen < 4 || ipv6HeaderLen+plen > len(b) {
		return nil, errNotNDP
	}
	icmp := b[ipv6HeaderLen : ipv6HeaderLen+plen]
	ipSrc := netip.AddrFrom16([16]byte(b[8:24]))
	ipDst := netip.AddrFrom16([16]byte(b[24:40]))
	if icmp[1] != 0 || icmpChecksum(ipSrc, ipDst, icmp) != 0 {
		return nil, errNotNDP
	}
	msg, err := ndp.ParseMessage(icmp)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", errNotNDP, err)
	}
	p := &arp.Packet{HardwareType: 1, ProtocolType: unix.ETH_P_IPV6, HardwareAddrLength: 6, IPLength: 16,
		SenderHardwareAddr: src, TargetHardwareAddr: frame.ZeroMAC}
	switch m := msg.(type) {
	case *ndp.NeighborSolicitation:
		if ipSrc.IsUnspecified() && !ipDst.IsMulticast() {
			return nil, errNotNDP
		}
		p.Operation, p.SenderIP, p.TargetIP = arp.OperationRequest, ipSrc, m.TargetAddress
		for _, o := range m.Options {
			switch o := o.(type) {
			case *ndp.RawOption:
				if o.Type == tagOptionType && len(o.Value) == 6 && ipSrc.IsUnspecified() {
					p.TargetHardwareAddr = net.HardwareAddr(o.Value)
				}
			case *ndp.LinkLayerAddress:
				if o.Direction == ndp.Source && len(o.Addr) == 6 && !ipSrc.IsUnspecified() {
					p.SenderHardwareAddr = o.Addr
				}
			}
		}
	case *ndp.NeighborAdvertisement:
		if m.Solicited && ipDst.IsMulticast() {
			return nil, errNotNDP
		}
		p.Operation, p.SenderIP, p.TargetIP = arp.OperationReply, m.TargetAddress, m.TargetAddress
		if m.Solicited {
			p.TargetIP = zeroIPv6
		}
		for _, o := range m.Options {
			if o, ok := o.(*ndp.LinkLayerAddress); ok && o.Direction == ndp.Target && len(o.Addr) == 6 {
				p.SenderHardwareAddr = o.Addr
			}
		}
	default:
		return nil, errNotNDP
	}
	if len(p.SenderHardwareAddr) != 6 {
		return nil, errNotNDP
	}
	return p, nil
}

// icmpChecksum is the Internet checksum of an ICMPv6 message with its IPv6
// pseudo-header; 0 for a message whose checksum field is right.
func icmpChecksum(src, dst netip.Addr, icmp []byte) uint16 {
	var sum uint32
	add := func(b []byte) {
		for len(b) >= 2 {
			sum += uint32(binary.BigEndian.Uint16(b))
			b = b[2:]
		}
		if len(b) == 1 {
			sum += uint32(b[0]) << 8
		}
	}
	s, d := src.As16(), dst.As16()
	add(s[:])
	add(d[:])
	sum += uint32(len(icmp)) + unix.IPPROTO_ICMPV6
	add(icmp)
	for sum>>16 != 0 {
		sum = sum&0xffff + sum>>16
	}
	return ^uint16(sum)
}

// NDPSocket is the IPv6 counterpart of ARPSocket: one per interface, shared
// by every IPv6 VIP on it. It also holds the node's memberships of the
// VIPs' solicited-node groups, so that the NIC's filter and MLD-snooping
// switches deliver the other nodes' probes to a standby too (a holder's
// kernel joins the group of an address it has itself).
type NDPSocket struct {
	conn   *packet.Conn
	groups []int // UDP sockets holding the multicast memberships
	MAC    net.HardwareAddr
	name   string
}

// OpenNDPSocket opens the socket and joins the solicited-node group of
// every address in join (the IPv6 VIPs and reference hosts).
func OpenNDPSocket(ifi *net.Interface, join []netip.Addr) (*NDPSocket, error) {
	if len(ifi.HardwareAddr) != 6 {
		return nil, fmt.Errorf("interface %s has no Ethernet address: floatip needs an Ethernet-like link", ifi.Name)
	}
	conn, err := packet.Listen(ifi, packet.Datagram, unix.ETH_P_IPV6, &packet.Config{Filter: ndpBPFFilter})
	if err != nil {
		return nil, fmt.Errorf("open IPv6 neighbour discovery socket on %s: %w", ifi.Name, privilege.Hint(err))
	}
	s := &NDPSocket{conn: conn, MAC: ifi.HardwareAddr, name: ifi.Name}
	if err := s.join(ifi, join); err != nil {
		_ = s.Close()
		return nil, err
	}
	return s, nil
}

// join makes the node a member of the solicited-node group of every address.
// A socket's memberships are bounded by net.core.optmem_max (56 bytes each:
// about 360 with an older kernel's 20 kB): when one is full (ENOMEM),
// another is opened.
func (s *NDPSocket) join(ifi *net.Interface, addrs []netip.Addr) error {
	fd := -1
	joined := map[netip.Addr]bool{}
	for _, a := range addrs {
		group, _ := solicitedNode(a)
		if joined[group] {
			continue
		}
		joined[group] = true
		mreq := &unix.IPv6Mreq{Multiaddr: group.As16(), Interface: uint32(ifi.Index)}
		var err error = unix.ENOMEM
		for tries := 0; (errors.Is(err, unix.ENOMEM) || errors.Is(err, unix.ENOBUFS)) && tries < 2; tries++ {
			if fd < 0 || tries > 0 {
				if fd, err = unix.Socket(unix.AF_INET6, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, 0); err != nil {
					return fmt.Errorf("open a socket for IPv6 multicast memberships: %w", err)
				}
				s.groups = append(s.groups, fd)
			}
			err = unix.SetsockoptIPv6Mreq(fd, unix.IPPROTO_IPV6, unix.IPV6_JOIN_GROUP, mreq)
		}
		if err != nil {
			if errors.Is(err, unix.ENODEV) || errors.Is(err, unix.EADDRNOTAVAIL) {
				err = fmt.Errorf("%w (is IPv6 disabled on %s? sysctl net.ipv6.conf.%s.disable_ipv6)", err, ifi.Name, ifi.Name)
			}
			return fmt.Errorf("join %s (solicited-node group of %s) on %s: %w", group, a, ifi.Name, err)
		}
	}
	return nil
}

func (s *NDPSocket) Close() error {
	for _, fd := range s.groups {
		_ = unix.Close(fd)
	}
	s.groups = nil
	return s.conn.Close()
}

// Send writes one IPv6 packet to the Ethernet address dst.
func (s *NDPSocket) Send(b []byte, dst net.HardwareAddr) error {
	if _, err := s.conn.WriteTo(b, &packet.Addr{HardwareAddr: dst}); err != nil {
		return fmt.Errorf("send neighbour discovery on %s: %w", s.name, err)
	}
	return nil
}

// Probe sends a DAD-style NS for target, tagged when tag is not nil, to its
// solicited-node group, or to dst when dst is a MAC other than broadcast
// (the known holder).
func (s *NDPSocket) Probe(target netip.Addr, tag *frame.Tag, dst net.HardwareAddr) error {
	b, err := ProbeNS(target, tag)
	if err != nil {
		return fmt.Errorf("build probe for %s: %w", target, err)
	}
	if dst == nil || bytes.Equal(dst, frame.BroadcastMAC) {
		_, dst = solicitedNode(target)
	}
	return s.Send(b, dst)
}

// Announce sends one unsolicited NA for vip to all-nodes.
func (s *NDPSocket) Announce(vip netip.Addr) error {
	b, err := UnsolicitedNA(s.MAC, vip)
	if err != nil {
		return fmt.Errorf("build announcement for %s: %w", vip, err)
	}
	return s.Send(b, allNodesMAC)
}

// Run reads packets and hands each valid NS or NA to deliver, translated
// (NDPFrame), until ctx ends (then it returns nil) or the socket fails for
// good. A malformed packet from the LAN is skipped, never fatal.
func (s *NDPSocket) Run(ctx context.Context, deliver func(frame.Frame)) error {
	return readPackets(ctx, s.conn, "neighbour discovery", s.name, func(b []byte, from net.Addr) {
		addr, ok := from.(*packet.Addr)
		if !ok || len(addr.HardwareAddr) != 6 {
			return
		}
		if pkt, err := NDPFrame(b, append(net.HardwareAddr(nil), addr.HardwareAddr...)); err == nil {
			deliver(frame.Frame{Packet: pkt, Received: time.Now()})
		}
	})
}
