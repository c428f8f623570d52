package main

import (
	"net"
	"net/netip"
	"testing"

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
	if _, ok := prog[0].(bpf.LoadExtension); !ok {
		t.Fatalf("the filter does not start with the pkttype load: %v", prog[0])
	}
	prog[0] = bpf.LoadConstant{Dst: bpf.RegA, Val: pkttype}
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
	probe := func(tag *peerTag) []byte { return marshal(probePacket(peer, vip, tag)) }
	host, bcast := uint32(unix.PACKET_HOST), uint32(unix.PACKET_BROADCAST)
	cases := []struct {
		name             string
		pkttype          uint32
		frame            []byte
		standby, holding bool // routine while every VIP is in standby / while holding one
	}{
		{"standby probe to us", host, probe(&peerTag{priority: 100}), true, true},
		{"standby probe broadcast (suspicious)", bcast, probe(&peerTag{priority: 100}), false, false},
		{"holder self-check", bcast, probe(&peerTag{priority: 200, flags: flagHolder}), false, false},
		{"holder check to us (reconcile)", host, probe(&peerTag{priority: 200, flags: flagHolder}), false, false},
		{"release notice", host, probe(&peerTag{priority: 200, flags: flagReleasing}), false, false},
		{"stand-aside probe", host, probe(&peerTag{priority: 100, flags: flagStandAside}), false, false},
		{"plain probe (arping -D)", host, probe(nil), false, false},
		{"reply to our probe", host, marshal(arp.NewPacket(arp.OperationReply, peer, vip, own, zeroIPv4)), true, false},
		{"reply to another's probe, broadcast", bcast, marshal(arp.NewPacket(arp.OperationReply, peer, vip, own, zeroIPv4)), false, false},
		{"reply with a sender address (ARP answer)", host, marshal(arp.NewPacket(arp.OperationReply, peer, vip, own, netip.MustParseAddr("198.51.100.9"))), false, false},
		{"announcement request", bcast, marshal(announcePacket(peer, vip, false)), false, false},
		{"announcement reply to us", host, marshal(announcePacket(peer, vip, true)), false, false},
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
