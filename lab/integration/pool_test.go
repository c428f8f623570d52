package integration

// Lab tests of pool mode (--spread): 5 hosts share 16 VIPs, active-active.
// They come up balanced on their assignees; a host dies and only its share
// moves; it comes back and takes its share again after the hold-down, make
// before break; a partition of two hosts from three heals to one holder per
// VIP, balanced.

import (
	"fmt"
	"net"
	"net/netip"
	"regexp"
	"slices"
	"sort"
	"strings"
	"syscall"
	"testing"
	"time"

	"floatip/internal/fiptest"

	"floatip/internal/pool"
)

// poolLab is a lab of n hosts running --spread over 198.51.100.1 and up.
type poolLab struct {
	*fiptest.Lab
	n       int
	vips    []string
	daemons map[string]*fiptest.Process
	macs    map[string]string // a host's MAC when not the lab's (setMACs)
}

// macOf is host h's MAC: the lab's, fiptest.HostMACOf, unless setMACs
// changed it.
func (pl *poolLab) macOf(h string) string {
	if mac, ok := pl.macs[h]; ok {
		return mac
	}
	return fiptest.HostMACOf(h)
}

func newPoolLab(t *testing.T, n, vips int, extra ...string) *poolLab {
	l := fiptest.NewLab(t, n)
	l.MustRun("c", "ip", "route", "add", "198.51.100.0/24", "dev", "eth0")
	pl := &poolLab{Lab: l, n: n, vips: scaleVIPs(vips), daemons: map[string]*fiptest.Process{}}
	for i := 1; i <= n; i++ {
		pl.Start(i, extra...)
	}
	return pl
}

func (pl *poolLab) Start(i int, extra ...string) {
	h := fmt.Sprintf("h%d", i)
	args := append([]string{"-i", "eth0", "--spread"}, extra...)
	pl.daemons[h] = pl.StartDaemon(h, append(args, "198.51.100.1-"+pl.vips[len(pl.vips)-1])...)
}

// assignment is pool.Assign over the given hosts (all at the default priority).
func (pl *poolLab) assignment(hosts ...int) map[string]string {
	var ms []pool.Member
	for _, i := range hosts {
		mac, _ := net.ParseMAC(pl.macOf(fmt.Sprintf("h%d", i)))
		ms = append(ms, pool.Member{MAC: mac, Weight: 100})
	}
	var vips []netip.Addr
	for _, v := range pl.vips {
		vips = append(vips, netip.MustParseAddr(v))
	}
	out := map[string]string{}
	for v, mac := range pool.Assign(vips, ms) {
		out[v.String()] = mac.String()
	}
	return out
}

// survivorsKept checks a death's promise: each VIP a survivor held before
// (before: VIP → host, as holderOf) is still held by it alone, and each VIP
// of the dead hosts by one survivor. Which survivor took which of the dead
// hosts' VIPs is not one fixed pool.Keep: survivors that noticed the death
// a tick apart find some of them claimed already, and the assignment
// follows the holders (docs/pools.md); balancedOn checks the shares.
func (pl *poolLab) survivorsKept(what string, before map[string]string, dead ...string) {
	pl.T.Helper()
	holder := pl.holderOf()
	for _, v := range pl.vips {
		was, now := before[v], holder[v]
		switch {
		case now == "" || now == "many" || slices.Contains(dead, now):
			pl.T.Errorf("%s: %s held by %q, want one survivor", what, v, now)
		case !slices.Contains(dead, was) && now != was:
			pl.T.Errorf("%s: %s moved from the live %s to %s", what, v, was, now)
		}
	}
}

// heldAs is the assignment that follows the holders (VIP → its holder's
// MAC), as the survivors of a death see it.
func (pl *poolLab) heldAs() map[string]string {
	out := map[string]string{}
	for v, h := range pl.holderOf() {
		if h != "" && h != "many" {
			out[v] = pl.macOf(h)
		}
	}
	return out
}

// holderOf maps each VIP to the host holding it ("" none, "many" several).
func (pl *poolLab) holderOf() map[string]string {
	out := map[string]string{}
	for h, vs := range heldVIPs(pl.Lab, pl.n, pl.vips) {
		for _, v := range vs {
			if out[v] != "" {
				out[v] = "many"
			} else {
				out[v] = h
			}
		}
	}
	return out
}

// balancedOn reports whether every VIP has one holder, on one of the given
// hosts, each holding ⌊M/N⌋ or ⌈M/N⌉.
func (pl *poolLab) balancedOn(hosts ...int) bool {
	held := heldVIPs(pl.Lab, pl.n, pl.vips)
	count := holdersPerVIP(held)
	for _, v := range pl.vips {
		if count[v] != 1 {
			return false
		}
	}
	lo, hi := len(pl.vips)/len(hosts), (len(pl.vips)+len(hosts)-1)/len(hosts)
	total := 0
	for _, i := range hosts {
		n := len(held[fmt.Sprintf("h%d", i)])
		if n < lo || n > hi {
			return false
		}
		total += n
	}
	return total == len(pl.vips)
}

// onAssignees checks that every VIP is held by its assignee in want.
func (pl *poolLab) onAssignees(what string, want map[string]string) {
	pl.T.Helper()
	holder := pl.holderOf()
	for _, v := range pl.vips {
		if h := holder[v]; h == "" || h == "many" || pl.macOf(h) != want[v] {
			pl.T.Errorf("%s: %s held by %q, assigned to %s", what, v, h, want[v])
		}
	}
}

// clientReachesAll pings every VIP from the client and checks that it is
// answered by its holder's MAC.
func (pl *poolLab) clientReachesAll() []string {
	byHost := map[string][]string{}
	for v, h := range pl.holderOf() {
		byHost[h] = append(byHost[h], v)
	}
	var bad []string
	for h, vs := range byHost {
		if h == "" || h == "many" {
			bad = append(bad, vs...)
			continue
		}
		bad = append(bad, clientUnreached(pl.Lab, vs, pl.macOf(h))...)
	}
	sort.Strings(bad)
	return bad
}

func (pl *poolLab) checkRunning() {
	for h, d := range pl.daemons {
		if !d.Running() {
			pl.T.Errorf("%s's daemon exited: %s", h, fiptest.LastLines(d.Logs(), 20))
		}
	}
}

// 5 hosts × 16 VIPs: balanced on the assignees; a host dies: its VIPs move,
// the others stay (pool.Keep); it comes back: the canonical assignment
// returns after the hold-down, with a client of a returning VIP served
// throughout.
func TestLabPoolFailoverAndRejoin(t *testing.T) {
	t.Parallel()
	pl := newPoolLab(t, 5, 16)
	all := []int{1, 2, 3, 4, 5}
	fiptest.WaitFor(t, 20*time.Second, "16 VIPs balanced over 5 hosts", func() bool { return pl.balancedOn(all...) })
	want5 := pl.assignment(all...)
	pl.checkAssignmentShown(want5)
	pl.onAssignees("start", want5)
	fiptest.WaitFor(t, 10*time.Second, "the client to reach every VIP at its holder", func() bool { return len(pl.clientReachesAll()) == 0 })
	before := pl.holderOf()

	// h3 dies (its link is cut): its VIPs go to the survivors.
	survivors := []int{1, 2, 4, 5}
	cut := time.Now()
	pl.Script("cut", "h3")
	fiptest.WaitFor(t, 10*time.Second, "h3's VIPs to be held by the survivors", func() bool {
		holder := pl.holderOf()
		for v, h := range before {
			if h == "h3" && (holder[v] == "" || holder[v] == "many" || holder[v] == "h3") {
				return false
			}
		}
		return true
	})
	t.Logf("h3's %d VIPs held again %v after the cut", len(heldOf(before, "h3")), time.Since(cut).Round(time.Millisecond))
	fiptest.WaitFor(t, 10*time.Second, "16 VIPs balanced over 4 hosts", func() bool { return pl.balancedOn(survivors...) })
	pl.survivorsKept("after h3's death", before, "h3")
	fiptest.WaitFor(t, 10*time.Second, "the client to reach every VIP at its holder", func() bool { return len(pl.clientReachesAll()) == 0 })

	// h3 comes back: nothing moves during its hold-down; then its share
	// returns, make before break, while a client talks to one of them.
	var back string
	for _, v := range pl.vips {
		if want5[v] == fiptest.HostMAC(3) {
			back = v
			break
		}
	}
	for i := 1; i <= 5; i++ {
		pl.StartEchoServer(fmt.Sprintf("h%d", i), back+":7007")
	}
	client := pl.UDPClientTo(back+":7007", 12*time.Second, 10*time.Millisecond)
	time.Sleep(time.Second)
	healed := time.Now()
	pl.Script("heal", "h3")
	for time.Since(healed) < 4*time.Second {
		if n := len(heldVIPs(pl.Lab, 5, pl.vips)["h3"]); n > 0 {
			t.Fatalf("h3 took %d VIPs %v after it came back, inside its 5s hold-down", n, time.Since(healed))
		}
		time.Sleep(100 * time.Millisecond)
	}
	fiptest.WaitFor(t, 15*time.Second, "16 VIPs balanced over 5 hosts again", func() bool { return pl.balancedOn(all...) })
	t.Logf("rebalanced %v after h3 came back", time.Since(healed).Round(time.Millisecond))
	pl.onAssignees("after the rejoin", want5)
	s := <-client
	if s.Err != nil {
		t.Fatal(s.Err)
	}
	if s.LastResponder != "h3" || len(s.Changes) == 0 {
		t.Fatalf("the client of %s was last answered by %s (changes %v), want h3", back, s.LastResponder, s.Changes)
	}
	move := s.Changes[len(s.Changes)-1]
	t.Logf("client of %s (moved to h3): %d ms outage at the move, longest gap %d ms, %d/%d answered, responders %v",
		back, move.GapMs, s.LongestGapMs, s.Answered, s.Sent, s.ByResponder)
	if move.GapMs > 1000 {
		t.Errorf("the client of %s saw a %d ms outage on a planned move", back, move.GapMs)
	}
	fiptest.WaitFor(t, 10*time.Second, "the client to reach every VIP at its holder", func() bool { return len(pl.clientReachesAll()) == 0 })
	pl.checkRunning()
}

func heldOf(holder map[string]string, h string) []string {
	var out []string
	for v, x := range holder {
		if x == h {
			out = append(out, v)
		}
	}
	slices.Sort(out)
	return out
}

// partition drops every frame between the ports of hosts a and the other
// ports (the client stays with the others), in the bridge's namespace.
func (pl *poolLab) partition(a []string) {
	var others []string
	for i := 1; i <= pl.n; i++ {
		if h := fmt.Sprintf("h%d", i); !slices.Contains(a, h) {
			others = append(others, h)
		}
	}
	others = append(others, "c")
	set := func(s []string) string { return `{ "` + strings.Join(s, `", "`) + `" }` }
	rules := fmt.Sprintf(`add table bridge fippart
add chain bridge fippart cut { type filter hook forward priority 0; policy accept; }
add rule bridge fippart cut iifname %s oifname %s drop
add rule bridge fippart cut iifname %s oifname %s drop
`, set(a), set(others), set(others), set(a))
	pl.MustRun("br", "sh", "-c", "printf '%s' \"$1\" | nft -f -", "nft", rules)
}

func (pl *poolLab) unpartition() { pl.MustRun("br", "nft", "delete", "table", "bridge", "fippart") }

// Two hosts cut off from three (carrier up on all): each side serves every
// VIP; the heal leaves one holder per VIP on its assignee, balanced.
func TestLabPoolPartitionHeals(t *testing.T) {
	t.Parallel()
	pl := newPoolLab(t, 5, 16)
	all := []int{1, 2, 3, 4, 5}
	fiptest.WaitFor(t, 20*time.Second, "16 VIPs balanced over 5 hosts", func() bool { return pl.balancedOn(all...) })

	pl.partition([]string{"h1", "h2"})
	fiptest.WaitFor(t, 15*time.Second, "each side of the partition to hold every VIP", func() bool {
		held := heldVIPs(pl.Lab, 5, pl.vips)
		a, b := map[string]bool{}, map[string]bool{}
		for h, vs := range held {
			for _, v := range vs {
				if h == "h1" || h == "h2" {
					a[v] = true
				} else {
					b[v] = true
				}
			}
		}
		return len(a) == len(pl.vips) && len(b) == len(pl.vips)
	})
	// The client, on the side of h3..h5, is served there.
	var bad []string
	fiptest.WaitFor(t, 10*time.Second, "the client to reach every VIP on its side of the partition", func() bool {
		held := heldVIPs(pl.Lab, 5, pl.vips)
		bad = nil
		for _, h := range []string{"h3", "h4", "h5"} {
			bad = append(bad, clientUnreached(pl.Lab, held[h], fiptest.HostMACOf(h))...)
		}
		if len(bad) > 0 {
			t.Logf("not yet: %v; held %v", bad, held)
		}
		return len(bad) == 0
	})
	time.Sleep(2 * time.Second) // both sides settled
	healed := time.Now()
	pl.unpartition()
	fiptest.WaitFor(t, 15*time.Second, "one holder per VIP, balanced, after the heal", func() bool { return pl.balancedOn(all...) })
	t.Logf("one holder per VIP, balanced, %v after the heal", time.Since(healed).Round(time.Millisecond))
	pl.onAssignees("after the heal", pl.assignment(all...))
	var unreached []string
	fiptest.WaitFor(t, 10*time.Second, "the client to reach every VIP at its holder", func() bool {
		unreached = pl.clientReachesAll()
		if len(unreached) > 0 {
			t.Logf("not yet: %v; holders %v; client: %s", unreached, pl.holderOf(), pl.MustRun("c", "ip", "neigh", "show", unreached[0]))
		}
		return len(unreached) == 0
	})
	pl.checkRunning()
}

// 3 hosts with 8 and with 64 VIPs: balanced on the assignees; a host dies:
// balanced on the survivors, which keep theirs, every VIP answers the
// client at its holder.
func TestLabPoolSizes(t *testing.T) {
	t.Parallel()
	for _, vips := range []int{8, 64} {
		t.Run(fmt.Sprintf("3x%d", vips), func(t *testing.T) {
			pl := newPoolLab(t, 3, vips)
			fiptest.WaitFor(t, 20*time.Second, "the VIPs balanced over 3 hosts", func() bool { return pl.balancedOn(1, 2, 3) })
			pl.onAssignees("start", pl.assignment(1, 2, 3))
			fiptest.WaitFor(t, 10*time.Second, "the client to reach every VIP at its holder", func() bool { return len(pl.clientReachesAll()) == 0 })
			before := pl.holderOf()
			pl.Script("cut", "h2")
			fiptest.WaitFor(t, 10*time.Second, "the VIPs balanced over h1 and h3", func() bool { return pl.balancedOn(1, 3) })
			pl.survivorsKept("after h2's death", before, "h2")
			fiptest.WaitFor(t, 10*time.Second, "the client to reach every VIP at its holder", func() bool { return len(pl.clientReachesAll()) == 0 })
			pl.checkRunning()
		})
	}
}

// checkAssignmentShown asks one daemon for its status (SIGUSR1) and checks
// that the lines name each VIP's assignee.
func (pl *poolLab) checkAssignmentShown(want map[string]string) {
	pl.T.Helper()
	d := pl.daemons["h1"]
	d.Signal(syscall.SIGUSR1)
	fiptest.WaitFor(pl.T, 5*time.Second, "h1's status lines", func() bool { return strings.Count(d.Logs(), "status: ") >= len(pl.vips) })
	for _, v := range pl.vips {
		mac := want[v]
		if mac == fiptest.HostMAC(1) {
			mac = "this node"
		}
		if !strings.Contains(d.Logs(), "status: "+v+" on eth0: ") || !regexp.MustCompile(regexp.QuoteMeta("status: "+v+" on eth0: ")+`[^\n]*assigned to `+regexp.QuoteMeta(mac)).MatchString(d.Logs()) {
			pl.T.Errorf("h1's status does not show %s assigned to %s:\n%s", v, mac, fiptest.LastLines(d.Logs(), 20))
			return
		}
	}
}
