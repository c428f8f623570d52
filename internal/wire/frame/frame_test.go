package frame

import (
	"encoding/hex"
	"net/netip"
	"testing"

	"floatip/internal/fiptest"
)

// The ARP payloads as iputils arping sends them (and as FIELD-NOTES.md's
// table gives them), for MAC 02:00:00:00:00:01 and 192.0.2.50:
// htype 1, ptype 0x0800, hlen 6, plen 4, op, SHA, SPA, THA, TPA.
func TestPacketsMatchArping(t *testing.T) {
	mac := fiptest.MustMAC("02:00:00:00:00:01")
	vip := netip.MustParseAddr("192.0.2.50")
	const head = "0001" + "0800" + "06" + "04"
	cases := []struct {
		name string
		pkt  func() ([]byte, error)
		want string
	}{
		{"arping -U", func() ([]byte, error) { p, _ := AnnouncePacket(mac, vip, false); return p.MarshalBinary() },
			head + "0001" + "020000000001" + "c0000232" + "ffffffffffff" + "c0000232"},
		{"arping -A", func() ([]byte, error) { p, _ := AnnouncePacket(mac, vip, true); return p.MarshalBinary() },
			head + "0002" + "020000000001" + "c0000232" + "020000000001" + "c0000232"},
		{"RFC 5227 probe", func() ([]byte, error) { p, _ := ProbePacket(mac, vip, nil); return p.MarshalBinary() },
			head + "0001" + "020000000001" + "00000000" + "000000000000" + "c0000232"},
		{"floatip tagged probe", func() ([]byte, error) {
			p, _ := ProbePacket(mac, vip, &Tag{Priority: 200, Flags: FlagHolder})
			return p.MarshalBinary()
		}, head + "0001" + "020000000001" + "00000000" + "666970" + "01" + "c8" + "01" + "c0000232"},
	}
	for _, tc := range cases {
		b, err := tc.pkt()
		if err != nil {
			t.Fatal(err)
		}
		if got := hex.EncodeToString(b); got != tc.want {
			t.Errorf("%s:\n got %s\nwant %s", tc.name, got, tc.want)
		}
		if len(b) != 28 {
			t.Errorf("%s: %d bytes, want 28 (42 with the Ethernet header)", tc.name, len(b))
		}
	}
}

func TestAnnouncementForms(t *testing.T) {
	mac := fiptest.MustMAC("02:00:00:00:00:01")
	vip := netip.MustParseAddr("192.0.2.50")
	for form, ops := range map[AnnounceForm][]uint16{FormRequest: {1}, FormReply: {2}, FormBoth: {1, 2}} {
		pkts, err := AnnouncePackets(mac, vip, form)
		if err != nil {
			t.Fatal(err)
		}
		if len(pkts) != len(ops) {
			t.Fatalf("%s: %d packets, want %d", form, len(pkts), len(ops))
		}
		for i, p := range pkts {
			if uint16(p.Operation) != ops[i] || p.SenderIP != vip || p.TargetIP != vip {
				t.Errorf("%s packet %d: %+v", form, i, p)
			}
		}
	}
	if _, err := AnnouncePackets(mac, vip, "loud"); err == nil {
		t.Error("unknown form accepted")
	}
}

func TestPeerTag(t *testing.T) {
	tag := Tag{Priority: 7, Flags: FlagReleasing}
	got, ok := ParseTag(tag.HardwareAddr())
	if !ok || got != tag {
		t.Errorf("round trip: %+v %v", got, ok)
	}
	for _, tha := range []string{"00:00:00:00:00:00", "ff:ff:ff:ff:ff:ff", "66:69:70:02:07:00", "66:69:70:01:00:00"} {
		if _, ok := ParseTag(fiptest.MustMAC(tha)); ok {
			t.Errorf("THA %s taken for a floatip tag", tha)
		}
	}
}
