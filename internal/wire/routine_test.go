package wire

import (
	"net"
	"net/netip"
	"testing"
	"time"

	"floatip/internal/wire/frame"

	"github.com/mdlayher/arp"
	"golang.org/x/net/bpf"
	"golang.org/x/sys/unix"
)

// runFilter runs one of the two filters on an ARP payload received as
// pkttype; the pkttype load (an extension the userspace VM lacks) is
// replaced by the constant.
func runFilter(t *testing.T, standby, routine bool, pkttype uint32, b []byte) bool {
	t.Helper()
	prog := routineFilter(standby, routine)
	for i, ins := range prog {
		if ext, ok := ins.(bpf.LoadExtension); ok && ext.Num == bpf.ExtType {
			prog[i] = bpf.LoadConstant{Dst: bpf.RegA, Val: pkttype}
		}
	}
	vm, err := bpf.NewVM(prog)
	if err != nil {
		t.Fatal(err)
	}
	n, err := vm.Run(b)
	if err != nil {
		t.Fatal(err)
	}
	return n > 0
}

func TestRoutineFilter(t *testing.T) {
	own := net.HardwareAddr{2, 0, 0, 0, 0, 2}
	peer := net.HardwareAddr{2, 0, 0, 0, 0, 1}
	vip := netip.MustParseAddr("198.51.100.1")
	marshal := func(p *arp.Packet, err error) []byte {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
		b, err := p.MarshalBinary()
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	probe := func(tag *frame.Tag) []byte { return marshal(frame.ProbePacket(peer, vip, tag)) }
	host, bcast := uint32(unix.PACKET_HOST), uint32(unix.PACKET_BROADCAST)
	cases := []struct {
		name             string
		pkttype          uint32
		frame            []byte
		standby, holding bool // routine while every VIP is in standby / while holding one
	}{
		{"standby probe to us", host, probe(&frame.Tag{Priority: 100}), true, true},
		{"standby probe broadcast (suspicious)", bcast, probe(&frame.Tag{Priority: 100}), false, false},
		{"holder self-check", bcast, probe(&frame.Tag{Priority: 200, Flags: frame.FlagHolder}), true, false},
		{"holder check to us (reconcile)", host, probe(&frame.Tag{Priority: 200, Flags: frame.FlagHolder}), true, false},
		{"release notice", host, probe(&frame.Tag{Priority: 200, Flags: frame.FlagReleasing}), false, false},
		{"release notice broadcast", bcast, probe(&frame.Tag{Priority: 200, Flags: frame.FlagReleasing}), false, false},
		{"holder releasing", bcast, probe(&frame.Tag{Priority: 200, Flags: frame.FlagHolder | frame.FlagReleasing}), false, false},
		{"holder standing aside", bcast, probe(&frame.Tag{Priority: 200, Flags: frame.FlagHolder | frame.FlagStandAside}), false, false},
		{"tag with priority 0", host, probe(&frame.Tag{Priority: 0}), false, false},
		{"stand-aside probe", host, probe(&frame.Tag{Priority: 100, Flags: frame.FlagStandAside}), false, false},
		{"plain probe (arping -D)", host, probe(nil), false, false},
		{"reply to our probe", host, marshal(arp.NewPacket(arp.OperationReply, peer, vip, own, frame.ZeroIPv4)), true, false},
		{"reply to another's probe, broadcast", bcast, marshal(arp.NewPacket(arp.OperationReply, peer, vip, own, frame.ZeroIPv4)), false, false},
		{"reply with a sender address (ARP answer)", host, marshal(arp.NewPacket(arp.OperationReply, peer, vip, own, netip.MustParseAddr("198.51.100.9"))), false, false},
		{"announcement request", bcast, marshal(frame.AnnouncePacket(peer, vip, false)), false, false},
		{"announcement reply to us", host, marshal(frame.AnnouncePacket(peer, vip, true)), false, false},
		{"short frame", host, []byte{0, 1, 8, 0, 6, 4, 0, 2}, false, false},
	}
	for _, c := range cases {
		for _, standby := range []bool{true, false} {
			want := c.holding
			if standby {
				want = c.standby
			}
			gotRoutine := runFilter(t, standby, true, c.pkttype, c.frame)
			gotMain := runFilter(t, standby, false, c.pkttype, c.frame)
			if gotRoutine != want {
				t.Errorf("%s (standby %v): routine socket accepts: %v, want %v", c.name, standby, gotRoutine, want)
			}
			if len(c.frame) >= 28 && gotMain == gotRoutine {
				t.Errorf("%s (standby %v): main socket accepts %v too: each frame must go to exactly one socket", c.name, standby, gotMain)
			}
		}
	}
}

// TestRoutineDrain: frames come out oldest first, stamped with their receive
// time, and a drain stops at its limit, keeping the later frames for the
// next. A datagram socket pair stands in for the packet socket.
func TestRoutineDrain(t *testing.T) {
	fds, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_DGRAM|unix.SOCK_NONBLOCK|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Close(fds[1])
	if err := unix.SetsockoptInt(fds[0], unix.SOL_SOCKET, unix.SO_TIMESTAMPNS, 1); err != nil {
		t.Fatal(err)
	}
	s := &routineSocket{fd: fds[0], buf: make([]byte, 1500), oob: make([]byte, 64)}
	defer s.Close()
	mac := net.HardwareAddr{2, 0, 0, 0, 0, 1}
	var sent []time.Time
	for i := 1; i <= 3; i++ {
		p, err := frame.ProbePacket(mac, netip.AddrFrom4([4]byte{198, 51, 100, byte(i)}), &frame.Tag{Priority: 100})
		if err != nil {
			t.Fatal(err)
		}
		b, _ := p.MarshalBinary()
		sent = append(sent, time.Now())
		if _, err := unix.Write(fds[1], b); err != nil {
			t.Fatal(err)
		}
		if i == 1 {
			if _, err := unix.Write(fds[1], []byte{1, 2, 3}); err != nil { // malformed: skipped
				t.Fatal(err)
			}
		}
		time.Sleep(20 * time.Millisecond)
	}
	var got []frame.Frame
	collect := func(f frame.Frame) { got = append(got, f) }
	s.drain(sent[1].Add(-5*time.Millisecond), collect)
	if len(got) != 1 || got[0].Packet.TargetIP != netip.MustParseAddr("198.51.100.1") {
		t.Fatalf("first drain (limit before the second frame): got %d frames, want the first only", len(got))
	}
	if d := got[0].Received.Sub(sent[0]); d < -time.Millisecond || d > 10*time.Millisecond {
		t.Errorf("first frame stamped %v after it was sent, want its receive time (0 to 10ms)", d)
	}
	s.drain(time.Now(), collect)
	if len(got) != 3 {
		t.Fatalf("second drain: %d frames in all, want 3", len(got))
	}
	for i, f := range got {
		if want := netip.AddrFrom4([4]byte{198, 51, 100, byte(i + 1)}); f.Packet.TargetIP != want {
			t.Errorf("frame %d is for %s, want %s (arrival order)", i, f.Packet.TargetIP, want)
		}
		if i > 0 && !f.Received.After(got[i-1].Received) {
			t.Errorf("frame %d stamped %v, not after frame %d's %v", i, f.Received, i-1, got[i-1].Received)
		}
	}
	s.drain(time.Now(), collect)
	if len(got) != 3 {
		t.Errorf("an empty socket gave %d more frames", len(got)-3)
	}
}
