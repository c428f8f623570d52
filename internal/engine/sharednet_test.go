package engine

// A simulated LAN of nodes serving one shared address, in synthetic time:
// frames delivered 100 µs after they are sent, each node's table with the
// lease of the real one; shared_test.go runs it.

import (
	"bytes"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"slices"
	"testing"
	"time"

	"floatip/internal/fiptest"
	"floatip/internal/wire/frame"

	"github.com/mdlayher/arp"
)

var (
	sharedAddr = netip.MustParseAddr("192.0.2.80")
	clusterMAC = net.HardwareAddr{0x01, 0x00, 0x5e, 0x00, 0x02, 0x50}
)

const testBuckets = 64

type sharedNet struct {
	t       *testing.T
	now     time.Time
	nodes   []*sharedTestNode
	pending []poolDelivery2
	drain   time.Duration
	// lost, when set, drops the frames it reports true for (loss on a
	// node's port).
	lost func(from, to *sharedTestNode) bool
	// delay, when set, adds to a frame's delivery time.
	delay func(from, to *sharedTestNode) time.Duration
}

type poolDelivery2 struct {
	at  time.Time
	to  *sharedTestNode
	frm frame.Frame
}

type sharedTestNode struct {
	net       *sharedNet
	own       net.HardwareAddr
	g         *Group
	s         *SharedView
	dead      bool
	paused    bool      // SIGSTOP: sends, ticks and takes nothing; frames wait
	setAt     time.Time // last SetBuckets: the table's lease runs from it
	lastProbe time.Time
	expireAt  map[int]time.Time // buckets of mine that the table stops serving then
	mine      []int
	draining  []int
	incoming  []int
	announces int
	ups       int
}

func (n *sharedTestNode) MAC() net.HardwareAddr { return n.own }

func (n *sharedTestNode) Probe(vip netip.Addr, tag frame.Tag, dst net.HardwareAddr) error {
	if n.dead || n.paused {
		return nil
	}
	if tag.Flags&frame.FlagReleasing != 0 && len(n.mine)+len(n.draining) > 0 {
		// The others take its buckets as soon as they hear this.
		n.net.t.Errorf("%s sent its release notice while it still served %v / %v", n.own, n.mine, n.draining)
	}
	if tag.Flags&frame.FlagStandAside != 0 && len(n.mine) > 0 {
		n.net.t.Errorf("%s said it stands aside while it still served %v", n.own, n.mine)
	}
	n.lastProbe = n.net.now
	p := &arp.Packet{HardwareType: 1, ProtocolType: 0x0800, HardwareAddrLength: 6, IPLength: 4,
		Operation: arp.OperationRequest, SenderHardwareAddr: n.own, SenderIP: frame.ZeroIPv4, TargetHardwareAddr: tag.HardwareAddr(), TargetIP: vip}
	for _, to := range n.net.nodes {
		if n.net.lost != nil && n.net.lost(n, to) {
			continue
		}
		if to != n && !to.dead && (bytes.Equal(dst, clusterMAC) || bytes.Equal(dst, frame.BroadcastMAC)) {
			at := n.net.now.Add(100 * time.Microsecond)
			if n.net.delay != nil {
				at = at.Add(n.net.delay(n, to))
			}
			n.net.pending = append(n.net.pending, poolDelivery2{at, to, frame.Frame{Packet: p}})
		}
	}
	return nil
}

func (n *sharedTestNode) Announce(netip.Addr, frame.AnnounceForm) error { return nil }

func (n *sharedTestNode) AnnounceAs(_ netip.Addr, mac net.HardwareAddr, _ frame.AnnounceForm) error {
	if !bytes.Equal(mac, clusterMAC) {
		n.net.t.Errorf("%s announced %s, not the cluster MAC", n.own, mac)
	}
	n.announces++
	return nil
}

func (n *sharedTestNode) Up() error { n.ups++; return nil }

func (n *sharedTestNode) SetBuckets(mine, draining, incoming []int, expire map[int]time.Duration) error {
	for _, b := range incoming {
		if !slices.Contains(mine, b) {
			n.net.t.Errorf("%s: incoming bucket %d is not one of its own", n.own, b)
		}
	}
	n.mine, n.draining, n.incoming = slices.Clone(mine), slices.Clone(draining), slices.Clone(incoming)
	n.setAt = n.net.now
	n.expireAt = map[int]time.Time{}
	for b, d := range expire {
		n.expireAt[b] = n.net.now.Add(d)
	}
	return nil
}

func newSharedNet(t *testing.T, n int, drain time.Duration) *sharedNet {
	sn := &sharedNet{t: t, now: fiptest.T0, drain: drain}
	for i := 1; i <= n; i++ {
		sn.addNode(i)
	}
	return sn
}

func (sn *sharedNet) addNode(i int) *sharedTestNode {
	n := &sharedTestNode{net: sn, own: fiptest.MustMAC(fiptest.HostMAC(i))}
	cfg := Config{Priority: 100, Interval: ms(200), Misses: 3, AnnounceCount: 3,
		AnnounceSpacing: ms(1100), AnnounceForm: frame.FormRequest}
	var w io.Writer = io.Discard
	if testing.Verbose() {
		w = os.Stderr
	}
	n.g = NewGroup(cfg, n, slog.New(slog.NewTextHandler(w, nil)).With("node", i))
	n.s = NewSharedView(n.g, SharedConfig{Addrs: []netip.Addr{sharedAddr}, ClusterMAC: func(netip.Addr) net.HardwareAddr { return clusterMAC },
		Buckets: testBuckets, HoldDown: 5 * time.Second, Drain: sn.drain, Table: n, Send: n})
	n.g.Start(nil, sn.now)
	n.g.Broadcast(EvLinkUp, sn.now)
	sn.nodes = append(sn.nodes, n)
	return n
}

// run advances the LAN to until; check runs after every step.
func (sn *sharedNet) run(until time.Time, check func(now time.Time)) {
	for steps := 0; ; steps++ {
		if steps > 1e6 {
			sn.t.Fatalf("%s: the LAN does not get to %s", sn.now.Sub(fiptest.T0), until.Sub(fiptest.T0))
		}
		next := until
		for _, n := range sn.nodes {
			if !n.dead && !n.paused {
				if w := n.g.Next(); w.Before(next) {
					next = w
				}
			}
		}
		for _, d := range sn.pending {
			if d.at.Before(next) && !d.to.paused {
				next = d.at
			}
		}
		if next.After(until) || next.Equal(until) && len(sn.pending) == 0 {
			sn.now = until
			return
		}
		if next.After(sn.now) {
			sn.now = next
		}
		var later []poolDelivery2
		due := sn.pending
		sn.pending = nil
		for _, d := range due {
			if d.at.After(sn.now) || d.to.paused {
				later = append(later, d)
			} else if !d.to.dead {
				d.to.g.Dispatch(d.frm, sn.now)
			}
		}
		sn.pending = append(later, sn.pending...)
		for _, n := range sn.nodes {
			if !n.dead && !n.paused && !n.g.Next().After(sn.now) {
				n.g.Tick(sn.now)
				if !n.g.Next().After(sn.now) {
					// The daemon's loop would spin.
					sn.t.Fatalf("%s: %s wants to run again at once after a tick", sn.now.Sub(fiptest.T0), n.own)
				}
			}
		}
		if check != nil {
			check(sn.now)
		}
		if sn.now.Equal(until) {
			return
		}
	}
}

// owners lists the nodes serving new flows of each bucket.
func (sn *sharedNet) owners() map[int][]*sharedTestNode {
	o := map[int][]*sharedTestNode{}
	for _, n := range sn.nodes {
		if n.dead || sn.now.Sub(n.setAt) > ms(600) { // the table's lease ran out
			continue
		}
		for _, b := range n.mine {
			if e, ok := n.expireAt[b]; ok && sn.now.After(e) {
				continue // given by plan: the table let it go
			}
			o[b] = append(o[b], n)
		}
	}
	return o
}

// neverTwo fails the test when a bucket is served by two live nodes.
func (sn *sharedNet) neverTwo(now time.Time) {
	for b, ns := range sn.owners() {
		if len(ns) > 1 {
			var who []string
			for _, n := range ns {
				who = append(who, n.own.String())
			}
			sn.t.Fatalf("%s: bucket %d served by %d nodes: %v", now.Sub(fiptest.T0), b, len(ns), who)
		}
	}
}

// balanced fails unless every bucket has one live owner and each live
// node ⌊B/N⌋..⌈B/N⌉.
func (sn *sharedNet) balanced(what string) {
	sn.t.Helper()
	o := sn.owners()
	if len(o) != testBuckets {
		sn.t.Fatalf("%s: %d of %d buckets served", what, len(o), testBuckets)
	}
	live := 0
	for _, n := range sn.nodes {
		if !n.dead {
			live++
		}
	}
	for _, n := range sn.nodes {
		if !n.dead && (len(n.mine) < testBuckets/live || len(n.mine) > (testBuckets+live-1)/live) {
			sn.t.Fatalf("%s: %s serves %d buckets, want %d..%d", what, n.own, len(n.mine), testBuckets/live, (testBuckets+live-1)/live)
		}
	}
}

func (sn *sharedNet) at(d time.Duration) time.Time { return fiptest.T0.Add(d) }

// standAside makes n's health check fail now and pass again at until.
func (sn *sharedNet) standAside(n *sharedTestNode, until time.Time) {
	n.g.Broadcast(EvUnhealthy, sn.now)
	sn.run(until, sn.neverTwo)
	n.g.Broadcast(EvHealthy, sn.now)
}

// joinedAgain runs the LAN until n counts itself a member (at most 10 s),
// and returns that moment.
func (sn *sharedNet) joinedAgain(n *sharedTestNode) time.Time {
	for end := sn.now.Add(10 * time.Second); !n.s.isSelfMember() && sn.now.Before(end); {
		sn.run(sn.now.Add(ms(1)), nil)
	}
	if !n.s.isSelfMember() {
		sn.t.Fatalf("%s never joined again", n.own)
	}
	return sn.now
}

// gaps follows, step by step, how long each bucket has been served by
// nobody; longest is the longest such stretch seen.
type gaps struct {
	sn      *sharedNet
	skip    func(bucket int) bool // buckets not followed
	since   map[int]time.Time
	longest time.Duration
	bucket  int
}

func (sn *sharedNet) gaps() *gaps { return &gaps{sn: sn, since: map[int]time.Time{}} }

func (g *gaps) check(now time.Time) {
	o := g.sn.owners()
	for b := range testBuckets {
		if len(o[b]) > 0 || g.skip != nil && g.skip(b) {
			delete(g.since, b)
			continue
		}
		if _, ok := g.since[b]; !ok {
			g.since[b] = now
		}
		if d := now.Sub(g.since[b]); d > g.longest {
			g.longest, g.bucket = d, b
		}
	}
}

// over says which bucket went unserved for longer than limit, if one did.
func (g *gaps) over(limit time.Duration) error {
	if g.longest > limit {
		return fmt.Errorf("bucket %d served by nobody for %v (limit %v)", g.bucket, g.longest, limit)
	}
	return nil
}
