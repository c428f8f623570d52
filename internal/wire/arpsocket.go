package wire

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"time"
	"unsafe"

	"floatip/internal/wire/frame"

	"floatip/internal/privilege"

	"github.com/mdlayher/arp"
	"github.com/mdlayher/packet"
	"golang.org/x/sys/unix"
)

// ARPSocket is the one ARP socket of an interface, shared by every VIP on it.
// It is a datagram packet socket bound to ETH_P_ARP: the kernel builds the
// Ethernet header, so frames are identical to arping's, and it works on an
// interface with no IPv4 address (arp.Dial refuses those).
//
// Routine frames (routine.go) go to a second socket instead, which wakes
// nobody; standby says whether replies to probes count as routine.
type ARPSocket struct {
	conn    *packet.Conn
	MAC     net.HardwareAddr
	name    string
	routine *routineSocket
	standby bool
}

// OpenARPSocket is the ARP socket of a one-shot command: every frame, no
// routine socket beside it.
func OpenARPSocket(ifi *net.Interface) (*ARPSocket, error) {
	return listenARP(ifi, nil)
}

// OpenSplitARPSocket opens the interface's socket with its routine socket
// beside it (the daemon's; a one-shot command reads everything).
func OpenSplitARPSocket(ifi *net.Interface, standby bool) (*ARPSocket, error) {
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

func listenARP(ifi *net.Interface, cfg *packet.Config) (*ARPSocket, error) {
	if len(ifi.HardwareAddr) != 6 {
		return nil, fmt.Errorf("interface %s has no Ethernet address: floatip needs an Ethernet-like link", ifi.Name)
	}
	conn, err := packet.Listen(ifi, packet.Datagram, unix.ETH_P_ARP, cfg)
	if err != nil {
		return nil, fmt.Errorf("open ARP socket on %s: %w", ifi.Name, privilege.Hint(err))
	}
	return &ARPSocket{conn: conn, MAC: ifi.HardwareAddr, name: ifi.Name}, nil
}

func (s *ARPSocket) Close() error {
	if s.routine != nil {
		_ = s.routine.Close()
	}
	return s.conn.Close()
}

// DrainRoutine hands handle the routine frames received up to limit.
func (s *ARPSocket) DrainRoutine(limit time.Time, handle func(frame.Frame)) {
	if s.routine != nil {
		s.routine.drain(limit, handle)
	}
}

// SetStandby moves replies to probes into the routine class (every VIP in
// standby) or out of it. The socket whose class grows changes first, so a
// frame in between reaches both sockets (handled twice, harmless), never
// neither.
func (s *ARPSocket) SetStandby(standby bool) error {
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

// Send writes p to dst (broadcast or one MAC).
func (s *ARPSocket) Send(p *arp.Packet, dst net.HardwareAddr) error {
	b, err := p.MarshalBinary()
	if err != nil {
		return fmt.Errorf("marshal ARP: %w", err)
	}
	if s.routine != nil {
		err := s.routine.Send(b, dst)
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
func (s *ARPSocket) Run(ctx context.Context, deliver func(frame.Frame)) error {
	return readPackets(ctx, s.conn, "ARP", s.name, func(b []byte, _ net.Addr) {
		if pkt, ok := ParseARP(b); ok {
			deliver(frame.Frame{Packet: pkt, Received: time.Now()})
		}
	})
}

// readPackets reads conn and hands each packet to handle until ctx ends
// (then it returns nil) or the socket fails for good; what and ifname name
// it in the error. handle must keep neither b nor from. The reads are raw
// system calls inside the netpoller's wait (see system.WakeTimer: a
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

// ParseARP decodes one ARP payload; ok is false for anything but a
// well-formed Ethernet/IPv4 ARP packet (a malformed frame from the LAN is
// skipped, never fatal).
func ParseARP(b []byte) (*arp.Packet, bool) {
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
