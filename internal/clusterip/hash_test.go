package clusterip

import (
	"net/netip"
	"slices"
	"strings"
	"testing"
)

func TestParseHash(t *testing.T) {
	for _, h := range []Hash{HashSource, HashSourcePort, HashSourcePortDestPort} {
		got, err := ParseHash(h.String())
		if err != nil || got != h {
			t.Errorf("ParseHash(%q) = %v, %v; want %v", h.String(), got, err, h)
		}
	}
	for s, want := range map[string]Hash{"source": HashSource, "source-port": HashSourcePort, "source-port-dest-port": HashSourcePortDestPort} {
		if got, err := ParseHash(s); err != nil || got != want {
			t.Errorf("ParseHash(%q) = %v, %v; want %v", s, got, err, want)
		}
	}
	for _, s := range []string{"", "sourceip", "Source", "source-port-destport"} {
		if _, err := ParseHash(s); err == nil {
			t.Errorf("ParseHash(%q): no error", s)
		}
	}
	if s := Hash(7).String(); s != "Hash(7)" {
		t.Errorf("Hash(7).String() = %q", s)
	}
}

func TestClusterMACAndGroup(t *testing.T) {
	for _, c := range []struct{ addr, group, mac string }{
		{"192.0.2.80", "239.0.2.80", "01:00:5e:00:02:50"},
		{"198.51.100.7", "239.51.100.7", "01:00:5e:33:64:07"},
		{"203.0.113.255", "239.0.113.255", "01:00:5e:00:71:ff"},
		{"10.200.1.2", "239.72.1.2", "01:00:5e:48:01:02"}, // 200 & 0x7f = 72
		{"::ffff:192.0.2.80", "239.0.2.80", "01:00:5e:00:02:50"},
	} {
		a := netip.MustParseAddr(c.addr)
		if g := Group(a).String(); g != c.group {
			t.Errorf("Group(%s) = %s; want %s", c.addr, g, c.group)
		}
		if m := ClusterMAC(a).String(); m != c.mac {
			t.Errorf("ClusterMAC(%s) = %s; want %s", c.addr, m, c.mac)
		}
		// The group maps to the MAC as any IPv4 multicast group does.
		g := Group(a).As4()
		if m := ClusterMAC(a); m[3] != g[1]&0x7f || m[4] != g[2] || m[5] != g[3] {
			t.Errorf("ClusterMAC(%s) = %s is not the MAC of %v", c.addr, m, Group(a))
		}
	}
	if Group(netip.MustParseAddr("2001:db8::80")).IsValid() || ClusterMAC(netip.MustParseAddr("2001:db8::80")) != nil {
		t.Error("an IPv6 address has a group or a cluster MAC")
	}
}

func TestConfigRejected(t *testing.T) {
	good := Config{Interface: "eth0", Addrs: []netip.Addr{netip.MustParseAddr("192.0.2.80")}, Buckets: 8, Seed: 0x5eed}
	for _, c := range []struct {
		change func(*Config)
		want   string
	}{
		{func(c *Config) { c.Seed = 0 }, "seed 0"},
		{func(c *Config) { c.Buckets = 1 }, "buckets 1"},
		{func(c *Config) { c.Buckets = 1025 }, "buckets 1025"},
		{func(c *Config) { c.Addrs = nil }, "no shared address"},
		{func(c *Config) { c.Addrs = []netip.Addr{netip.MustParseAddr("2001:db8::80")} }, "not IPv4"},
		{func(c *Config) { c.Interface = "" }, "interface"},
		{func(c *Config) { c.Interface = "a-very-long-name0" }, "interface"},
		{func(c *Config) { c.Hash = 3 }, "hash"},
	} {
		cfg := good
		c.change(&cfg)
		// Open checks before it talks to the kernel: no root needed.
		if _, err := Open(cfg, 0); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("Open(%+v) = %v; want an error about %q", cfg, err, c.want)
		}
	}
}

func TestBucketsChecked(t *testing.T) {
	tb := &Table{cfg: Config{Buckets: 8}}
	mine, draining, incoming, err := tb.check(Buckets{Mine: []int{3, 0, 1, 1}, Draining: []int{7}, Incoming: []int{4, 1}})
	if err != nil {
		t.Fatal(err)
	}
	// Incoming wins over Mine; each list sorted, each bucket once.
	if !slices.Equal(mine, []int{0, 3}) || !slices.Equal(draining, []int{7}) || !slices.Equal(incoming, []int{1, 4}) {
		t.Errorf("check = %v %v %v", mine, draining, incoming)
	}
	for _, b := range []Buckets{{Mine: []int{8}}, {Incoming: []int{-1}}, {Mine: []int{2}, Draining: []int{2}}, {Incoming: []int{5}, Draining: []int{5}}} {
		if _, _, _, err := tb.check(b); err == nil {
			t.Errorf("check(%+v): no error", b)
		}
	}
}

// The jhash seed is the same on every node of the same addresses, and
// never 0 (the kernel would draw one per node).
func TestSeed(t *testing.T) {
	a := []netip.Addr{netip.MustParseAddr("192.0.2.80")}
	if s := Seed(a); s == 0 || s != Seed([]netip.Addr{netip.MustParseAddr("192.0.2.80")}) {
		t.Fatalf("seed %#x", s)
	}
	x, y := netip.MustParseAddr("192.0.2.80"), netip.MustParseAddr("198.51.100.80")
	if Seed([]netip.Addr{x, y}) != Seed([]netip.Addr{y, x}) {
		t.Fatal("the seed depends on the order of --share")
	}
	if Seed(a) == Seed([]netip.Addr{netip.MustParseAddr("192.0.2.81")}) {
		t.Fatal("two shared addresses, one seed")
	}
}

// The kernel's jhash of a 4-byte key: cross-checked against nft by the
// traffic test (who answers each source), here only that it runs.
func TestJhashOfASource(t *testing.T) {
	if got := jhash([]byte{192, 0, 2, 130}, 0); got == 0 {
		t.Fatalf("jhash %#x", got)
	}
	if b := Bucket([]byte{192, 0, 2, 130}, 64, Seed([]netip.Addr{netip.MustParseAddr("192.0.2.80")})); b < 0 || b >= 64 {
		t.Fatalf("bucket %d of 64", b)
	}
}
