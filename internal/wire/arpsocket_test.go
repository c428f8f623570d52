package wire

import (
	"net/netip"
	"testing"

	"floatip/internal/fiptest"
	"floatip/internal/wire/frame"
)

// TestParseARPSkipsMalformedFrames: whatever the LAN sends, the read loop
// gets a packet or a skip, never a panic.
func TestParseARPSkipsMalformedFrames(t *testing.T) {
	good, _ := frame.AnnouncePacket(fiptest.MustMAC("02:00:00:00:00:01"), netip.MustParseAddr("192.0.2.50"), false)
	b, _ := good.MarshalBinary()
	if p, ok := ParseARP(append(b, make([]byte, 18)...)); !ok || p.SenderIP != netip.MustParseAddr("192.0.2.50") {
		t.Fatalf("a padded announcement did not parse: %v %v", p, ok)
	}
	mutate := func(f func(c []byte) []byte) []byte { return f(append([]byte(nil), b...)) }
	for name, frame := range map[string][]byte{
		"empty":        {},
		"truncated":    b[:20],
		"header only":  b[:8],
		"IPv6 ptype":   mutate(func(c []byte) []byte { c[2], c[3] = 0x86, 0xdd; return c }),
		"hlen 8":       mutate(func(c []byte) []byte { c[4] = 8; return c }),
		"plen 16":      mutate(func(c []byte) []byte { c[5] = 16; return c }),
		"plen 0":       mutate(func(c []byte) []byte { c[5] = 0; return c }),
		"not Ethernet": mutate(func(c []byte) []byte { c[1] = 6; return c }),
	} {
		if _, ok := ParseARP(frame); ok {
			t.Errorf("%s: accepted", name)
		}
	}
}
