package main

import (
	"net"
	"net/netip"
	"strings"
	"testing"
)

func TestOutsideSubnets(t *testing.T) {
	ipnet := func(s string) net.Addr {
		ip, n, err := net.ParseCIDR(s)
		if err != nil {
			t.Fatal(err)
		}
		n.IP = ip
		return n
	}
	shared := []netip.Addr{netip.MustParseAddr("192.0.2.80")}
	for _, c := range []struct {
		name  string
		addrs []net.Addr
		want  string // "" for no error
	}{
		{"in the subnet", []net.Addr{ipnet("192.0.2.11/24")}, ""},
		{"in a second subnet", []net.Addr{ipnet("198.51.100.1/24"), ipnet("192.0.2.11/25")}, ""},
		{"outside", []net.Addr{ipnet("198.51.100.1/24")}, "--share 192.0.2.80 is outside the subnets of eth0 ([198.51.100.0/24])"},
		{"only host routes: not judged", []net.Addr{ipnet("192.0.2.50/32")}, ""},
		{"no address: not judged", nil, ""},
		{"IPv6 only: not judged", []net.Addr{ipnet("2001:db8::1/64")}, ""},
	} {
		err := outsideSubnets("eth0", shared, c.addrs)
		if c.want == "" && err != nil || c.want != "" && (err == nil || !strings.Contains(err.Error(), c.want)) {
			t.Errorf("%s: %v, want %q", c.name, err, c.want)
		}
	}
}
