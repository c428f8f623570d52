package engine

import (
	"bytes"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"floatip/internal/pool"
	"floatip/internal/wire/frame"

	"floatip/internal/fiptest"

	"floatip/internal/event"

	"github.com/mdlayher/arp"
)

// groupLAN stands in for the ARP socket of a node with many VIPs: it
// records every probe and announcement with its VIP and destination.
type groupLAN struct {
	own       net.HardwareAddr
	probes    []sentProbe
	announced map[netip.Addr]int
	adds      map[netip.Addr]int
	removes   map[netip.Addr]int
	mu        sync.Mutex
}

type sentProbe struct {
	vip netip.Addr
	tag frame.Tag
	dst string
	at  time.Time
}

func (l *groupLAN) MAC() net.HardwareAddr { return l.own }
func (l *groupLAN) Probe(vip netip.Addr, tag frame.Tag, dst net.HardwareAddr) error {
	l.probes = append(l.probes, sentProbe{vip: vip, tag: tag, dst: dst.String()})
	return nil
}
func (l *groupLAN) Announce(vip netip.Addr, _ frame.AnnounceForm) error {
	l.announced[vip]++
	return nil
}

// groupAddr is one VIP's address on the fake node.
type groupAddr struct {
	lan *groupLAN
	vip netip.Addr
}

func (a groupAddr) Add() error { a.lan.adds[a.vip]++; return nil }
func (a groupAddr) Remove() error {
	a.lan.mu.Lock() // Group.Shutdown removes the VIPs concurrently
	defer a.lan.mu.Unlock()
	a.lan.removes[a.vip]++
	return nil
}

// newTestGroup builds a node with one machine per VIP sharing a group.
func newTestGroup(t *testing.T, own string, priority uint8, vips []netip.Addr, start Start) (*Group, *groupLAN) {
	t.Helper()
	lan := &groupLAN{own: fiptest.MustMAC(own), announced: map[netip.Addr]int{}, adds: map[netip.Addr]int{}, removes: map[netip.Addr]int{}}
	cfg := Config{Priority: priority, Interval: ms(200), Misses: 3, AnnounceCount: 3,
		AnnounceSpacing: ms(1100), AnnounceForm: frame.FormRequest, Refresh: 100 * time.Second}
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	g := NewGroup(cfg, lan, log)
	for _, vip := range vips {
		deps := Deps{Interface: "eth0", Log: log, ARP: lan, Address: groupAddr{lan, vip}, Group: g}
		NewMachine(vip, cfg, deps, start, fiptest.T0)
	}
	g.Broadcast(EvLinkUp, fiptest.T0)
	return g, lan
}

// runGroup drives the group's loop from now to until; after every tick,
// respond may answer each probe sent in it (the holder's kernel).
func runGroup(g *Group, lan *groupLAN, now, until time.Time, respond func(p sentProbe) *frame.Frame) time.Time {
	seen := len(lan.probes)
	return driveGroup(g, now, until, func(now time.Time) {
		for ; seen < len(lan.probes); seen++ {
			lan.probes[seen].at = now
			if respond == nil {
				continue
			}
			if f := respond(lan.probes[seen]); f != nil {
				g.Dispatch(*f, now.Add(ms(1)))
			}
		}
	})
}

func replyFor(mac string, vip netip.Addr) *frame.Frame {
	return arpFrame(arp.OperationReply, mac, vip, "02:00:00:00:00:09", frame.ZeroIPv4)
}

const holderMAC = "02:00:00:00:00:01"

// A standby of many VIPs checks their holder once per interval, not every
// VIP every interval, and still checks each VIP in turn.
func TestGroupStandbyProbesTheHolderNotEveryVIP(t *testing.T) {
	vips := fiptest.VIPs(64)
	g, lan := newTestGroup(t, "02:00:00:00:00:09", 100, vips, StartStandby)
	answer := func(p sentProbe) *frame.Frame { return replyFor(holderMAC, p.vip) }
	runGroup(g, lan, fiptest.T0, fiptest.T0.Add(time.Minute), answer)

	perVIP := map[netip.Addr]int{}
	for _, p := range lan.probes {
		perVIP[p.vip]++
	}
	// Discovery: one probe per VIP at start; then one per interval.
	if max := 64 + int(time.Minute/ms(200)) + 5; len(lan.probes) > max {
		t.Errorf("%d probes in a minute for 64 VIPs of one holder, want at most %d", len(lan.probes), max)
	}
	for _, vip := range vips {
		// 300 probes in turn over 64 VIPs: each checked 4 or 5 times.
		if perVIP[vip] < 4 {
			t.Errorf("%s probed %d times in a minute: the holder no longer checks it", vip, perVIP[vip])
		}
	}
	for _, vip := range vips {
		if lan.adds[vip] != 0 {
			t.Fatalf("claimed %s from a live holder", vip)
		}
	}
	unicast := 0
	for _, p := range lan.probes[64:] {
		if p.dst == holderMAC {
			unicast++
		}
	}
	if unicast < len(lan.probes[64:])-2 {
		t.Errorf("only %d of %d steady-state probes went unicast to the holder", unicast, len(lan.probes)-64)
	}
}

// When the holder dies, all its VIPs are claimed within the single-VIP
// failover time, without a claim probe per VIP.
func TestGroupHolderDeathFreesEveryVIP(t *testing.T) {
	vips := fiptest.VIPs(256)
	g, lan := newTestGroup(t, "02:00:00:00:00:09", 100, vips, StartStandby)
	death := fiptest.T0.Add(10 * time.Second)
	now := runGroup(g, lan, fiptest.T0, death, func(p sentProbe) *frame.Frame { return replyFor(holderMAC, p.vip) })
	before := len(lan.probes)
	runGroup(g, lan, now, death.Add(ms(799)), nil)
	for _, vip := range vips {
		if lan.adds[vip] != 1 || g.machines[vip].state != event.Active {
			t.Fatalf("%s: state %v, adds %d, 800 ms after its holder died (dead time 600 ms + claim check + pacing)",
				vip, g.machines[vip].state, lan.adds[vip])
		}
		if lan.announced[vip] != 1 {
			t.Errorf("%s announced %d times", vip, lan.announced[vip])
		}
	}
	// The dead time's fast re-probes, one claim check, one introduction.
	if sent := len(lan.probes) - before; sent > 20 {
		t.Errorf("%d probes between the death and the claims of 256 VIPs, want a handful", sent)
	}
}

// A holder that is alive but no longer answers for one VIP (it released it
// silently) loses only that VIP, once the watch reaches it in turn.
func TestGroupOneVIPGoneWhileTheHolderLives(t *testing.T) {
	vips := fiptest.VIPs(16)
	gone := vips[5]
	g, lan := newTestGroup(t, "02:00:00:00:00:09", 100, vips, StartStandby)
	from := fiptest.T0.Add(5 * time.Second)
	runGroup(g, lan, fiptest.T0, from.Add(16*ms(200)+5*time.Second), func(p sentProbe) *frame.Frame {
		if p.vip == gone && p.at.After(from) {
			return nil
		}
		return replyFor(holderMAC, p.vip)
	})
	for _, vip := range vips {
		want := 0
		if vip == gone {
			want = 1
		}
		if lan.adds[vip] != want {
			t.Errorf("%s claimed %d times, want %d", vip, lan.adds[vip], want)
		}
	}
}

// A holder of many VIPs self-checks one per selfCheckEvery, in turn.
func TestGroupHolderSelfChecksInTurn(t *testing.T) {
	vips := fiptest.VIPs(64)
	g, lan := newTestGroup(t, "02:00:00:00:00:09", 100, vips, StartAdopting)
	runGroup(g, lan, fiptest.T0, fiptest.T0.Add(time.Minute), nil)
	checks := map[netip.Addr]int{}
	n := 0
	for _, p := range lan.probes {
		if p.tag.Flags&frame.FlagHolder != 0 && p.dst == frame.BroadcastMAC.String() {
			checks[p.vip]++
			n++
		}
	}
	// One introduction on adoption, then one per 1.1 s.
	if want := int(time.Minute/selfCheckEvery) + 2; n > want {
		t.Errorf("%d self-checks in a minute for 64 VIPs, want at most %d (the cost of one VIP)", n, want)
	}
	if len(checks) < 50 {
		t.Errorf("only %d of 64 VIPs self-checked in a minute: the rotation is stuck", len(checks))
	}
}

// A split brain found on one VIP makes the holder check every VIP it holds
// against that node at once, paced.
func TestGroupReconcileChecksEveryHeldVIP(t *testing.T) {
	vips := fiptest.VIPs(64)
	g, lan := newTestGroup(t, "02:00:00:00:00:09", 200, vips, StartAdopting)
	now := runGroup(g, lan, fiptest.T0, fiptest.T0.Add(6*time.Second), nil)
	other := "02:00:00:00:00:07"
	// The other node shows that it holds one of our VIPs (a holder's
	// self-check, then its kernel's answer to ours: a floatip node heard
	// twice).
	before := len(lan.probes)
	g.Dispatch(*arpFrame(arp.OperationRequest, other, frame.ZeroIPv4, frame.Tag{Priority: 100, Flags: frame.FlagHolder}.HardwareAddr().String(), vips[3]), now)
	g.Dispatch(*replyFor(other, vips[3]), now)
	runGroup(g, lan, now, now.Add(ms(200)), nil)
	to := map[netip.Addr]bool{}
	for _, p := range lan.probes[before:] {
		if p.dst == other && p.tag.Flags&frame.FlagHolder != 0 {
			to[p.vip] = true
		}
	}
	if len(to) != len(vips) {
		t.Errorf("reconcile checked %d of %d held VIPs against the other holder within 200 ms", len(to), len(vips))
	}
	// Not again at once: rate-limited per node.
	before = len(lan.probes)
	g.Dispatch(*arpFrame(arp.OperationRequest, other, frame.ZeroIPv4, frame.Tag{Priority: 100, Flags: frame.FlagHolder}.HardwareAddr().String(), vips[4]), now.Add(ms(300)))
	runGroup(g, lan, now.Add(ms(300)), now.Add(ms(600)), nil)
	if n := len(lan.probes) - before; n > 2 {
		t.Errorf("a second reconcile right away sent %d probes", n)
	}
}

func TestPacer(t *testing.T) {
	p := pacer{rate: 1000, burst: 4}
	for i := range 4 {
		if !p.take(fiptest.T0) {
			t.Fatalf("token %d of the burst refused", i)
		}
	}
	if p.take(fiptest.T0) {
		t.Fatal("took more than the burst at once")
	}
	if next := p.nextToken(fiptest.T0); next != fiptest.T0.Add(time.Millisecond) {
		t.Errorf("next token at %v, want 1 ms later", next.Sub(fiptest.T0))
	}
	if !p.take(fiptest.T0.Add(time.Millisecond)) {
		t.Error("no token after 1 ms at 1000/s")
	}
	if !p.take(fiptest.T0.Add(time.Hour)) || !p.take(fiptest.T0.Add(time.Hour)) || !p.take(fiptest.T0.Add(time.Hour)) || !p.take(fiptest.T0.Add(time.Hour)) || p.take(fiptest.T0.Add(time.Hour)) {
		t.Error("the bucket does not fill up to the burst (and no more) after a long pause")
	}
}

func TestWakeQueueOrder(t *testing.T) {
	q := &wakeQueue{}
	items := make([]*fakeScheduled, 5)
	for i := range items {
		items[i] = &fakeScheduled{name: fmt.Sprint(i), at: fiptest.T0.Add(time.Duration(5-i) * time.Second), slot: -1}
		q.push(items[i])
	}
	if q.next() != fiptest.T0.Add(time.Second) {
		t.Fatalf("next %v", q.next().Sub(fiptest.T0))
	}
	q.remove(items[4])
	items[0].at = fiptest.T0.Add(ms(500))
	q.fix(items[0])
	due := q.due(fiptest.T0.Add(2 * time.Second))
	if len(due) != 2 || due[0] != items[0] || due[1] != items[3] {
		t.Fatalf("due: %v", due)
	}
}

type fakeScheduled struct {
	name string
	at   time.Time
	slot int
}

func (f *fakeScheduled) nextWake() time.Time { return f.at }
func (f *fakeScheduled) onTick(time.Time)    {}
func (f *fakeScheduled) queueSlot() *int     { return &f.slot }
func (f *fakeScheduled) String() string      { return f.name }

// Preemption still works per VIP when the holder's watch does the probing:
// after --preempt-delay every VIP of a lower-ranked holder is taken over.
func TestGroupPreemptsEveryVIP(t *testing.T) {
	vips := fiptest.VIPs(32)
	lan := &groupLAN{own: fiptest.MustMAC("02:00:00:00:00:09"), announced: map[netip.Addr]int{}, adds: map[netip.Addr]int{}, removes: map[netip.Addr]int{}}
	cfg := Config{Priority: 200, Interval: ms(200), Misses: 3, AnnounceCount: 3,
		AnnounceSpacing: ms(1100), AnnounceForm: frame.FormRequest, Refresh: 100 * time.Second,
		Preempt: true, PreemptDelay: 5 * time.Second}
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	g := NewGroup(cfg, lan, log)
	for _, vip := range vips {
		NewMachine(vip, cfg, Deps{Interface: "eth0", Log: log, ARP: lan, Address: groupAddr{lan, vip}, Group: g}, StartStandby, fiptest.T0)
	}
	g.Broadcast(EvLinkUp, fiptest.T0)
	lower := "02:00:00:00:00:01"
	// The lower-ranked holder introduces itself, then answers every probe.
	g.Dispatch(*arpFrame(arp.OperationRequest, lower, frame.ZeroIPv4, frame.Tag{Priority: 100, Flags: frame.FlagHolder}.HardwareAddr().String(), vips[0]), fiptest.T0)
	answer := func(p sentProbe) *frame.Frame { return replyFor(lower, p.vip) }
	now := runGroup(g, lan, fiptest.T0, fiptest.T0.Add(4*time.Second), answer)
	for _, vip := range vips {
		if lan.adds[vip] != 0 {
			t.Fatalf("%s taken before the preempt delay", vip)
		}
	}
	runGroup(g, lan, now, fiptest.T0.Add(7*time.Second), answer)
	for _, vip := range vips {
		if lan.adds[vip] != 1 || g.machines[vip].state != event.Active {
			t.Errorf("%s: adds %d, state %v after the preempt delay", vip, lan.adds[vip], g.machines[vip].state)
		}
	}
}

// A standby that left a dead holder's VIPs to a better standby must not
// keep the watch's claim check: when the new holder later releases a VIP,
// it checks on its own (a broadcast claim probe that the other standbys
// hear) instead of claiming at once. Claiming at once made every standby
// in that situation take the VIP together (chaos run, 5 hosts × 16 VIPs).
func TestGroupReleaseAfterALeftClaimChecksAgain(t *testing.T) {
	vips := fiptest.VIPs(2)
	g, lan := newTestGroup(t, "02:00:00:00:00:09", 100, vips, StartStandby)
	const better = "02:00:00:00:00:03"
	death := fiptest.T0.Add(10 * time.Second)
	now := runGroup(g, lan, fiptest.T0, death, func(p sentProbe) *frame.Frame { return replyFor(holderMAC, p.vip) })
	// The better standby's broadcast probes while it suspects the holder too.
	for at := death.Add(ms(250)); at.Before(death.Add(ms(900))); at = at.Add(ms(100)) {
		now = runGroup(g, lan, now, at, nil)
		g.Dispatch(*arpFrame(arp.OperationRequest, better, frame.ZeroIPv4, frame.Tag{Priority: 200}.HardwareAddr().String(), vips[0]), now)
	}
	now = runGroup(g, lan, now, death.Add(ms(950)), nil)
	for _, vip := range vips {
		if lan.adds[vip] != 0 {
			t.Fatalf("%s claimed although a better standby was alive", vip)
		}
	}
	// The better standby claims and announces; then holds for a while.
	for _, vip := range vips {
		g.Dispatch(*arpFrame(arp.OperationRequest, better, vip, "00:00:00:00:00:00", vip), now)
	}
	now = runGroup(g, lan, now, now.Add(3*time.Second), func(p sentProbe) *frame.Frame { return replyFor(better, p.vip) })
	if g.machines[vips[0]].watchCheckFresh(now) {
		t.Fatal("the watch's claim check is still taken as fresh seconds later")
	}
	// It releases vips[0] with a notice.
	g.Dispatch(*arpFrame(arp.OperationRequest, better, frame.ZeroIPv4, frame.Tag{Priority: 200, Flags: frame.FlagReleasing}.HardwareAddr().String(), vips[0]), now)
	before := len(lan.probes)
	runGroup(g, lan, now, now.Add(ms(5)), func(p sentProbe) *frame.Frame {
		if p.vip == vips[0] {
			return nil
		}
		return replyFor(better, p.vip)
	})
	m := g.machines[vips[0]]
	if m.state != event.Claiming || lan.adds[vips[0]] != 0 {
		t.Fatalf("after the release notice: state %v, adds %d; want a claim check first (claiming, no add)", m.state, lan.adds[vips[0]])
	}
	claimProbe := false
	for _, p := range lan.probes[before:] {
		claimProbe = claimProbe || (p.vip == vips[0] && p.dst == frame.BroadcastMAC.String() && p.tag.Flags == 0)
	}
	if !claimProbe {
		t.Error("no broadcast claim probe after the release notice")
	}
}

// A VIP added by hand on a standby is checked as a copy found at start: it
// is removed when another node holds the VIP, and adopted when nobody does.
func TestGroupVIPAddedByHandOnAStandby(t *testing.T) {
	vips := fiptest.VIPs(2)
	t.Run("held elsewhere", func(t *testing.T) {
		g, lan := newTestGroup(t, "02:00:00:00:00:09", 100, vips, StartStandby)
		answer := func(p sentProbe) *frame.Frame { return replyFor(holderMAC, p.vip) }
		now := runGroup(g, lan, fiptest.T0, fiptest.T0.Add(5*time.Second), answer)
		g.EventFor(vips[1], EvAddrAdded, now)
		if m := g.machines[vips[1]]; m.state != event.Adopting {
			t.Fatalf("after the VIP was added by hand: state %v, want adopting", m.state)
		}
		runGroup(g, lan, now, now.Add(time.Second), answer)
		m := g.machines[vips[1]]
		if lan.removes[vips[1]] != 1 || m.state != event.Standby || m.added {
			t.Errorf("held by %s: removes %d, state %v, added %v; want the copy removed and a standby", holderMAC, lan.removes[vips[1]], m.state, m.added)
		}
		if lan.announced[vips[1]] != 0 || lan.removes[vips[0]] != 0 || g.machines[vips[0]].state != event.Standby {
			t.Errorf("announced the stale copy, or touched the other VIP")
		}
	})
	t.Run("held by nobody", func(t *testing.T) {
		g, lan := newTestGroup(t, "02:00:00:00:00:09", 100, vips, StartStandby)
		now := runGroup(g, lan, fiptest.T0, fiptest.T0.Add(ms(300)), nil) // before its own dead time
		g.EventFor(vips[0], EvAddrAdded, now)
		runGroup(g, lan, now, now.Add(2*time.Second), nil)
		m := g.machines[vips[0]]
		if m.state != event.Active || lan.removes[vips[0]] != 0 || lan.adds[vips[0]] != 0 || lan.announced[vips[0]] == 0 {
			t.Errorf("nobody holds it: state %v, adds %d, removes %d, announced %d; want it adopted (active, announced, not added again)",
				m.state, lan.adds[vips[0]], lan.removes[vips[0]], lan.announced[vips[0]])
		}
	})
	t.Run("our own add", func(t *testing.T) {
		g, lan := newTestGroup(t, "02:00:00:00:00:09", 100, vips, StartStandby)
		now := runGroup(g, lan, fiptest.T0, fiptest.T0.Add(2*time.Second), nil)
		if m := g.machines[vips[0]]; m.state != event.Active {
			t.Fatalf("setup: state %v, want active", m.state)
		}
		g.EventFor(vips[0], EvAddrAdded, now) // the netlink echo of our claim
		if m := g.machines[vips[0]]; m.state != event.Active {
			t.Errorf("the echo of our own add moved the holder to %v", m.state)
		}
	})
}

// AllStandby decides which frames wait for the next wake-up (internal/wire/routine.go):
// it must be false whenever a VIP is anything but a standby, also for a
// VIP adopted at start, and true again once every VIP is back in standby.
func TestGroupAllStandbyCountsAdoptedVIPs(t *testing.T) {
	vips := fiptest.VIPs(2)
	g, lan := newTestGroup(t, "02:00:00:00:00:09", 100, vips, StartAdopting)
	if g.AllStandby() {
		t.Fatal("two VIPs adopting, and allStandby says every VIP is in standby")
	}
	now := runGroup(g, lan, fiptest.T0, fiptest.T0.Add(2*time.Second), nil) // nobody answers: both adopted
	if g.machines[vips[0]].state != event.Active || g.AllStandby() {
		t.Fatalf("adopted: state %v, allStandby %v", g.machines[vips[0]].state, g.AllStandby())
	}
	for _, m := range g.machines {
		m.Shutdown(now)
	}
	if !g.AllStandby() || g.notStandby != 0 {
		t.Errorf("every VIP released: allStandby %v, notStandby %d", g.AllStandby(), g.notStandby)
	}
}

// The group's facts for `floatip status`, read from a real group driven
// with synthetic time.
func TestGroupFacts(t *testing.T) {
	vips := fiptest.VIPs(3)
	g, lan := newTestGroup(t, "02:00:00:00:00:09", 150, vips, StartStandby)
	// The holder (priority 200, heard through its tags) answers for the
	// first VIP only: this node claims the others.
	holder := fiptest.MustMAC(holderMAC)
	g.peers.observe(holder, frame.Tag{Priority: 200}, fiptest.T0)
	g.peers.observe(holder, frame.Tag{Priority: 200}, fiptest.T0)
	runGroup(g, lan, fiptest.T0, fiptest.T0.Add(5*time.Second), func(p sentProbe) *frame.Frame {
		if p.vip == vips[0] {
			return replyFor(holderMAC, p.vip)
		}
		return nil
	})
	if m := g.machines[vips[0]]; m.state != event.Standby {
		t.Fatalf("setup: the first VIP is %v, want standby", m.state)
	}
	p := NewPoolView(g, vips, time.Second)
	p.members = []pool.Member{{MAC: holder, Weight: 200}, {MAC: lan.own, Weight: 150}}

	f := g.Facts()
	if !bytes.Equal(f.MAC, lan.own) || f.Priority != 150 || !f.Healthy || !f.Pool {
		t.Errorf("node: %+v", f)
	}
	if len(f.Peers) != 1 || !bytes.Equal(f.Peers[0].MAC, holder) || f.Peers[0].Priority != 200 || f.Peers[0].StandAside || !f.Peers[0].LastHeard.Equal(fiptest.T0) {
		t.Errorf("peers: %+v", f.Peers)
	}
	if len(f.Members) != 2 || f.Priorities[holderMAC] != 200 {
		t.Errorf("members %+v, priorities %v", f.Members, f.Priorities)
	}
}

// barrierAddr's Remove returns only once every VIP's Remove has begun, or
// after a second: removals done one after another would each wait it out.
type barrierAddr struct {
	started *sync.WaitGroup
	waited  *atomic.Int32 // removals that gave up waiting
}

func (barrierAddr) Add() error { return nil }
func (a barrierAddr) Remove() error {
	a.started.Done()
	done := make(chan struct{})
	go func() { a.started.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(time.Second):
		a.waited.Add(1)
	}
	return nil
}

// SIGTERM and a failing health check remove the VIPs a node holds all at
// once (each removal resets the VIP's connections: a few milliseconds), not
// one after another: the 16th VIP is handed over as soon as the first (one
// after another, a failing check's 16th went 140 ms after the first in the
// chaos run's 5 × 16).
func TestGroupReleaseRemovesTheVIPsAtOnce(t *testing.T) {
	for _, tc := range []struct {
		name    string
		release func(g *Group, now time.Time)
	}{
		{"SIGTERM", func(g *Group, now time.Time) { g.Shutdown(now) }},
		{"failing check", func(g *Group, now time.Time) { g.Broadcast(EvUnhealthy, now) }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			g, lan := newTestGroup(t, "02:00:00:00:00:09", 100, fiptest.VIPs(16), StartAdopting)
			now := runGroup(g, lan, fiptest.T0, fiptest.T0.Add(2*time.Second), nil) // nobody answers: all adopted
			var started sync.WaitGroup
			var waited atomic.Int32
			for _, m := range g.machines {
				if m.state != event.Active {
					t.Fatalf("%s not held: %v", m.vip, m.state)
				}
				started.Add(1)
				m.Address = barrierAddr{&started, &waited}
			}
			probes := len(lan.probes)
			tc.release(g, now)
			if n := waited.Load(); n > 0 {
				t.Errorf("%d of 16 removals waited for the others a whole second: removed one after another", n)
			}
			released := 0
			for _, p := range lan.probes[probes:] {
				if p.tag.Flags&frame.FlagReleasing != 0 {
					released++
				}
			}
			for _, m := range g.machines {
				if m.added || m.state != event.Standby {
					t.Errorf("%s after the release: added %v, state %v", m.vip, m.added, m.state)
				}
			}
			if released != 16 {
				t.Errorf("%d release notices, want 16", released)
			}
		})
	}
}
