package engine

// A simulated LAN of pool nodes (synthetic time) and the tests that run on
// it: failover of a share, rejoin, health, partition heal, orphan fallback.

import (
	"bytes"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"slices"
	"sync"
	"testing"
	"time"

	"floatip/internal/pool"
	"floatip/internal/wire/frame"

	"floatip/internal/fiptest"

	"github.com/mdlayher/arp"
)

// poolNet is a LAN of pool nodes in synthetic time: frames are delivered
// 100 µs after they are sent, a node's kernel answers a probe for a VIP it
// holds (unicast, to the prober only), and a dead node neither sends nor
// receives.
type poolNet struct {
	t       *testing.T
	nodes   []*poolTestNode
	now     time.Time
	pending []poolDelivery
	filter  func(from, to *poolTestNode) bool // nil: every frame gets through
	macs    []string                          // node i's MAC is macs[i-1]; nil: the lab's, fiptest.HostMAC(i)
}

type poolDelivery struct {
	at  time.Time
	to  *poolTestNode
	frm frame.Frame
}

type poolTestNode struct {
	net  *poolNet
	own  net.HardwareAddr
	g    *Group
	held map[netip.Addr]bool
	mu   sync.Mutex // the group removes VIPs concurrently (a failed check, SIGTERM)
	dead bool
	adds int
}

func (n *poolTestNode) MAC() net.HardwareAddr { return n.own }

func (n *poolTestNode) Probe(vip netip.Addr, tag frame.Tag, dst net.HardwareAddr) error {
	if n.dead {
		return nil
	}
	p := &arp.Packet{HardwareType: 1, ProtocolType: 0x0800, HardwareAddrLength: 6, IPLength: 4,
		Operation: arp.OperationRequest, SenderHardwareAddr: n.own, SenderIP: frame.ZeroIPv4, TargetHardwareAddr: tag.HardwareAddr(), TargetIP: vip}
	n.net.send(n, p, dst)
	return nil
}

func (n *poolTestNode) Announce(vip netip.Addr, _ frame.AnnounceForm) error {
	if n.dead {
		return nil
	}
	p := &arp.Packet{HardwareType: 1, ProtocolType: 0x0800, HardwareAddrLength: 6, IPLength: 4,
		Operation: arp.OperationRequest, SenderHardwareAddr: n.own, SenderIP: vip, TargetHardwareAddr: frame.BroadcastMAC, TargetIP: vip}
	n.net.send(n, p, frame.BroadcastMAC)
	return nil
}

type poolTestAddr struct {
	n   *poolTestNode
	vip netip.Addr
}

func (a poolTestAddr) Add() error { a.n.held[a.vip] = true; a.n.adds++; return nil }
func (a poolTestAddr) Remove() error {
	a.n.mu.Lock()
	defer a.n.mu.Unlock()
	delete(a.n.held, a.vip)
	return nil
}

func (pn *poolNet) send(from *poolTestNode, p *arp.Packet, dst net.HardwareAddr) {
	for _, to := range pn.nodes {
		if to == from || to.dead || (!bytes.Equal(dst, frame.BroadcastMAC) && !bytes.Equal(dst, to.own)) ||
			(pn.filter != nil && !pn.filter(from, to)) {
			continue
		}
		pn.pending = append(pn.pending, poolDelivery{pn.now.Add(100 * time.Microsecond), to, frame.Frame{Packet: p}})
		// The receiver's kernel answers a probe for an address it holds.
		if p.SenderIP.IsUnspecified() && to.held[p.TargetIP] {
			// (An IPv6 VIP's facts, as wire.NDPFrame translates them: the same
			// reply with IPv6 addresses.)
			r := &arp.Packet{HardwareType: 1, ProtocolType: 0x0800, HardwareAddrLength: 6, IPLength: 4,
				Operation: arp.OperationReply, SenderHardwareAddr: to.own, SenderIP: p.TargetIP, TargetHardwareAddr: from.own, TargetIP: p.SenderIP}
			pn.pending = append(pn.pending, poolDelivery{pn.now.Add(200 * time.Microsecond), from, frame.Frame{Packet: r}})
		}
	}
}

// addNode starts a pool node at the net's current time.
// newPoolNet starts nodes 1..n of one pool at t0, with the hold-down.
func newPoolNet(t *testing.T, n int, vips []netip.Addr, holdDown time.Duration) *poolNet {
	pn := &poolNet{t: t, now: fiptest.T0}
	for i := 1; i <= n; i++ {
		pn.addNode(i, vips, holdDown)
	}
	return pn
}

func (pn *poolNet) addNode(i int, vips []netip.Addr, holdDown time.Duration) *poolTestNode {
	mac := fiptest.HostMAC(i)
	if pn.macs != nil {
		mac = pn.macs[i-1]
	}
	n := &poolTestNode{net: pn, own: fiptest.MustMAC(mac), held: map[netip.Addr]bool{}}
	cfg := Config{Priority: 100, Interval: ms(200), Misses: 3, AnnounceCount: 3,
		AnnounceSpacing: ms(1100), AnnounceForm: frame.FormRequest, Refresh: 100 * time.Second}
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	n.g = NewGroup(cfg, n, log)
	for _, vip := range vips {
		deps := Deps{Interface: "eth0", Log: log, ARP: n, Address: poolTestAddr{n, vip}, Group: n.g}
		NewMachine(vip, cfg, deps, StartStandby, pn.now)
	}
	NewPoolView(n.g, vips, holdDown)
	n.g.Broadcast(EvLinkUp, pn.now)
	n.g.queue.refresh()
	pn.nodes = append(pn.nodes, n)
	return n
}

// run advances the whole LAN to until.
func (pn *poolNet) run(until time.Time) {
	for {
		var next *poolTestNode
		at := until
		for _, n := range pn.nodes {
			if !n.dead && n.g.Next().Before(at) {
				at, next = n.g.Next(), n
			}
		}
		di := -1
		for i, d := range pn.pending {
			if !d.at.After(at) {
				at, di, next = d.at, i, nil
			}
		}
		if at.After(until) || (next == nil && di < 0) {
			pn.now = until
			return
		}
		if at.After(pn.now) {
			pn.now = at
		}
		if di >= 0 {
			d := pn.pending[di]
			pn.pending = slices.Delete(pn.pending, di, di+1)
			if !d.to.dead {
				d.frm.Received = pn.now
				d.to.g.Dispatch(d.frm, pn.now)
			}
			continue
		}
		next.g.Tick(pn.now)
	}
}

// holders maps each VIP to the nodes that hold it.
func (pn *poolNet) holders() map[netip.Addr][]*poolTestNode {
	h := map[netip.Addr][]*poolTestNode{}
	for _, n := range pn.nodes {
		if n.dead {
			continue
		}
		for v := range n.held {
			h[v] = append(h[v], n)
		}
	}
	return h
}

// checkBalanced fails unless every VIP has one holder and each live node
// holds ⌊M/N⌋ or ⌈M/N⌉.
func (pn *poolNet) checkBalanced(what string, vips []netip.Addr) map[netip.Addr]*poolTestNode {
	pn.t.Helper()
	h := pn.holders()
	live := 0
	for _, n := range pn.nodes {
		if !n.dead {
			live++
		}
	}
	one := map[netip.Addr]*poolTestNode{}
	for _, v := range vips {
		if len(h[v]) != 1 {
			pn.t.Fatalf("%s: %s has %d holders", what, v, len(h[v]))
		}
		one[v] = h[v][0]
	}
	lo, hi := len(vips)/live, (len(vips)+live-1)/live
	for _, n := range pn.nodes {
		if !n.dead && (len(n.held) < lo || len(n.held) > hi) {
			pn.t.Fatalf("%s: %s holds %d VIPs, want %d..%d", what, n.own, len(n.held), lo, hi)
		}
	}
	return one
}

// Five nodes start together: balanced after the hold-down; a node dies:
// its VIPs go to the survivors within the single-VIP failover time, the
// others stay put; it comes back: rebalanced only after its hold-down, make
// before break (never a VIP without a holder); a whole restart puts every
// VIP back where it was.
func TestPoolLANFailoverAndRejoin(t *testing.T) {
	t.Run("IPv4", func(t *testing.T) { testPoolLANFailoverAndRejoin(t, fiptest.VIPs(16)) })
	// A pool of IPv6 VIPs, and a mixed one: the decisions do not depend on
	// the family (wire.NDPFrame hands the machines the same facts).
	v6 := make([]netip.Addr, 16)
	for i := range v6 {
		v6[i] = netip.MustParseAddr(fmt.Sprintf("2001:db8::%x", 0x50+i))
	}
	t.Run("IPv6", func(t *testing.T) { testPoolLANFailoverAndRejoin(t, v6) })
	t.Run("mixed", func(t *testing.T) { testPoolLANFailoverAndRejoin(t, append(fiptest.VIPs(8), v6[:8]...)) })
}

func testPoolLANFailoverAndRejoin(t *testing.T, vips []netip.Addr) {
	pn := newPoolNet(t, 5, vips, 5*time.Second)
	pn.run(fiptest.T0.Add(3 * time.Second))
	if h := pn.holders(); len(h) != 0 {
		t.Fatalf("%d VIPs claimed before the hold-down", len(h))
	}
	pn.run(fiptest.T0.Add(8 * time.Second))
	before := pn.checkBalanced("start", vips)
	want := pool.Assign(vips, poolMembers(5))
	for _, v := range vips {
		if !bytes.Equal(before[v].own, want[v]) {
			t.Errorf("%s held by %s, assigned to %s", v, before[v].own, want[v])
		}
	}

	// h3 dies (no release notice).
	dead := pn.nodes[2]
	dead.dead = true
	death := pn.now
	var lastBack time.Time
	for pn.now.Before(death.Add(3 * time.Second)) {
		pn.run(pn.now.Add(ms(10)))
		if len(pn.holders()) == len(vips) && lastBack.IsZero() {
			lastBack = pn.now
		}
	}
	if lastBack.IsZero() || lastBack.Sub(death) > ms(900) {
		t.Fatalf("the dead node's VIPs were all held again %v after its death, want within 900ms", lastBack.Sub(death))
	}
	t.Logf("share failover: %v", lastBack.Sub(death))
	after := pn.checkBalanced("after the death", vips)
	alive := slices.DeleteFunc(poolMembers(5), func(m pool.Member) bool { return bytes.Equal(m.MAC, dead.own) })
	want4 := pool.Keep(vips, want, alive) // the survivors keep theirs; the dead node's go to the least loaded
	for _, v := range vips {
		if !bytes.Equal(after[v].own, want4[v]) {
			t.Errorf("after the death %s is held by %s, assigned to %s", v, after[v].own, want4[v])
		}
		if before[v] != dead && after[v] != before[v] {
			t.Errorf("%s moved from the live %s to %s", v, before[v].own, after[v].own)
		}
	}

	// h3 comes back (a restart): nothing moves during its hold-down, then
	// it takes its share without a VIP ever being unheld.
	pn.nodes = slices.Delete(pn.nodes, 2, 3)
	back := pn.addNode(3, vips, 5*time.Second)
	start := pn.now
	for pn.now.Before(start.Add(10 * time.Second)) {
		pn.run(pn.now.Add(ms(10)))
		if n := len(pn.holders()); n != len(vips) {
			t.Fatalf("%v after the rejoin only %d VIPs held: a planned move broke before it made", pn.now.Sub(start), n)
		}
		if pn.now.Sub(start) < 5*time.Second && len(back.held) > 0 {
			t.Fatalf("the rejoining node took a VIP %v after its start, inside its hold-down", pn.now.Sub(start))
		}
	}
	final := pn.checkBalanced("after the rejoin", vips)
	for _, v := range vips {
		if final[v] != back && before[v] != dead && final[v].own.String() != before[v].own.String() {
			t.Errorf("%s is on %s, it was on %s before the death", v, final[v].own, before[v].own)
		}
		if !bytes.Equal(final[v].own, want[v]) {
			t.Errorf("after the rejoin %s is on %s, assigned to %s", v, final[v].own, want[v])
		}
	}
}

// A node whose health check fails holds nothing; its share moves.
func TestPoolLANUnhealthyNodeHoldsNothing(t *testing.T) {
	vips := fiptest.VIPs(8)
	pn := newPoolNet(t, 3, vips, 2*time.Second)
	pn.run(fiptest.T0.Add(5 * time.Second))
	pn.checkBalanced("start", vips)
	sick := pn.nodes[0]
	sick.g.Broadcast(EvUnhealthy, pn.now)
	pn.run(pn.now.Add(2 * time.Second))
	if len(sick.held) != 0 {
		t.Fatalf("the unhealthy node holds %d VIPs", len(sick.held))
	}
	h := pn.holders()
	for _, v := range vips {
		if len(h[v]) != 1 {
			t.Fatalf("%s has %d holders after the unhealthy node released", v, len(h[v]))
		}
	}
	for _, n := range pn.nodes[1:] {
		if len(n.held) != 4 {
			t.Errorf("%s holds %d VIPs, want 4", n.own, len(n.held))
		}
	}
}

// A partition heals with VIPs held on both sides: one holder each, the
// assignee's, within a couple of seconds.
func TestPoolLANPartitionHeals(t *testing.T) {
	vips := fiptest.VIPs(16)
	pn := newPoolNet(t, 5, vips, 2*time.Second)
	pn.run(fiptest.T0.Add(5 * time.Second))
	pn.checkBalanced("start", vips)
	// Partition: h1,h2 | h3,h4,h5, by dropping frames between the sides.
	side := func(n *poolTestNode) int { return min(int(n.own[5])-1, 2) / 2 }
	cut := true
	pn.filter = func(from, to *poolTestNode) bool { return !cut || side(from) == side(to) }
	pn.run(pn.now.Add(6 * time.Second))
	for _, side := range [][]*poolTestNode{pn.nodes[:2], pn.nodes[2:]} {
		held := map[netip.Addr]bool{}
		for _, n := range side {
			for v := range n.held {
				held[v] = true
			}
		}
		if len(held) != len(vips) {
			t.Fatalf("a side of the partition holds %d of %d VIPs", len(held), len(vips))
		}
	}
	cut = false
	heal := pn.now
	converged := func() bool {
		h := pn.holders()
		for _, v := range vips {
			if len(h[v]) != 1 {
				return false
			}
		}
		for _, n := range pn.nodes {
			if len(n.held) < 3 || len(n.held) > 4 {
				return false
			}
		}
		return true
	}
	for !converged() && pn.now.Before(heal.Add(2*time.Second)) {
		pn.run(pn.now.Add(ms(10)))
	}
	t.Logf("converged %v after the heal", pn.now.Sub(heal))
	pn.checkBalanced("2s after the heal", vips)
}

// A VIP whose assignee cannot claim it (here: its reference hosts are gone)
// is not left without a holder: after the hold-down and the pool window it is
// claimed by rank, as without --spread.
func TestPoolLANOrphanFallback(t *testing.T) {
	vips := fiptest.VIPs(6)
	pn := newPoolNet(t, 3, vips, 2*time.Second)
	pn.run(fiptest.T0.Add(4 * time.Second))
	pn.checkBalanced("start", vips)
	cut := pn.nodes[0]
	for _, m := range cut.g.machines {
		m.Refs = &fakeRefs{ok: false}
	}
	pn.nodes[1].dead = true
	pn.run(pn.now.Add(2 * time.Second))
	orphans := 0
	for _, v := range vips {
		if len(pn.holders()[v]) == 0 {
			orphans++
		}
	}
	if orphans == 0 {
		t.Fatal("the test needs a VIP assigned to the node that cannot claim")
	}
	pn.run(pn.now.Add(6 * time.Second))
	h := pn.holders()
	for _, v := range vips {
		if len(h[v]) != 1 {
			t.Fatalf("%s has %d holders after the fallback", v, len(h[v]))
		}
	}
}

// poolMembers is lab hosts 1..n at equal weight.
func poolMembers(n int) []pool.Member {
	ms := make([]pool.Member, n)
	for i := range ms {
		ms[i] = pool.Member{MAC: fiptest.MustMAC(fiptest.HostMAC(i + 1)), Weight: 100}
	}
	return ms
}
