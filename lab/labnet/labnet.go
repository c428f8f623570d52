// Package labnet is what the lab's programs (udpecho, flowcheck, tcpidle,
// arpflood) share about the network they may touch: the documentation
// ranges they are allowed to talk to, and the IP_FREEBIND bind that lets a
// server listen on a floating or shared address before its host has it.
//
// It must not know about floatip.
package labnet

import (
	"net/netip"
	"syscall"
)

// Ranges are the documentation ranges the lab uses, and the only ones its
// programs talk to besides loopback.
var Ranges = []netip.Prefix{
	netip.MustParsePrefix("192.0.2.0/24"),
	netip.MustParsePrefix("198.51.100.0/24"),
	netip.MustParsePrefix("203.0.113.0/24"),
	netip.MustParsePrefix("2001:db8::/32"),
}

// InRanges reports whether a is in one of the documentation ranges.
func InRanges(a netip.Addr) bool {
	a = a.Unmap()
	for _, p := range Ranges {
		if p.Contains(a) {
			return true
		}
	}
	return false
}

// AllowedTarget reports whether a lab client may send to a: loopback or a
// documentation range.
func AllowedTarget(a netip.Addr) bool { return a.Unmap().IsLoopback() || InRanges(a) }

// Freebind is a net.ListenConfig Control that sets IP_FREEBIND (it works on
// IPv6 sockets too).
func Freebind(_, _ string, c syscall.RawConn) error {
	var serr error
	if err := c.Control(func(fd uintptr) {
		serr = syscall.SetsockoptInt(int(fd), syscall.IPPROTO_IP, syscall.IP_FREEBIND, 1)
	}); err != nil {
		return err
	}
	return serr
}
