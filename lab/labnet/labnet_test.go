package labnet

import (
	"net/netip"
	"testing"
)

func TestAllowedTarget(t *testing.T) {
	for _, c := range []struct {
		addr string
		want bool
	}{
		{"192.0.2.80", true}, {"198.51.100.7", true}, {"203.0.113.1", true}, {"2001:db8::50", true},
		{"127.0.0.1", true}, {"::1", true}, {"::ffff:192.0.2.1", true},
		{"2001:db9::1", false}, {"fe80::1", false}, {"192.168.1.1", false}, {"10.0.0.1", false}, {"8.8.8.8", false}, {"2001:4860::8888", false}, {"192.0.3.1", false},
	} {
		if got := AllowedTarget(netip.MustParseAddr(c.addr)); got != c.want {
			t.Errorf("AllowedTarget(%s) = %v, want %v", c.addr, got, c.want)
		}
	}
	if InRanges(netip.MustParseAddr("127.0.0.1")) {
		t.Error("loopback is not a documentation range")
	}
}
