package engine

// The shared addresses' table from the loop's side: its nftables
// transactions take 10 to 20 ms on a busy host, and the VIPs' notices and
// claims must not wait for them.

import (
	"net"
	"net/netip"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"floatip/internal/event"
	"floatip/internal/fiptest"
	"floatip/internal/wire/frame"
)

// SIGTERM or a failing check of a node with VIPs and a shared address: the
// VIPs' release notices do not wait for the shared table's change (an
// nftables transaction, 10 to 20 ms on a busy host: in the chaos run's
// 5 × 16 it held back 15 VIPs' notices by 25 ms), and the shared address's
// own notice still goes after its sets are emptied (else the others take
// its buckets while it serves them).
func TestGroupReleaseVIPNoticesDoNotWaitForTheSharedTable(t *testing.T) {
	for _, tc := range []struct {
		name    string
		release func(g *Group, now time.Time)
		notice  uint8 // the shared address's flag that gives its buckets up
	}{
		{"SIGTERM", func(g *Group, now time.Time) { g.Shutdown(now) }, frame.FlagReleasing},
		{"failing check", func(g *Group, now time.Time) { g.Broadcast(EvUnhealthy, now) }, frame.FlagStandAside},
	} {
		t.Run(tc.name, func(t *testing.T) {
			const vips = 4
			g, lan := newTestGroup(t, "02:00:00:00:00:09", 100, fiptest.VIPs(vips), StartAdopting)
			noticed := &noticeCounter{arpSender: lan, want: vips, all: make(chan struct{})}
			table := &slowEmptyingTable{noticed: noticed.all}
			sender := &sharedNotice{flag: tc.notice, table: table}
			s := NewSharedView(g, SharedConfig{Addrs: []netip.Addr{sharedAddr}, ClusterMAC: func(netip.Addr) net.HardwareAddr { return clusterMAC },
				Buckets: testBuckets, HoldDown: 5 * time.Second, Table: table, Send: sender})
			s.onEvent(EvLinkUp, fiptest.T0)
			now := runGroup(g, lan, fiptest.T0, fiptest.T0.Add(2*time.Second), nil) // nobody answers: all adopted, the buckets served
			if !s.servesAny() {
				t.Fatal("the lone node serves no bucket after 2 s")
			}
			for _, m := range g.machines {
				if m.state != event.Active {
					t.Fatalf("%s not held: %v", m.vip, m.state)
				}
				m.ARP = noticed
			}
			tc.release(g, now)
			if table.waited.Load() {
				t.Error("the VIPs' release notices waited a second for the shared table's change")
			}
			if n := noticed.count.Load(); n != vips {
				t.Errorf("%d VIP release notices, want %d", n, vips)
			}
			switch {
			case !sender.sent:
				t.Error("no notice of the shared address giving its buckets up")
			case sender.servedThen != 0:
				t.Errorf("the shared address gave its buckets up while its table served %d of them", sender.servedThen)
			}
			if s.servesAny() || table.served() != 0 {
				t.Errorf("after the release the table still serves %d buckets", table.served())
			}
		})
	}
}

// noticeCounter is a VIP's wire that counts the release notices and closes
// all at the want-th.
type noticeCounter struct {
	arpSender
	want  int32
	count atomic.Int32
	all   chan struct{}
}

func (n *noticeCounter) Probe(vip netip.Addr, tag frame.Tag, dst net.HardwareAddr) error {
	if tag.Flags&frame.FlagReleasing != 0 && n.count.Add(1) == n.want {
		close(n.all)
	}
	return n.arpSender.Probe(vip, tag, dst)
}

// slowEmptyingTable is a bucket table whose emptying takes until every VIP
// notice is out, or a second (then waited): a change that held the notices
// back would wait it out.
type slowEmptyingTable struct {
	noticed chan struct{}
	waited  atomic.Bool
	mine    atomic.Int32
}

func (c *slowEmptyingTable) Up() error { return nil }
func (c *slowEmptyingTable) SetBuckets(mine, _, _ []int, _ map[int]time.Duration) error {
	if len(mine) == 0 && c.mine.Load() > 0 {
		select {
		case <-c.noticed:
		case <-time.After(time.Second):
			c.waited.Store(true)
		}
	}
	c.mine.Store(int32(len(mine)))
	return nil
}
func (c *slowEmptyingTable) served() int { return int(c.mine.Load()) }

// sharedNotice is the shared view's wire: it keeps what the table served
// when the first frame flagged flag went out.
type sharedNotice struct {
	flag       uint8
	table      *slowEmptyingTable
	sent       bool
	servedThen int
}

func (l *sharedNotice) Probe(_ netip.Addr, tag frame.Tag, _ net.HardwareAddr) error {
	if tag.Flags&l.flag != 0 && !l.sent {
		l.sent, l.servedThen = true, l.table.served()
	}
	return nil
}
func (l *sharedNotice) AnnounceAs(netip.Addr, net.HardwareAddr, frame.AnnounceForm) error { return nil }

// The lease renewal every interval (the same sets) runs off the loop: a
// tick does not wait for it. A change of the sets that comes while it runs
// waits for it, so that the renewal's older sets never land after the
// change's.
func TestSharedRenewalOffTheLoop(t *testing.T) {
	g, lan := newTestGroup(t, "02:00:00:00:00:09", 100, nil, StartAdopting)
	table := &renewalTable{release: make(chan struct{})}
	s := NewSharedView(g, SharedConfig{Addrs: []netip.Addr{sharedAddr}, ClusterMAC: func(netip.Addr) net.HardwareAddr { return clusterMAC },
		Buckets: testBuckets, HoldDown: 5 * time.Second, Table: table, Send: quietWire{}, RenewOffLoop: true})
	s.onEvent(EvLinkUp, fiptest.T0)
	now := runGroup(g, lan, fiptest.T0, fiptest.T0.Add(2*time.Second), nil) // the lone node serves every bucket
	if len(table.calls()) == 0 || !s.servesAny() {
		t.Fatal("the lone node serves no bucket after 2 s")
	}
	table.block.Store(true) // renewals from now on wait for release
	ticked := make(chan struct{})
	go func() {
		now = runGroup(g, lan, now, now.Add(time.Second), nil) // several ticks, each renewing the lease
		close(ticked)
	}()
	select {
	case <-ticked:
	case <-time.After(5 * time.Second):
		close(table.release)
		t.Fatal("the loop waited for the lease renewal")
	}
	renewals := len(table.calls())
	changed := make(chan struct{})
	go func() {
		g.Broadcast(EvUnhealthy, now) // the node stands aside: its sets are emptied
		close(changed)
	}()
	select {
	case <-changed:
		t.Fatal("the change of the sets did not wait for the renewal in flight")
	case <-time.After(50 * time.Millisecond):
	}
	close(table.release)
	<-changed
	// The renewal in flight is done (set, 64 buckets), then the change
	// (none).
	calls := table.calls()
	if len(calls) != renewals+2 || calls[renewals] != testBuckets || calls[renewals+1] != 0 {
		t.Errorf("the table's calls (buckets set) %v: want the %d before, the renewal in flight, then the empty sets", calls, renewals)
	}
}

// renewalTable is a bucket table whose SetBuckets, once block is set,
// waits for release when it gets the sets it has already (a renewal).
type renewalTable struct {
	block   atomic.Bool
	release chan struct{}
	mu      sync.Mutex
	mine    [][]int
}

func (r *renewalTable) Up() error { return nil }
func (r *renewalTable) SetBuckets(mine, _, _ []int, _ map[int]time.Duration) error {
	r.mu.Lock()
	renewal := len(r.mine) > 0 && slices.Equal(r.mine[len(r.mine)-1], mine)
	r.mu.Unlock()
	if renewal && r.block.Load() {
		<-r.release
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	r.mine = append(r.mine, slices.Clone(mine))
	return nil
}

// calls is how many buckets each call set, in order.
func (r *renewalTable) calls() []int {
	r.mu.Lock()
	defer r.mu.Unlock()
	var n []int
	for _, m := range r.mine {
		n = append(n, len(m))
	}
	return n
}

// quietWire is a shared view's wire that sends nothing.
type quietWire struct{}

func (quietWire) Probe(netip.Addr, frame.Tag, net.HardwareAddr) error               { return nil }
func (quietWire) AnnounceAs(netip.Addr, net.HardwareAddr, frame.AnnounceForm) error { return nil }
