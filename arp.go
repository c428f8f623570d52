package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"sync"
	"time"
	"unsafe"

	"floatip/internal/privilege"

	"github.com/mdlayher/arp"
	"github.com/mdlayher/packet"
	"golang.org/x/sys/unix"
)

// announceForm says which unsolicited ARP packets a claim sends.
type announceForm string

const (
	formRequest announceForm = "request" // as `arping -U`: op request, THA ff:ff:ff:ff:ff:ff
	formReply   announceForm = "reply"   // as `arping -A`: op reply, THA = own MAC
	formBoth    announceForm = "both"    // a request and a reply each round
)

var (
	broadcastMAC = net.HardwareAddr{0xff, 0xff, 0xff, 0xff, 0xff, 0xff}
	zeroMAC      = net.HardwareAddr{0, 0, 0, 0, 0, 0}
	zeroIPv4     = netip.IPv4Unspecified()
)

// The in-band floatip tag. RFC 5227 says a probe's target hardware address
// is ignored by receivers and SHOULD be zero; floatip puts its priority
// there so that standbys and holders learn each other's rank without a
// protocol of their own. Layout of the six THA bytes:
//
//	'f' 'i' 'p' version priority flags
//
// Every other device sees an ordinary, valid ARP probe.
const (
	tagVersion     = 1
	flagHolder     = 0x01 // the sender holds the VIP (an active node's self-check)
	flagReleasing  = 0x02 // the sender is giving the VIP up right now
	flagStandAside = 0x04 // the sender will not take the VIP (its health check fails)
)

// peerTag is what a floatip probe says about its sender.
type peerTag struct {
	priority uint8
	flags    uint8
}

func (t peerTag) hardwareAddr() net.HardwareAddr {
	return net.HardwareAddr{'f', 'i', 'p', tagVersion, t.priority, t.flags}
}

// parsePeerTag reads a floatip tag from a probe's THA; ok is false for an
// ordinary probe (arping -D, a DHCP client, any RFC 5227 host).
func parsePeerTag(tha net.HardwareAddr) (peerTag, bool) {
	if len(tha) != 6 || tha[0] != 'f' || tha[1] != 'i' || tha[2] != 'p' || tha[3] != tagVersion || tha[4] == 0 {
		return peerTag{}, false
	}
	return peerTag{priority: tha[4], flags: tha[5]}, true
}

// probePacket builds an RFC 5227 probe for vip: a request with sender IP
// 0.0.0.0, so that no neighbour's cache learns anything from it. tag may be
// nil for a plain probe (THA zero, as the RFC recommends).
func probePacket(mac net.HardwareAddr, vip netip.Addr, tag *peerTag) (*arp.Packet, error) {
	tha := zeroMAC
	if tag != nil {
		tha = tag.hardwareAddr()
	}
	return arp.NewPacket(arp.OperationRequest, mac, zeroIPv4, tha, vip)
}

// announcePacket builds one unsolicited ARP for vip, byte for byte as iputils
// arping sends it: `-U` is a request whose THA is broadcast, `-A` a reply
// whose THA is the sender's own MAC; sender IP = target IP = vip.
func announcePacket(mac net.HardwareAddr, vip netip.Addr, reply bool) (*arp.Packet, error) {
	if reply {
		return arp.NewPacket(arp.OperationReply, mac, vip, mac, vip)
	}
	return arp.NewPacket(arp.OperationRequest, mac, vip, broadcastMAC, vip)
}

// announcePackets returns the packets of one announcement round in form.
func announcePackets(mac net.HardwareAddr, vip netip.Addr, form announceForm) ([]*arp.Packet, error) {
	var replies []bool
	switch form {
	case formRequest:
		replies = []bool{false}
	case formReply:
		replies = []bool{true}
	case formBoth:
		replies = []bool{false, true}
	default:
		return nil, fmt.Errorf("unknown announcement form %q", form)
	}
	pkts := make([]*arp.Packet, 0, len(replies))
	for _, reply := range replies {
		p, err := announcePacket(mac, vip, reply)
		if err != nil {
			return nil, err
		}
		pkts = append(pkts, p)
	}
	return pkts, nil
}

// arpFrame is one ARP packet received on the interface.
type arpFrame struct {
	pkt      *arp.Packet
	received time.Time
}

// fromOther reports whether the frame was sent by a MAC other than ours.
func (f arpFrame) fromOther(own net.HardwareAddr) bool {
	return !bytes.Equal(f.pkt.SenderHardwareAddr, own)
}

// arpSocket is the one ARP socket of an interface, shared by every VIP on it.
// It is a datagram packet socket bound to ETH_P_ARP: the kernel builds the
// Ethernet header, so frames are identical to arping's, and it works on an
// interface with no IPv4 address (arp.Dial refuses those).
//
// Routine frames (routine.go) go to a second socket instead, which wakes
// nobody; standby says whether replies to probes count as routine.
type arpSocket struct {
	conn    *packet.Conn
	mac     net.HardwareAddr
	name    string
	routine *routineSocket
	standby bool
}

func openARPSocket(ifi *net.Interface) (*arpSocket, error) {
	return listenARP(ifi, nil)
}

// openSplitARPSocket opens the interface's socket with its routine socket
// beside it (the daemon's; a one-shot command reads everything).
func openSplitARPSocket(ifi *net.Interface, standby bool) (*arpSocket, error) {
	filter, err := assembleFilter(routineFilter(standby, false))
	if err != nil {
		return nil, err
	}
	routine, err := openRoutineSocket(ifi, standby)
	if err != nil {
		return nil, err
	}
	s, err := listenARP(ifi, &packet.Config{Filter: filter})
	if err != nil {
		_ = routine.Close()
		return nil, err
	}
	s.routine, s.standby = routine, standby
	return s, nil
}

func listenARP(ifi *net.Interface, cfg *packet.Config) (*arpSocket, error) {
	if len(ifi.HardwareAddr) != 6 {
		return nil, fmt.Errorf("interface %s has no Ethernet address: floatip needs an Ethernet-like link", ifi.Name)
	}
	conn, err := packet.Listen(ifi, packet.Datagram, unix.ETH_P_ARP, cfg)
	if err != nil {
		return nil, fmt.Errorf("open ARP socket on %s: %w", ifi.Name, privilege.Hint(err))
	}
	return &arpSocket{conn: conn, mac: ifi.HardwareAddr, name: ifi.Name}, nil
}

func (s *arpSocket) Close() error {
	if s.routine != nil {
		_ = s.routine.Close()
	}
	return s.conn.Close()
}

// drainRoutine hands handle the routine frames received up to limit.
func (s *arpSocket) drainRoutine(limit time.Time, handle func(arpFrame)) {
	if s.routine != nil {
		s.routine.drain(limit, handle)
	}
}

// setStandby moves replies to probes into the routine class (every VIP in
// standby) or out of it. The socket whose class grows changes first, so a
// frame in between reaches both sockets (handled twice, harmless), never
// neither.
func (s *arpSocket) setStandby(standby bool) error {
	if s.routine == nil || standby == s.standby {
		return nil
	}
	mainFilter, err := assembleFilter(routineFilter(standby, false))
	if err != nil {
		return err
	}
	setMain := func() error { return s.conn.SetBPF(mainFilter) }
	setRoutine := func() error { return s.routine.setFilter(standby) }
	steps := []func() error{setMain, setRoutine}
	if standby {
		steps = []func() error{setRoutine, setMain}
	}
	for _, step := range steps {
		if err := step(); err != nil {
			return fmt.Errorf("set ARP filters on %s: %w", s.name, err)
		}
	}
	s.standby = standby
	return nil
}

// send writes p to dst (broadcast or one MAC).
func (s *arpSocket) send(p *arp.Packet, dst net.HardwareAddr) error {
	b, err := p.MarshalBinary()
	if err != nil {
		return fmt.Errorf("marshal ARP: %w", err)
	}
	if s.routine != nil {
		err := s.routine.send(b, dst)
		if err == nil {
			return nil
		}
		if !errors.Is(err, unix.EAGAIN) && !errors.Is(err, unix.EINTR) {
			return fmt.Errorf("send ARP on %s: %w", s.name, err)
		}
		// The send buffer is full: wait for room through the netpoller.
	}
	if _, err := s.conn.WriteTo(b, &packet.Addr{HardwareAddr: dst}); err != nil {
		return fmt.Errorf("send ARP on %s: %w", s.name, err)
	}
	return nil
}

// Run reads frames and hands each well-formed ARP packet to deliver until
// ctx ends (then it returns nil) or the socket fails for good. A malformed
// frame from the LAN is skipped, never fatal.
func (s *arpSocket) Run(ctx context.Context, deliver func(arpFrame)) error {
	return readPackets(ctx, s.conn, "ARP", s.name, func(b []byte, _ net.Addr) {
		if pkt, ok := parseARP(b); ok {
			deliver(arpFrame{pkt: pkt, received: time.Now()})
		}
	})
}

// readPackets reads conn and hands each packet to handle until ctx ends
// (then it returns nil) or the socket fails for good; what and ifname name
// it in the error. handle must keep neither b nor from. The reads are raw
// system calls inside the netpoller's wait (see waketimer.go: a
// syscall.Syscall wakes sysmon; these never block).
func readPackets(ctx context.Context, conn *packet.Conn, what, ifname string, handle func(b []byte, from net.Addr)) error {
	rc, err := conn.SyscallConn()
	if err != nil {
		return fmt.Errorf("read %s on %s: %w", what, ifname, err)
	}
	stop := context.AfterFunc(ctx, func() {
		// Close on a socket being read returns "use of closed file"; a past
		// read deadline interrupts the read cleanly instead.
		_ = conn.SetReadDeadline(time.Unix(1, 0))
	})
	defer stop()
	buf := make([]byte, 1500)
	var (
		sa    unix.RawSockaddrLinklayer
		n     int
		errno unix.Errno
	)
	recv := func(fd uintptr) bool {
		for {
			salen := uint32(unix.SizeofSockaddrLinklayer)
			r, _, e := unix.RawSyscall6(unix.SYS_RECVFROM, fd, uintptr(unsafe.Pointer(&buf[0])), uintptr(len(buf)),
				0, uintptr(unsafe.Pointer(&sa)), uintptr(unsafe.Pointer(&salen)))
			switch e {
			case unix.EINTR:
				continue
			case unix.EAGAIN:
				return false // wait for the next frame
			}
			n, errno = int(r), e
			return true
		}
	}
	for {
		err := rc.Read(recv)
		if ctx.Err() != nil {
			return nil
		}
		if err != nil {
			if errors.Is(err, os.ErrDeadlineExceeded) {
				continue
			}
			return fmt.Errorf("read %s on %s: %w", what, ifname, err)
		}
		if errno != 0 {
			return fmt.Errorf("read %s on %s: %w", what, ifname, errno)
		}
		handle(buf[:n], &packet.Addr{HardwareAddr: net.HardwareAddr(sa.Addr[:min(int(sa.Halen), len(sa.Addr))])})
	}
}

// parseARP decodes one ARP payload; ok is false for anything but a
// well-formed Ethernet/IPv4 ARP packet (a malformed frame from the LAN is
// skipped, never fatal).
func parseARP(b []byte) (*arp.Packet, bool) {
	pkt := new(arp.Packet)
	if err := pkt.UnmarshalBinary(b); err != nil {
		return nil, false // arp.ErrInvalidIP, io.ErrUnexpectedEOF
	}
	return pkt, isEthernetIPv4ARP(pkt)
}

func isEthernetIPv4ARP(p *arp.Packet) bool {
	return p.HardwareType == 1 && p.ProtocolType == unix.ETH_P_IP &&
		p.HardwareAddrLength == 6 && p.IPLength == 4 &&
		p.SenderIP.Is4() && p.TargetIP.Is4()
}

// arpPort is the sending side of the interface's ARP socket as the VIP
// machines see it. The socket underneath is replaced when the link comes
// back after a flap or is recreated; while there is none, sends fail with
// errLinkDown and the machines hold still.
type arpPort struct {
	mu   sync.Mutex
	sock *arpSocket
	nd   *ndpSocket // IPv6 VIPs' neighbour discovery (ndp.go); nil without IPv6 VIPs
}

var errLinkDown = errors.New("link is down")

func (p *arpPort) set(s *arpSocket) {
	p.mu.Lock()
	p.sock = s
	p.mu.Unlock()
}

func (p *arpPort) current() *arpSocket {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.sock
}

func (p *arpPort) setND(s *ndpSocket) {
	p.mu.Lock()
	p.nd = s
	p.mu.Unlock()
}

func (p *arpPort) currentND() *ndpSocket {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.nd
}

// mac is the interface's MAC, or nil while the link is down.
func (p *arpPort) mac() net.HardwareAddr {
	if s := p.current(); s != nil {
		return s.mac
	}
	return nil
}

// probe sends an RFC 5227 probe for vip carrying tag, to dst (broadcast,
// or the known holder's MAC); for an IPv6 VIP, a DAD-style NS (ndp.go).
func (p *arpPort) probe(vip netip.Addr, tag peerTag, dst net.HardwareAddr) error {
	if vip.Is6() {
		nd := p.currentND()
		if nd == nil {
			return errLinkDown
		}
		return nd.probe(vip, &tag, dst)
	}
	s := p.current()
	if s == nil {
		return errLinkDown
	}
	pkt, err := probePacket(s.mac, vip, &tag)
	if err != nil {
		return fmt.Errorf("build probe for %s: %w", vip, err)
	}
	return s.send(pkt, dst)
}

// probeAddress sends a plain RFC 5227 probe (no tag) for ip, broadcast: it
// asks a reference host whether it is there.
func (p *arpPort) probeAddress(ip netip.Addr) error {
	if ip.Is6() {
		nd := p.currentND()
		if nd == nil {
			return errLinkDown
		}
		return nd.probe(ip, nil, broadcastMAC)
	}
	s := p.current()
	if s == nil {
		return errLinkDown
	}
	pkt, err := probePacket(s.mac, ip, nil)
	if err != nil {
		return fmt.Errorf("build probe for %s: %w", ip, err)
	}
	return s.send(pkt, broadcastMAC)
}

// announce sends one round of unsolicited ARP for vip; for an IPv6 VIP,
// one unsolicited NA (form is ARP's: an NA has one form only).
func (p *arpPort) announce(vip netip.Addr, form announceForm) error {
	if vip.Is6() {
		nd := p.currentND()
		if nd == nil {
			return errLinkDown
		}
		return nd.announce(vip)
	}
	s := p.current()
	if s == nil {
		return errLinkDown
	}
	pkts, err := announcePackets(s.mac, vip, form)
	if err != nil {
		return err
	}
	for _, pkt := range pkts {
		if err := s.send(pkt, broadcastMAC); err != nil {
			return err
		}
	}
	return nil
}
