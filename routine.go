package main

import (
	"fmt"
	"net"
	"time"
	"unsafe"

	"golang.org/x/net/bpf"
	"golang.org/x/sys/unix"
)

// Routine frames: the idle cost of the daemon is the Go runtime waking
// threads (netpoller, sysmon, futex) for every event, about the same for a
// timer as for a frame. At defaults a standby got two events per probe: its
// timer and, half a millisecond later, the holder's reply, which it only
// needs by its next tick; a holder woke for every probe of every standby,
// which its kernel answers anyway. So the interface's ARP socket carries a
// BPF filter that leaves those routine frames to a second socket, which is
// not in the netpoller (it wakes nobody) and is drained by the loop before
// anything else it does: a tick, an urgent frame, an event. Everything that
// must be acted on at once (release notices, claims, announcements,
// conflicts, holder self-checks, broadcast probes, stand-aside, a reply while
// this node holds or claims a VIP) still wakes the loop.
//
// The routine classes, for a frame sent to our MAC (PACKET_HOST):
//   - a plain standby probe: a request with sender IP 0.0.0.0 carrying a
//     floatip tag without flags (no holder, releasing or stand-aside);
//   - only while every VIP of the interface is in standby: a reply to a
//     probe (target IP 0.0.0.0): the holder's answer to our check, or a
//     reference host's.
//
// Drained frames keep the kernel's receive time (SO_TIMESTAMPNS), so the
// debounce and the peers' last-heard times are exact, and they are handled
// in arrival order with the urgent ones.

// routineFilter is the BPF program of either socket: routine says which of
// the two (the routine socket accepts the routine frames, the main socket
// everything else); standby adds replies to the routine class.
func routineFilter(standby, routine bool) []bpf.Instruction {
	keep, skip := uint32(0xffff), uint32(0) // accepted length; 0 drops
	isRoutine, notRoutine := keep, skip
	if !routine {
		isRoutine, notRoutine = skip, keep
	}
	// Offsets in the ARP payload (a datagram socket: no Ethernet header).
	const (
		offOp  = 6
		offSPA = 14
		offTHA = 18
		offTPA = 24
	)
	replyOp := uint32(2)
	if !standby {
		replyOp = 0x10000 // no 16-bit operation: replies are never routine
	}
	// Jumps count instructions; "no" lands on notRoutine (second last),
	// "yes" on isRoutine (last): both are computed from the end.
	prog := []bpf.Instruction{
		/* 0 */ bpf.LoadExtension{Num: bpf.ExtType},
		/* 1 */ bpf.JumpIf{Cond: bpf.JumpNotEqual, Val: unix.PACKET_HOST, SkipTrue: 17},
		/* 2 */ bpf.LoadAbsolute{Off: 0, Size: 4},
		/* 3 */ bpf.JumpIf{Cond: bpf.JumpNotEqual, Val: 0x00010800, SkipTrue: 15}, // Ethernet, IPv4
		/* 4 */ bpf.LoadAbsolute{Off: 4, Size: 2},
		/* 5 */ bpf.JumpIf{Cond: bpf.JumpNotEqual, Val: 0x0604, SkipTrue: 13}, // 6-byte MACs, 4-byte IPs
		/* 6 */ bpf.LoadAbsolute{Off: offOp, Size: 2},
		/* 7 */ bpf.JumpIf{Cond: bpf.JumpEqual, Val: replyOp, SkipTrue: 9},
		/* 8 */ bpf.JumpIf{Cond: bpf.JumpNotEqual, Val: 1, SkipTrue: 10},
		/* 9 */ bpf.LoadAbsolute{Off: offSPA, Size: 4}, // a probe: sender IP 0.0.0.0 ...
		/* 10 */ bpf.JumpIf{Cond: bpf.JumpNotEqual, Val: 0, SkipTrue: 8},
		/* 11 */ bpf.LoadAbsolute{Off: offTHA, Size: 4}, // ... a floatip tag ...
		/* 12 */ bpf.JumpIf{Cond: bpf.JumpNotEqual, Val: 'f'<<24 | 'i'<<16 | 'p'<<8 | tagVersion, SkipTrue: 6},
		/* 13 */ bpf.LoadAbsolute{Off: offTHA + 4, Size: 2}, // ... priority (not 0), no flags
		/* 14 */ bpf.JumpIf{Cond: bpf.JumpBitsSet, Val: 0x00ff, SkipTrue: 4},
		/* 15 */ bpf.JumpIf{Cond: bpf.JumpLessThan, Val: 0x0100, SkipTrue: 3},
		/* 16 */ bpf.Jump{Skip: 3},
		/* 17 */ bpf.LoadAbsolute{Off: offTPA, Size: 4}, // a reply to a probe
		/* 18 */ bpf.JumpIf{Cond: bpf.JumpEqual, Val: 0, SkipTrue: 1},
		/* 19 */ bpf.RetConstant{Val: notRoutine},
		/* 20 */ bpf.RetConstant{Val: isRoutine},
	}
	return prog
}

func assembleFilter(prog []bpf.Instruction) ([]bpf.RawInstruction, error) {
	raw, err := bpf.Assemble(prog)
	if err != nil {
		return nil, fmt.Errorf("assemble BPF filter: %w", err)
	}
	return raw, nil
}

// routineSocket receives the routine frames. Its file descriptor is
// non-blocking and never registered with the netpoller: a frame arriving
// wakes no thread; drain reads what has arrived.
type routineSocket struct {
	fd      int
	ifindex int
	buf     []byte
	oob     []byte
	pending *arpFrame // read past a drain's limit: the next drain's first
}

func openRoutineSocket(ifi *net.Interface, standby bool) (*routineSocket, error) {
	fd, err := unix.Socket(unix.AF_PACKET, unix.SOCK_DGRAM|unix.SOCK_NONBLOCK|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return nil, fmt.Errorf("open routine ARP socket on %s: %w", ifi.Name, privilegeHint(err))
	}
	s := &routineSocket{fd: fd, ifindex: ifi.Index, buf: make([]byte, 1500), oob: make([]byte, 64)}
	// Room for the routine frames between two drains (a holder drains at
	// least once per self-check, 1.1 s: with many standbys, hundreds);
	// beyond the default, with CAP_NET_ADMIN. A frame lost here costs only
	// a late sign of life.
	if unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_RCVBUFFORCE, routineRcvBuf) != nil {
		_ = unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_RCVBUF, routineRcvBuf)
	}
	// Protocol 0 receives nothing until the filter is in place.
	err = unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_TIMESTAMPNS, 1)
	if err == nil {
		err = s.setFilter(standby)
	}
	if err == nil {
		err = unix.Bind(fd, &unix.SockaddrLinklayer{Protocol: htons(unix.ETH_P_ARP), Ifindex: ifi.Index})
	}
	if err != nil {
		_ = unix.Close(fd)
		return nil, fmt.Errorf("set up routine ARP socket on %s: %w", ifi.Name, err)
	}
	return s, nil
}

// routineRcvBuf is the routine socket's receive buffer, in bytes.
const routineRcvBuf = 1 << 20

func htons(v uint16) uint16 { return v<<8 | v>>8 }

func (s *routineSocket) setFilter(standby bool) error {
	raw, err := assembleFilter(routineFilter(standby, true))
	if err != nil {
		return err
	}
	prog := unix.SockFprog{Len: uint16(len(raw)), Filter: (*unix.SockFilter)(unsafe.Pointer(&raw[0]))}
	if err := unix.SetsockoptSockFprog(s.fd, unix.SOL_SOCKET, unix.SO_ATTACH_FILTER, &prog); err != nil {
		return fmt.Errorf("attach BPF filter: %w", err)
	}
	return nil
}

func (s *routineSocket) Close() error { return unix.Close(s.fd) }

// drain hands handle the frames received up to limit, oldest first; a
// frame received after limit is kept for the next drain, so that frames
// from both sockets are handled in the order they arrived.
func (s *routineSocket) drain(limit time.Time, handle func(arpFrame)) {
	for {
		if s.pending == nil {
			f, ok := s.read()
			if !ok {
				return
			}
			s.pending = &f
		}
		if s.pending.received.After(limit) {
			return
		}
		f := *s.pending
		s.pending = nil
		handle(f)
	}
}

// read returns the next well-formed ARP frame; ok is false when none is
// waiting (or the socket failed: the main socket's reader reports that).
// A raw system call: it never blocks, and the runtime's syscall.Syscall
// would wake sysmon (waketimer.go).
func (s *routineSocket) read() (arpFrame, bool) {
	for {
		iov := unix.Iovec{Base: &s.buf[0]}
		iov.SetLen(len(s.buf))
		msg := unix.Msghdr{Iov: &iov, Iovlen: 1, Control: &s.oob[0]}
		msg.SetControllen(len(s.oob))
		n, _, e := unix.RawSyscall(unix.SYS_RECVMSG, uintptr(s.fd), uintptr(unsafe.Pointer(&msg)), unix.MSG_DONTWAIT)
		if e == unix.EINTR {
			continue
		}
		if e != 0 {
			return arpFrame{}, false
		}
		pkt, ok := parseARP(s.buf[:n])
		if !ok {
			continue
		}
		return arpFrame{pkt: pkt, received: receivedAt(s.oob[:msg.Controllen], time.Now())}, true
	}
}

// send writes an ARP payload to dst with a raw, non-blocking system call
// (see read); errAgain when the send buffer is full.
func (s *routineSocket) send(b []byte, dst net.HardwareAddr) error {
	sa := unix.RawSockaddrLinklayer{Family: unix.AF_PACKET, Protocol: htons(unix.ETH_P_ARP), Ifindex: int32(s.ifindex), Halen: uint8(len(dst))}
	copy(sa.Addr[:], dst)
	_, _, e := unix.RawSyscall6(unix.SYS_SENDTO, uintptr(s.fd), uintptr(unsafe.Pointer(&b[0])), uintptr(len(b)),
		0, uintptr(unsafe.Pointer(&sa)), unix.SizeofSockaddrLinklayer)
	if e != 0 {
		return e
	}
	return nil
}

// receivedAt turns the kernel's receive timestamp (wall clock) into a
// time.Time with a monotonic reading, as time.Now() would have been then.
func receivedAt(oob []byte, now time.Time) time.Time {
	msgs, err := unix.ParseSocketControlMessage(oob)
	if err != nil {
		return now
	}
	for _, m := range msgs {
		if m.Header.Level == unix.SOL_SOCKET && m.Header.Type == unix.SCM_TIMESTAMPNS && len(m.Data) >= int(unsafe.Sizeof(unix.Timespec{})) {
			ts := *(*unix.Timespec)(unsafe.Pointer(&m.Data[0]))
			age := time.Duration(now.UnixNano() - ts.Nano())
			if age < 0 {
				return now
			}
			return now.Add(-age)
		}
	}
	return now
}
