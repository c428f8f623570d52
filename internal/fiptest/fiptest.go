// Package fiptest holds what floatip's tests share: the lab harness (Lab:
// network namespaces from lab/lab.sh, the programs built once per test
// process, the daemons and the client inside them), the lab's names and
// addresses, and small constructors that panic on bad input (a test's
// literal, never an operator's). The lab tests (lab/integration) and the
// chaos run use it; the bench and the demo drive the same lab/lab.sh.
//
// It must not import any other floatip package, so that every package's
// own tests can import it.
package fiptest

import (
	"fmt"
	"math/rand/v2"
	"net"
	"net/netip"

	"github.com/mdlayher/arp"
)

// MustMAC parses a MAC address literal.
func MustMAC(s string) net.HardwareAddr {
	m, err := net.ParseMAC(s)
	if err != nil {
		panic(err)
	}
	return m
}

// HostMAC is the MAC of lab host I (lab.sh: 02:00:00:00:00:<I in hex>).
func HostMAC(i int) string { return fmt.Sprintf("02:00:00:00:00:%02x", i) }

// SeededMACs is n locally administered unicast MACs drawn from a seeded
// generator: a group whose assignment is not the lab's. With seed 3, the
// canonical pool assignment over any 4 of the 5 moves 1 or 2 VIPs between
// survivors (the pool tests rely on it).
func SeededMACs(seed uint64, n int) []string {
	rng := rand.New(rand.NewPCG(seed, 19))
	macs := make([]string, n)
	for i := range macs {
		macs[i] = fmt.Sprintf("02:%02x:%02x:%02x:%02x:%02x", rng.IntN(256), rng.IntN(256), rng.IntN(256), rng.IntN(256), rng.IntN(256))
	}
	return macs
}

// VIPs is n addresses from 198.51.100.1 on.
func VIPs(n int) []netip.Addr {
	vips := make([]netip.Addr, n)
	for i := range vips {
		vips[i] = netip.AddrFrom4([4]byte{198, 51, 100, byte(i + 1)})
	}
	return vips
}

// Loads counts the VIPs per holder of an assignment.
func Loads(a map[netip.Addr]net.HardwareAddr) map[string]int {
	l := map[string]int{}
	for _, mac := range a {
		l[mac.String()]++
	}
	return l
}

// ARP is an Ethernet/IPv4 ARP packet with the given operation and
// addresses, as a test's literal.
func ARP(op arp.Operation, sha string, spa netip.Addr, tha string, tpa netip.Addr) *arp.Packet {
	return &arp.Packet{HardwareType: 1, ProtocolType: 0x0800, HardwareAddrLength: 6, IPLength: 4,
		Operation: op, SenderHardwareAddr: MustMAC(sha), SenderIP: spa, TargetHardwareAddr: MustMAC(tha), TargetIP: tpa}
}
