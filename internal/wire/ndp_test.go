package wire

import (
	"bytes"
	"encoding/hex"
	"math/rand/v2"
	"net"
	"net/netip"
	"testing"

	"floatip/internal/wire/frame"

	"github.com/mdlayher/arp"
	"github.com/mdlayher/ndp"
	"golang.org/x/net/bpf"
)

var (
	v6VIP  = netip.MustParseAddr("2001:db8::50")
	macA   = net.HardwareAddr{2, 0, 0, 0, 0, 1}
	macB   = net.HardwareAddr{2, 0, 0, 0, 0, 2}
	tagged = frame.Tag{Priority: 200, Flags: frame.FlagHolder}
)

func TestProbeNSWire(t *testing.T) {
	b, err := ProbeNS(v6VIP, &tagged)
	if err != nil {
		t.Fatal(err)
	}
	// IPv6 header: version 6, payload 32 (NS 24 + tag option 8), ICMPv6,
	// hop limit 255, from ::, to ff02::1:ff00:50.
	want := "6000000000203aff" +
		"00000000000000000000000000000000" +
		"ff0200000000000000000001ff000050"
	if got := hex.EncodeToString(b[:40]); got != want {
		t.Errorf("IPv6 header\n got %s\nwant %s", got, want)
	}
	icmp := b[40:]
	if icmp[0] != 135 || icmp[1] != 0 {
		t.Errorf("ICMPv6 type/code %d/%d, want 135/0", icmp[0], icmp[1])
	}
	if got := hex.EncodeToString(icmp[8:24]); got != "20010db8000000000000000000000050" {
		t.Errorf("target %s", got)
	}
	// The tag option: type 253, length 1 (8 bytes), 'f' 'i' 'p' 1 200 1.
	if got := hex.EncodeToString(icmp[24:]); got != "fd01666970"+"01c801" {
		t.Errorf("tag option %s", got)
	}
	if icmpChecksum(zeroIPv6, netip.MustParseAddr("ff02::1:ff00:50"), icmp) != 0 {
		t.Error("bad ICMPv6 checksum")
	}
	// A plain probe (reference hosts, floatip probe) has no option at all.
	plain, err := ProbeNS(v6VIP, nil)
	if err != nil {
		t.Fatal(err)
	}
	if len(plain) != 40+24 {
		t.Errorf("plain probe is %d bytes, want 64", len(plain))
	}
}

func TestNDPFrameTranslation(t *testing.T) {
	probe, _ := ProbeNS(v6VIP, &tagged)
	plain, _ := ProbeNS(v6VIP, nil)
	na, _ := UnsolicitedNA(macB, v6VIP)
	solicited := mustNDP(t, &ndp.NeighborAdvertisement{Solicited: true, Override: true, TargetAddress: v6VIP,
		Options: []ndp.Option{&ndp.LinkLayerAddress{Direction: ndp.Target, Addr: macB}}},
		v6VIP, netip.MustParseAddr("2001:db8::99"))
	nudFromVIP := mustNDP(t, &ndp.NeighborSolicitation{TargetAddress: netip.MustParseAddr("2001:db8::1"),
		Options: []ndp.Option{&ndp.LinkLayerAddress{Direction: ndp.Source, Addr: macB}}},
		v6VIP, netip.MustParseAddr("ff02::1:ff00:1"))
	for _, tc := range []struct {
		name     string
		b        []byte
		op       arp.Operation
		sha      net.HardwareAddr
		spa, tpa netip.Addr
		tag      bool
	}{
		{"tagged probe", probe, arp.OperationRequest, macA, zeroIPv6, v6VIP, true},
		{"plain probe", plain, arp.OperationRequest, macA, zeroIPv6, v6VIP, false},
		{"unsolicited NA: an announcement", na, arp.OperationReply, macB, v6VIP, v6VIP, false},
		{"solicited NA: an answer", solicited, arp.OperationReply, macB, v6VIP, zeroIPv6, false},
		{"NS from the VIP: holder evidence", nudFromVIP, arp.OperationRequest, macB, v6VIP, netip.MustParseAddr("2001:db8::1"), false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p, err := NDPFrame(tc.b, macA)
			if err != nil {
				t.Fatal(err)
			}
			if p.Operation != tc.op || !bytes.Equal(p.SenderHardwareAddr, tc.sha) || p.SenderIP != tc.spa || p.TargetIP != tc.tpa {
				t.Errorf("got op %v sha %s spa %s tpa %s", p.Operation, p.SenderHardwareAddr, p.SenderIP, p.TargetIP)
			}
			tag, ok := frame.ParseTag(p.TargetHardwareAddr)
			if ok != tc.tag || (ok && tag != tagged) {
				t.Errorf("tag %v %v", tag, ok)
			}
			f := frame.Frame{Packet: p}
			if tc.name == "unsolicited NA: an announcement" && (!frame.HolderEvidence(f, v6VIP, macA) || !frame.IsGratuitous(f)) {
				t.Error("an NA for the VIP must be holder evidence and an announcement")
			}
		})
	}
}

func mustNDP(t *testing.T, m ndp.Message, src, dst netip.Addr) []byte {
	t.Helper()
	b, err := ndpPacket(m, src, dst)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// TestNDPFrameRejects: what RFC 4861 §7.1 says to drop is dropped.
func TestNDPFrameRejects(t *testing.T) {
	good, _ := ProbeNS(v6VIP, &tagged)
	mod := func(f func(b []byte)) []byte {
		b := append([]byte(nil), good...)
		f(b)
		return b
	}
	for name, b := range map[string][]byte{
		"hop limit 254": mod(func(b []byte) { b[7] = 254 }),
		"bad checksum":  mod(func(b []byte) { b[42] ^= 1 }),
		"code 1":        mod(func(b []byte) { b[41] = 1 }),
		"truncated":     good[:50],
		"length beyond": mod(func(b []byte) { b[5] = 200 }),
		"NS from :: to unicast": mustNDP(t, &ndp.NeighborSolicitation{TargetAddress: v6VIP},
			zeroIPv6, v6VIP),
		"router advertisement": mustNDP(t, &ndp.RouterAdvertisement{}, netip.MustParseAddr("fe80::1"), allNodes),
	} {
		if _, err := NDPFrame(b, macA); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
}

// TestNDPFrameNoPanic: random and mangled packets never panic or hang the
// reader (the socket must survive anything from the LAN).
func TestNDPFrameNoPanic(t *testing.T) {
	good, _ := ProbeNS(v6VIP, &tagged)
	r := rand.New(rand.NewPCG(1, 2))
	for i := range 20000 {
		b := append([]byte(nil), good...)
		if i%2 == 0 {
			b = make([]byte, r.IntN(120))
			for j := range b {
				b[j] = byte(r.Uint32())
			}
			if len(b) > 41 {
				b[0], b[6], b[7], b[40] = 0x60, 58, 255, byte(135+r.IntN(2))
			}
		} else {
			for range 1 + r.IntN(4) {
				b[40+r.IntN(len(b)-40)] = byte(r.Uint32())
			}
			b = b[:40+r.IntN(len(b)-39)]
		}
		_, _ = NDPFrame(b, macA)
	}
}

func TestNDPBPFFilter(t *testing.T) {
	vm, err := bpf.NewVM(mustDisassemble(t, ndpBPFFilter))
	if err != nil {
		t.Fatal(err)
	}
	probe, _ := ProbeNS(v6VIP, nil)
	na, _ := UnsolicitedNA(macB, v6VIP)
	ra := mustNDP(t, &ndp.RouterAdvertisement{}, netip.MustParseAddr("fe80::1"), allNodes)
	low := append([]byte(nil), na...)
	low[7] = 64
	for name, tc := range map[string]struct {
		b    []byte
		pass bool
	}{
		"NS": {probe, true}, "NA": {na, true}, "RA": {ra, false}, "hop limit 64": {low, false},
		"UDP": {ipv6Packet(v6VIP, allNodes, make([]byte, 8))[:48], false}, "short": {probe[:20], false},
	} {
		b := tc.b
		if name == "UDP" {
			b = append([]byte(nil), b...)
			b[6] = 17
		}
		n, err := vm.Run(b)
		if err != nil {
			t.Fatal(err)
		}
		if (n > 0) != tc.pass {
			t.Errorf("%s: filter returned %d, want pass=%v", name, n, tc.pass)
		}
	}
}

func mustDisassemble(t *testing.T, raw []bpf.RawInstruction) []bpf.Instruction {
	t.Helper()
	prog, ok := bpf.Disassemble(raw)
	if !ok {
		t.Fatal("cannot disassemble the filter")
	}
	return prog
}

func TestSolicitedNode(t *testing.T) {
	g, mac := solicitedNode(netip.MustParseAddr("2001:db8::12:3456"))
	if g != netip.MustParseAddr("ff02::1:ff12:3456") || mac.String() != "33:33:ff:12:34:56" {
		t.Errorf("got %s %s", g, mac)
	}
}
