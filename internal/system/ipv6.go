package system

import (
	"fmt"
	"net/netip"
	"os"
	"slices"
	"strings"
)

// CheckIPv6Enabled refuses IPv6 VIPs on an interface (or a host) where
// IPv6 is turned off: the kernel would refuse every claim. An interface that
// does not exist yet is not checked (floatip waits for it).
func CheckIPv6Enabled(ifname string, vips []netip.Addr) error {
	i := slices.IndexFunc(vips, netip.Addr.Is6)
	if i < 0 {
		return nil
	}
	if _, err := os.Stat("/proc/sys/net/ipv6"); err != nil {
		return fmt.Errorf("%s is IPv6, but this kernel has no IPv6 (no /proc/sys/net/ipv6)", vips[i])
	}
	for _, dev := range []string{"all", ifname} {
		b, err := os.ReadFile("/proc/sys/net/ipv6/conf/" + dev + "/disable_ipv6")
		if err == nil && strings.TrimSpace(string(b)) == "1" {
			return fmt.Errorf("%s is IPv6, but IPv6 is disabled (sysctl net.ipv6.conf.%s.disable_ipv6=1): enable it to hold IPv6 VIPs", vips[i], dev)
		}
	}
	return nil
}
