package wire

import (
	"fmt"
	"net"
	"time"
	"unsafe"

	"floatip/internal/wire/frame"

	"floatip/internal/privilege"

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
// The routine classes:
//   - a plain standby probe sent to our MAC: a request with sender IP
//     0.0.0.0 carrying a floatip tag without flags (no holder, releasing or
//     stand-aside);
//   - only while every VIP of the interface is in standby: a reply to a
//     probe (target IP 0.0.0.0) sent to our MAC: the holder's answer to our
//     check, or a reference host's; and a holder's self-check (the tag's
//     flags exactly "holder", broadcast or not), a sign of life a standby
//     needs by its next probe only.
//
// Drained frames keep the kernel's receive time (SO_TIMESTAMPNS), so the
// debounce and the peers' last-heard times are exact, and they are handled
// in arrival order with the urgent ones.

// routineFilter is the BPF program of either socket: routine says which of
// the two (the routine socket accepts the routine frames, the main socket
// everything else); standby adds the standby-only classes.
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
		never  = 0x10000 // no 16-bit field has this value
	)
	replyOp, holderFlags := uint32(2), uint32(frame.FlagHolder)
	if !standby {
		replyOp, holderFlags = never, never
	}
	return labelled([]step{
		{ins: bpf.LoadAbsolute{Off: 0, Size: 4}},
		{ins: bpf.JumpIf{Cond: bpf.JumpNotEqual, Val: 0x00010800}, to: "no"}, // Ethernet, IPv4
		{ins: bpf.LoadAbsolute{Off: 4, Size: 2}},
		{ins: bpf.JumpIf{Cond: bpf.JumpNotEqual, Val: 0x0604}, to: "no"}, // 6-byte MACs, 4-byte IPs
		{ins: bpf.LoadAbsolute{Off: offOp, Size: 2}},
		{ins: bpf.JumpIf{Cond: bpf.JumpEqual, Val: replyOp}, to: "reply"},
		{ins: bpf.JumpIf{Cond: bpf.JumpNotEqual, Val: 1}, to: "no"},
		{ins: bpf.LoadAbsolute{Off: offSPA, Size: 4}}, // a probe: sender IP 0.0.0.0 ...
		{ins: bpf.JumpIf{Cond: bpf.JumpNotEqual, Val: 0}, to: "no"},
		{ins: bpf.LoadAbsolute{Off: offTHA, Size: 4}}, // ... with a floatip tag ...
		{ins: bpf.JumpIf{Cond: bpf.JumpNotEqual, Val: 'f'<<24 | 'i'<<16 | 'p'<<8 | frame.TagVersion}, to: "no"},
		{ins: bpf.LoadAbsolute{Off: offTHA + 4, Size: 2}}, // ... priority (not 0) and flags
		{ins: bpf.JumpIf{Cond: bpf.JumpLessThan, Val: 0x0100}, to: "no"},
		{ins: bpf.ALUOpConstant{Op: bpf.ALUOpAnd, Val: 0xff}},
		{ins: bpf.JumpIf{Cond: bpf.JumpEqual, Val: holderFlags}, to: "yes"}, // a holder's check: any destination
		{ins: bpf.JumpIf{Cond: bpf.JumpNotEqual, Val: 0}, to: "no"},
		{ins: bpf.Jump{}, to: "to us"},                                // a plain standby probe
		{label: "reply", ins: bpf.LoadAbsolute{Off: offTPA, Size: 4}}, // a reply to a probe
		{ins: bpf.JumpIf{Cond: bpf.JumpNotEqual, Val: 0}, to: "no"},
		{label: "to us", ins: bpf.LoadExtension{Num: bpf.ExtType}},
		{ins: bpf.JumpIf{Cond: bpf.JumpEqual, Val: unix.PACKET_HOST}, to: "yes"},
		{label: "no", ins: bpf.RetConstant{Val: notRoutine}},
		{label: "yes", ins: bpf.RetConstant{Val: isRoutine}},
	})
}

// step is one instruction of a BPF program with symbolic jumps: to names
// the label a Jump, or a JumpIf when true, goes to (forward only).
type step struct {
	label string
	ins   bpf.Instruction
	to    string
}

func labelled(steps []step) []bpf.Instruction {
	at := map[string]int{}
	for i, st := range steps {
		if st.label != "" {
			at[st.label] = i
		}
	}
	prog := make([]bpf.Instruction, len(steps))
	for i, st := range steps {
		prog[i] = st.ins
		if st.to == "" {
			continue
		}
		target, ok := at[st.to]
		if !ok || target <= i {
			panic("BPF program: no label " + st.to + " after instruction " + fmt.Sprint(i))
		}
		switch ins := st.ins.(type) {
		case bpf.JumpIf:
			ins.SkipTrue = uint8(target - i - 1)
			prog[i] = ins
		case bpf.Jump:
			ins.Skip = uint32(target - i - 1)
			prog[i] = ins
		}
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
	pending *frame.Frame // read past a drain's limit: the next drain's first
}

func openRoutineSocket(ifi *net.Interface, standby bool) (*routineSocket, error) {
	fd, err := unix.Socket(unix.AF_PACKET, unix.SOCK_DGRAM|unix.SOCK_NONBLOCK|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return nil, fmt.Errorf("open routine ARP socket on %s: %w", ifi.Name, privilege.Hint(err))
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
func (s *routineSocket) drain(limit time.Time, handle func(frame.Frame)) {
	for {
		if s.pending == nil {
			f, ok := s.read()
			if !ok {
				return
			}
			s.pending = &f
		}
		if s.pending.Received.After(limit) {
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
// would wake sysmon (system.WakeTimer).
func (s *routineSocket) read() (frame.Frame, bool) {
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
			return frame.Frame{}, false
		}
		pkt, ok := ParseARP(s.buf[:n])
		if !ok {
			continue
		}
		return frame.Frame{Packet: pkt, Received: receivedAt(s.oob[:msg.Controllen], time.Now())}, true
	}
}

// Send writes an ARP payload to dst with a raw, non-blocking system call
// (see read); errAgain when the send buffer is full.
func (s *routineSocket) Send(b []byte, dst net.HardwareAddr) error {
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
