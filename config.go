package main

// Command-line validation and config building for the run command: every
// value an operator can give is checked here, before anything on the host
// is touched, and turned into one validated config.

import (
	"encoding/binary"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"slices"
	"strconv"
	"strings"
	"time"

	"floatip/internal/clusterip"
	"floatip/internal/engine"
	"floatip/internal/wire/frame"

	"floatip/internal/operator"

	"golang.org/x/sys/unix"
)

// parseVIP accepts a unicast IPv4 or IPv6 address that can float between
// hosts. An IPv4-mapped IPv6 address is its IPv4 address.
func parseVIP(s string) (netip.Addr, error) {
	a, err := parseHostAddr(s)
	if err == nil && a.Is6() && a.IsLinkLocalUnicast() {
		err = fmt.Errorf("%s is an IPv6 link-local address: every host has its own on each link, it cannot float (use a global or unique-local address)", s)
	}
	return a, err
}

// parseHostAddr accepts the unicast address of a host on the LAN: a VIP, or
// a reference host (which may be an IPv6 link-local router).
func parseHostAddr(s string) (netip.Addr, error) {
	a, err := netip.ParseAddr(s)
	if err != nil {
		return netip.Addr{}, fmt.Errorf("%q is not an IP address", s)
	}
	if a.Zone() != "" {
		return netip.Addr{}, fmt.Errorf("%s has a zone: give a plain address (the interface is -i)", s)
	}
	a = a.Unmap()
	if a.Is6() {
		switch {
		case a.IsUnspecified():
			return netip.Addr{}, fmt.Errorf("%s is the unspecified address, not a floating IP", s)
		case a.IsMulticast():
			return netip.Addr{}, fmt.Errorf("%s is a multicast address, not a floating IP", s)
		case a.IsLoopback():
			return netip.Addr{}, fmt.Errorf("%s is a loopback address: it never leaves this host", s)
		case netip.MustParsePrefix("::/96").Contains(a):
			return netip.Addr{}, fmt.Errorf("%s is in ::/96 (deprecated IPv4-compatible addresses), not a floating IP", s)
		}
		return a, nil
	}
	switch {
	case a.IsUnspecified():
		return netip.Addr{}, fmt.Errorf("%s is the unspecified address, not a floating IP", s)
	case a == netip.AddrFrom4([4]byte{255, 255, 255, 255}):
		return netip.Addr{}, fmt.Errorf("%s is the broadcast address, not a floating IP", s)
	case a.IsMulticast():
		return netip.Addr{}, fmt.Errorf("%s is a multicast address, not a floating IP", s)
	case a.IsLoopback():
		return netip.Addr{}, fmt.Errorf("%s is a loopback address: it never leaves this host", s)
	case a.As4()[0] >= 240:
		return netip.Addr{}, fmt.Errorf("%s is in the reserved range 240.0.0.0/4", s)
	case a.As4()[0] == 0:
		return netip.Addr{}, fmt.Errorf("%s is in 0.0.0.0/8, which means 'this network', not a host", s)
	}
	return a, nil
}

func parseVIPs(list []string) ([]netip.Addr, error) {
	seen := map[netip.Addr]bool{}
	vips := make([]netip.Addr, 0, len(list))
	for _, s := range list {
		a, err := parseVIP(s)
		if err != nil {
			return nil, err
		}
		if seen[a] {
			return nil, fmt.Errorf("%s is given twice", a)
		}
		seen[a] = true
		vips = append(vips, a)
	}
	return vips, nil
}

// validInterfaceName mirrors the kernel's rule (dev_valid_name).
func validInterfaceName(name string) error {
	if name == "" || len(name) > unix.IFNAMSIZ-1 || name == "." || name == ".." || strings.ContainsAny(name, "/: \t\n") {
		return fmt.Errorf("%q is not a valid interface name (at most 15 bytes, no '/', ':' or spaces)", name)
	}
	return nil
}

// addressLabel returns the label to put on the VIPs: explicit, or IFACE:fip
// when that fits in the kernel's 15 bytes, else none.
func addressLabel(label, ifname string) (string, error) {
	if label == "" {
		if l := ifname + ":fip"; len(l) <= unix.IFNAMSIZ-1 {
			return l, nil
		}
		return "", nil
	}
	if len(label) > unix.IFNAMSIZ-1 {
		return "", fmt.Errorf("label %q is %d bytes; the kernel allows at most 15", label, len(label))
	}
	if !strings.HasPrefix(label, ifname) {
		return "", fmt.Errorf("label %q must start with the interface name %q (e.g. %s:vip)", label, ifname, ifname)
	}
	return label, nil
}

// config is a validated run command.
type config struct {
	ifname      string
	label       string
	vips        []netip.Addr
	level       slog.Level
	jsonLogs    bool
	references  []netip.Addr // --reference; empty: the default gateway
	noReference bool
	machine     engine.Config

	check                       []string // nil: no health check
	checkInterval, checkTimeout time.Duration
	rise, fall                  int
	onUp, onDown, onChange      []string
	hookTimeout                 time.Duration
	fence                       []string
	fenceTimeout                time.Duration
	metricsListen               *net.TCPAddr // nil: no metrics endpoint
	resetConns                  bool         // reset the VIP's TCP connections on release
	spread                      bool         // pool mode (internal/engine/poolview.go)
	poolHoldDown                time.Duration
	shared                      []netip.Addr // --share (share.go)
	hash                        clusterip.Hash
	buckets                     int
	drain                       time.Duration
}

// parseListenAddr accepts IP:PORT or :PORT. Names are refused: a listen
// address needs no lookup, and leaving the resolver out keeps the binary
// small.
func parseListenAddr(s string) (*net.TCPAddr, error) {
	if port, ok := strings.CutPrefix(s, ":"); ok {
		p, err := strconv.ParseUint(port, 10, 16)
		if err != nil {
			return nil, fmt.Errorf("%q: bad port", s)
		}
		return &net.TCPAddr{Port: int(p)}, nil
	}
	ap, err := netip.ParseAddrPort(s)
	if err != nil {
		return nil, fmt.Errorf("%q: want IP:PORT or :PORT, e.g. 127.0.0.1:9810", s)
	}
	return net.TCPAddrFromAddrPort(ap), nil
}

// operatorCommand splits a --check/--on-*/--fence value into argv.
func operatorCommand(flag, value string) ([]string, error) {
	if value == "" {
		return nil, nil
	}
	argv, err := operator.SplitCommand(value)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", flag, err)
	}
	if len(argv) == 0 {
		return nil, fmt.Errorf("%s: empty command", flag)
	}
	return argv, nil
}

func (r *runCmd) config() (*config, error) {
	if err := validInterfaceName(r.Interface); err != nil {
		return nil, err
	}
	expanded, err := expandVIPRanges(r.VIPs)
	if err != nil {
		return nil, err
	}
	vips, err := parseVIPs(expanded)
	if err != nil {
		return nil, err
	}
	shared, hash, err := r.sharedConfig(vips)
	if err != nil {
		return nil, err
	}
	if r.PoolHoldDown < 0 || r.PoolHoldDown > 10*time.Minute {
		return nil, fmt.Errorf("--pool-hold-down %s is out of range 0..10m", r.PoolHoldDown)
	}
	switch {
	case r.Priority < 1 || r.Priority > 255:
		return nil, fmt.Errorf("--priority %d is out of range 1..255", r.Priority)
	case r.Interval < 10*time.Millisecond || r.Interval > 10*time.Second:
		return nil, fmt.Errorf("--interval %s is out of range 10ms..10s", r.Interval)
	case r.Misses < 1 || r.Misses > 100:
		return nil, fmt.Errorf("--misses %d is out of range 1..100", r.Misses)
	case r.AnnounceCount < 1 || r.AnnounceCount > 100:
		return nil, fmt.Errorf("--announce-count %d is out of range 1..100", r.AnnounceCount)
	case r.AnnounceSpacing < 1100*time.Millisecond:
		return nil, fmt.Errorf("--announce-spacing %s is below 1.1s: Linux neighbours ignore a second update within their 1s locktime", r.AnnounceSpacing)
	case r.Refresh < 0 || (r.Refresh > 0 && r.Refresh < time.Second):
		return nil, fmt.Errorf("--refresh %s must be 0 (off) or at least 1s", r.Refresh)
	}
	var refs []netip.Addr
	for _, s := range r.Reference {
		ip, err := parseHostAddr(s)
		if err != nil {
			return nil, fmt.Errorf("--reference: %w", err)
		}
		if slices.Contains(vips, ip) {
			return nil, fmt.Errorf("--reference %s is one of the VIPs: a reference must be a host that stays put", ip)
		}
		refs = append(refs, ip)
	}
	if r.NoReference && len(refs) > 0 {
		return nil, errors.New("--no-reference and --reference contradict each other")
	}
	if r.PreemptDelay < 0 {
		return nil, fmt.Errorf("--preempt-delay %s is negative", r.PreemptDelay)
	}
	if r.Preempt && r.Spread {
		// Refused rather than ignored: the operator expects a behaviour
		// this mode does not have.
		return nil, errors.New("--preempt has no effect with --spread: the pool's assignment decides where each VIP lives, and a node that comes back takes its share after --pool-hold-down")
	}
	label, err := addressLabel(r.Label, r.Interface)
	if err != nil {
		return nil, err
	}
	var level slog.Level
	if err := level.UnmarshalText([]byte(r.LogLevel)); err != nil {
		return nil, fmt.Errorf("--log-level: %w", err)
	}
	switch {
	case r.CheckInterval <= 0 || r.CheckTimeout <= 0:
		return nil, errors.New("--check-interval and --check-timeout must be positive")
	case r.Rise < 1 || r.Fall < 1 || r.Rise > 100 || r.Fall > 100:
		return nil, fmt.Errorf("--rise %d and --fall %d must be in 1..100", r.Rise, r.Fall)
	case r.HookTimeout <= 0 || r.FenceTimeout <= 0:
		return nil, errors.New("--hook-timeout and --fence-timeout must be positive")
	}
	var check, onUp, onDown, onChange, fence []string
	for _, c := range []struct {
		flag, value string
		argv        *[]string
	}{{"--check", r.Check, &check}, {"--on-up", r.OnUp, &onUp}, {"--on-down", r.OnDown, &onDown},
		{"--on-change", r.OnChange, &onChange}, {"--fence", r.Fence, &fence}} {
		if *c.argv, err = operatorCommand(c.flag, c.value); err != nil {
			return nil, err
		}
	}
	var metricsAddr *net.TCPAddr
	if r.MetricsListen != "" {
		if metricsAddr, err = parseListenAddr(r.MetricsListen); err != nil {
			return nil, fmt.Errorf("--metrics-listen: %w", err)
		}
	}
	return &config{
		jsonLogs:      r.LogFormat == "json",
		check:         check,
		checkInterval: r.CheckInterval,
		checkTimeout:  r.CheckTimeout,
		rise:          r.Rise,
		fall:          r.Fall,
		onUp:          onUp,
		onDown:        onDown,
		onChange:      onChange,
		hookTimeout:   r.HookTimeout,
		fence:         fence,
		fenceTimeout:  r.FenceTimeout,
		metricsListen: metricsAddr,
		resetConns:    r.ResetConns,
		spread:        r.Spread,
		poolHoldDown:  r.PoolHoldDown,
		shared:        shared,
		hash:          hash,
		buckets:       r.Buckets,
		drain:         r.Drain,
		ifname:        r.Interface,
		label:         label,
		vips:          vips,
		level:         level,
		references:    refs,
		noReference:   r.NoReference,
		machine: engine.Config{
			Priority:        uint8(r.Priority),
			Interval:        r.Interval,
			Misses:          r.Misses,
			AnnounceCount:   r.AnnounceCount,
			AnnounceSpacing: r.AnnounceSpacing,
			AnnounceForm:    frame.AnnounceForm(r.AnnounceForm),
			Refresh:         r.Refresh,
			Preempt:         r.Preempt,
			PreemptDelay:    r.PreemptDelay,
		},
	}, nil
}

// sharedConfig checks --share and its flags against the VIPs.
func (r *runCmd) sharedConfig(vips []netip.Addr) ([]netip.Addr, clusterip.Hash, error) {
	if len(vips) == 0 && len(r.Share) == 0 {
		return nil, 0, errors.New("no address given: name a VIP to float, or --share an address")
	}
	shared, err := parseVIPs(r.Share)
	if err != nil {
		return nil, 0, fmt.Errorf("--share: %w", err)
	}
	for _, a := range shared {
		switch {
		case a.Is6():
			return nil, 0, fmt.Errorf("--share %s: a shared IPv6 address is not supported (IPv4 only); float it as a VIP instead", a)
		case slices.Contains(vips, a):
			return nil, 0, fmt.Errorf("%s is both a VIP and --share: an address is either floated or shared", a)
		}
	}
	if r.Buckets < 2 || r.Buckets > 1024 {
		return nil, 0, fmt.Errorf("--buckets %d is out of range 2..1024", r.Buckets)
	}
	if r.Drain < 0 || r.Drain > 24*time.Hour {
		return nil, 0, fmt.Errorf("--drain %s is out of range 0..24h", r.Drain)
	}
	hash, err := clusterip.ParseHash(r.Hash)
	if err != nil {
		return nil, 0, fmt.Errorf("--hash: %w", err)
	}
	return shared, hash, nil
}

// maxRangeVIPs bounds a range on the command line.
const maxRangeVIPs = 4096

// expandVIPRanges turns "A-B" arguments (IPv4, A ≤ B) into the addresses
// from A to B; other arguments pass unchanged.
func expandVIPRanges(args []string) ([]string, error) {
	var out []string
	for _, s := range args {
		lo, hi, isRange := strings.Cut(s, "-")
		if !isRange {
			out = append(out, s)
			continue
		}
		a, errA := netip.ParseAddr(lo)
		b, errB := netip.ParseAddr(hi)
		if errA != nil || errB != nil || !a.Is4() || !b.Is4() {
			return nil, fmt.Errorf("%q is not a range of IPv4 addresses (want e.g. 192.0.2.50-192.0.2.57)", s)
		}
		x, y := binary.BigEndian.Uint32(a.AsSlice()), binary.BigEndian.Uint32(b.AsSlice())
		switch {
		case x > y:
			return nil, fmt.Errorf("range %q runs backwards", s)
		case y-x >= maxRangeVIPs:
			return nil, fmt.Errorf("range %q has %d addresses; at most %d", s, uint64(y-x)+1, maxRangeVIPs)
		}
		for v := x; ; v++ {
			out = append(out, netip.AddrFrom4([4]byte{byte(v >> 24), byte(v >> 16), byte(v >> 8), byte(v)}).String())
			if v == y {
				break
			}
		}
	}
	return out, nil
}
