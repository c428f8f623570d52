package system

import (
	"net"
	"net/netip"
	"testing"
)

func TestLastAddr(t *testing.T) {
	for prefix, want := range map[string]string{"192.0.2.11/24": "192.0.2.255", "198.51.100.5/30": "198.51.100.7", "203.0.113.0/25": "203.0.113.127"} {
		if got := lastAddr(netip.MustParsePrefix(prefix)); got.String() != want {
			t.Errorf("lastAddr(%s) = %s, want %s", prefix, got, want)
		}
	}
}

func TestIsDefaultRoute(t *testing.T) {
	mustNet := func(s string) *net.IPNet {
		_, n, err := net.ParseCIDR(s)
		if err != nil {
			t.Fatal(err)
		}
		return n
	}
	for _, tc := range []struct {
		dst  *net.IPNet
		want bool
	}{{nil, true}, {mustNet("0.0.0.0/0"), true}, {mustNet("192.0.2.0/24"), false}, {mustNet("0.0.0.0/8"), false}} {
		if got := isDefaultRoute(tc.dst); got != tc.want {
			t.Errorf("isDefaultRoute(%v) = %v, want %v", tc.dst, got, tc.want)
		}
	}
}
