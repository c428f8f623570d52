package clusterip

import (
	"encoding/binary"
	"encoding/json"
	"fmt"
	"net/netip"
	"os"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/nftables"
)

func TestCheck(t *testing.T) {
	needRoot(t)
	if err := Check(); err != nil {
		t.Fatal(err)
	}
}

// ruleset is what nft -j list ruleset shows in a namespace: each table as
// "family name", and each set's elements as "family table set".
func ruleset(t *testing.T, n *netns) (tables []string, sets map[string][]any) {
	t.Helper()
	var rs struct {
		Nftables []struct {
			Table *struct{ Family, Name string }
			Set   *struct {
				Family, Table, Name string
				Elem                []any
			}
		}
	}
	if err := json.Unmarshal([]byte(n.exec(t, "nft", "-j", "list", "ruleset")), &rs); err != nil {
		t.Fatal(err)
	}
	sets = map[string][]any{}
	for _, o := range rs.Nftables {
		if o.Table != nil {
			tables = append(tables, o.Table.Family+" "+o.Table.Name)
		}
		if o.Set != nil {
			sets[o.Set.Family+" "+o.Set.Table+" "+o.Set.Name] = o.Set.Elem
		}
	}
	slices.Sort(tables)
	return tables, sets
}

// buckets reads a bucket set over netlink.
func buckets(t *testing.T, n *netns, iface, set string) []int {
	t.Helper()
	c, err := nftables.New(nftables.WithNetNSFd(n.fd))
	if err != nil {
		t.Fatal(err)
	}
	inet, _ := tables(iface)
	s, err := c.GetSetByName(inet, set)
	if err != nil {
		t.Fatalf("set %s: %v", set, err)
	}
	elems, err := c.GetSetElements(s)
	if err != nil {
		t.Fatalf("set %s: %v", set, err)
	}
	var out []int
	for _, e := range elems {
		out = append(out, int(binary.NativeEndian.Uint32(e.Key)))
	}
	slices.Sort(out)
	return out
}

func TestTableKernel(t *testing.T) {
	needRoot(t)
	n := newNetns(t, fmt.Sprintf("fipt-clip-%d-k", os.Getpid()))
	n.ip(t, "link", "add", "eth0", "type", "veth", "peer", "name", "eth1")
	cfg := Config{
		Interface: "eth0",
		Addrs:     []netip.Addr{netip.MustParseAddr("198.51.100.7"), netip.MustParseAddr("192.0.2.80"), netip.MustParseAddr("192.0.2.80")},
		Buckets:   8, Hash: HashSourcePort, Seed: 0x5eed,
	}
	tb, err := Open(cfg, n.fd)
	if err != nil {
		t.Fatal(err)
	}
	defer tb.Close()
	want := []string{"arp floatip_eth0", "inet floatip_eth0"}
	tabs, sets := ruleset(t, n)
	if !slices.Equal(tabs, want) {
		t.Fatalf("tables after Open: %v; want %v", tabs, want)
	}
	if got := fmt.Sprint(sets["inet floatip_eth0 addrs"]); got != "[192.0.2.80 198.51.100.7]" {
		t.Errorf("addrs = %s", got)
	}
	for _, s := range []string{setMine, setDraining, setIncoming} {
		if e := sets["inet floatip_eth0 "+s]; len(e) != 0 {
			t.Errorf("set %s after Open: %v; want empty (every bucket dropped)", s, e)
		}
	}
	text := n.exec(t, "nft", "list", "ruleset")
	for _, s := range []string{
		"jhash ip saddr . th sport mod 8 seed 0x5eed @mine",
		"meta l4proto != @ported jhash ip saddr mod 8 seed 0x5eed @mine",
		"meta pkttype set host",
		"type filter hook prerouting priority raw",
		"type filter hook prerouting priority mangle",
		"arp saddr ip 192.0.2.80 arp saddr ether set 01:00:5e:00:02:50",
		"arp saddr ip 198.51.100.7 arp saddr ether set 01:00:5e:33:64:07",
		"type filter hook input",
		"type filter hook output",
	} {
		if !strings.Contains(text, s) {
			t.Errorf("the ruleset lacks %q:\n%s", s, text)
		}
	}

	if err := tb.Set(Buckets{Mine: []int{0, 1, 5}, Draining: []int{2}, Incoming: []int{3, 4}}); err != nil {
		t.Fatal(err)
	}
	check := func(mine, draining, incoming []int) {
		t.Helper()
		for _, c := range []struct {
			set  string
			want []int
		}{{setMine, mine}, {setDraining, draining}, {setIncoming, incoming}} {
			if got := buckets(t, n, "eth0", c.set); !slices.Equal(got, c.want) {
				t.Errorf("set %s = %v; want %v", c.set, got, c.want)
			}
		}
	}
	check([]int{0, 1, 5}, []int{2}, []int{3, 4})
	// The next Set is one transaction: one generation of changes.
	mc, err := nftables.New(nftables.WithNetNSFd(n.fd))
	if err != nil {
		t.Fatal(err)
	}
	mon := nftables.NewMonitor(nftables.WithMonitorEventBuffer(16))
	gens, err := mc.AddGenerationalMonitor(mon)
	if err != nil {
		t.Fatal(err)
	}
	if err := tb.Set(Buckets{Mine: []int{6, 7}, Incoming: []int{2}}); err != nil {
		t.Fatal(err)
	}
	var changes []int
	for wait := time.After(2 * time.Second); len(changes) == 0 || wait != nil; {
		select {
		case g := <-gens:
			changes = append(changes, len(g.Changes))
			wait = time.After(300 * time.Millisecond) // a second generation would come now
		case <-wait:
			if len(changes) == 0 {
				t.Fatal("no generation of changes within 2 s of Set")
			}
			wait = nil
		}
	}
	mon.Close()
	if len(changes) != 1 || changes[0] < 2 {
		t.Errorf("Set made generations with %v changes; want one generation", changes)
	}
	check([]int{6, 7}, nil, []int{2})
	if err := tb.Set(Buckets{Mine: []int{1}, Draining: []int{1}}); err == nil {
		t.Error("Set accepted a bucket both mine and draining")
	}
	check([]int{6, 7}, nil, []int{2}) // a refused Set changes nothing
	if a, d, err := tb.Counters(); err != nil || a != 0 || d != 0 {
		t.Errorf("Counters = %d, %d, %v; want 0, 0 on a quiet link", a, d, err)
	}

	// A process killed with -9 leaves its tables: the next Open replaces them.
	tb2, err := Open(cfg, n.fd)
	if err != nil {
		t.Fatalf("Open over a leftover: %v", err)
	}
	if tabs, _ := ruleset(t, n); !slices.Equal(tabs, want) {
		t.Fatalf("tables after a second Open: %v; want %v", tabs, want)
	}
	check(nil, nil, nil)
	if err := tb2.Set(Buckets{Mine: []int{0}}); err != nil {
		t.Fatal(err)
	}
	check([]int{0}, nil, nil)

	// Close leaves nothing; twice is fine, and so is the stale Table's.
	for _, x := range []*Table{tb2, tb2, tb} {
		if err := x.Close(); err != nil {
			t.Fatalf("Close: %v", err)
		}
	}
	if out := n.exec(t, "nft", "list", "ruleset"); strings.TrimSpace(out) != "" {
		t.Errorf("ruleset after Close:\n%s", out)
	}
	if err := tb2.Set(Buckets{}); err == nil {
		t.Error("Set after Close: no error")
	}
	if err := RemoveLeftovers("eth0", n.fd); err != nil {
		t.Errorf("RemoveLeftovers with nothing left: %v", err)
	}

	// Another interface's tables are not this one's.
	other, err := Open(Config{Interface: "eth1", Addrs: cfg.Addrs, Buckets: 4, Seed: 1}, n.fd)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := Open(cfg, n.fd); err != nil {
		t.Fatal(err)
	}
	if err := RemoveLeftovers("eth0", n.fd); err != nil {
		t.Fatal(err)
	}
	if tabs, _ := ruleset(t, n); !slices.Equal(tabs, []string{"arp floatip_eth1", "inet floatip_eth1"}) {
		t.Errorf("tables after RemoveLeftovers(eth0): %v; want eth1's only", tabs)
	}
	if err := other.Close(); err != nil {
		t.Fatal(err)
	}
}

func TestJoin(t *testing.T) {
	needRoot(t)
	n := newNetns(t, fmt.Sprintf("fipt-clip-%d-j", os.Getpid()))
	n.ip(t, "link", "add", "eth0", "type", "veth", "peer", "name", "eth1")
	n.ip(t, "link", "set", "eth0", "up")
	addr := netip.MustParseAddr("192.0.2.80")
	maddr := func() string { return n.ip(t, "maddr", "show", "dev", "eth0") }
	var m interface{ Close() error }
	if err := n.do(func() (err error) { m, err = Join("eth0", addr); return err }); err != nil {
		t.Fatal(err)
	}
	out := maddr()
	if !strings.Contains(out, "239.0.2.80") || !strings.Contains(out, "01:00:5e:00:02:50") {
		t.Errorf("after Join, eth0's groups lack 239.0.2.80 and its MAC:\n%s", out)
	}
	if err := m.Close(); err != nil {
		t.Fatal(err)
	}
	if err := m.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
	if out := maddr(); strings.Contains(out, "239.0.2.80") {
		t.Errorf("after Close, eth0 is still in 239.0.2.80:\n%s", out)
	}
	if err := n.do(func() error { _, err := Join("nosuch0", addr); return err }); err == nil {
		t.Error("Join on a missing interface: no error")
	}
}

// With a lease, a bucket not set again is no longer served: what a
// process killed with -9 leaves behind stops serving by itself.
func TestLeaseExpires(t *testing.T) {
	needRoot(t)
	n := newNetns(t, fmt.Sprintf("fipt-clip-%d-l", os.Getpid()))
	n.ip(t, "link", "add", "eth0", "type", "veth", "peer", "name", "eth1")
	tb, err := Open(Config{Interface: "eth0", Addrs: []netip.Addr{netip.MustParseAddr("192.0.2.80")},
		Buckets: 8, Seed: 0x5eed, Lease: 400 * time.Millisecond}, n.fd)
	if err != nil {
		t.Fatal(err)
	}
	defer tb.Close()
	renew := func() {
		if err := tb.Set(Buckets{Mine: []int{1, 2}, Draining: []int{3}}); err != nil {
			t.Fatal(err)
		}
	}
	renew()
	for range 4 { // renewed within the lease: kept
		time.Sleep(200 * time.Millisecond)
		if got := buckets(t, n, "eth0", setMine); !slices.Equal(got, []int{1, 2}) {
			t.Fatalf("mine while renewed: %v", got)
		}
		renew()
	}
	renewed := time.Now()
	deadline := renewed.Add(3 * time.Second)
	defer func() {
		// The others take the buckets a dead time after the last frame:
		// a lease that outlives it would serve them twice.
		if d := time.Since(renewed); d > 500*time.Millisecond {
			t.Errorf("expired %v after the last renewal, lease 400ms", d)
		}
	}()
	for len(buckets(t, n, "eth0", setMine))+len(buckets(t, n, "eth0", setDraining)) > 0 {
		if time.Now().After(deadline) {
			t.Fatalf("buckets still served 3 s after the last renewal: %v %v", buckets(t, n, "eth0", setMine), buckets(t, n, "eth0", setDraining))
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// A bucket given by plan expires at its give even when the process that
// set it cannot run (SIGSTOP): the taker takes it then.
func TestExpireShortensTheLease(t *testing.T) {
	needRoot(t)
	n := newNetns(t, fmt.Sprintf("fipt-clip-%d-e", os.Getpid()))
	n.ip(t, "link", "add", "eth0", "type", "veth", "peer", "name", "eth1")
	tb, err := Open(Config{Interface: "eth0", Addrs: []netip.Addr{netip.MustParseAddr("192.0.2.80")},
		Buckets: 8, Seed: 0x5eed, Lease: 2 * time.Second}, n.fd)
	if err != nil {
		t.Fatal(err)
	}
	defer tb.Close()
	if err := tb.Set(Buckets{Mine: []int{1, 2}, Expire: map[int]time.Duration{2: 300 * time.Millisecond}}); err != nil {
		t.Fatal(err)
	}
	set := time.Now()
	deadline := set.Add(3 * time.Second)
	for slices.Contains(buckets(t, n, "eth0", setMine), 2) {
		if time.Now().After(deadline) {
			t.Fatal("bucket 2 still served 3 s after it was set to expire in 300 ms")
		}
		time.Sleep(5 * time.Millisecond)
	}
	if d := time.Since(set); d > time.Second {
		t.Errorf("bucket 2 expired after %v, set to expire in 300 ms (lease 2 s)", d)
	}
	if got := buckets(t, n, "eth0", setMine); !slices.Equal(got, []int{1}) {
		t.Errorf("mine after bucket 2 expired: %v, want [1] (its lease runs on)", got)
	}
}
