package main

import (
	"bytes"
	"context"
	"errors"
	"io"
	"log/slog"
	"math/rand/v2"
	"net"
	"net/netip"
	"testing"
	"time"

	"floatip/internal/wire"

	"floatip/internal/fiptest"

	"floatip/internal/event"

	"github.com/mdlayher/arp"
)

func ms(n int) time.Duration { return time.Duration(n) * time.Millisecond }

func TestDebouncer(t *testing.T) {
	// interval 200ms, misses 3: free needs >= 3 unanswered probes in a row
	// AND 600ms since the last answer.
	type step struct {
		at       int  // ms after t0
		answered bool // else: a miss
		free     bool // expected after the step
		spacing  int  // expected spacing to the next probe, ms
	}
	cases := []struct {
		name  string
		steps []step
	}{
		{"holder answers: never free", []step{
			{200, true, false, 200}, {400, true, false, 200}, {600, true, false, 200}, {800, true, false, 200}}},
		{"death: free after the dead time", []step{
			{200, true, false, 200}, {400, false, false, 50}, {450, false, false, 50}, {500, false, false, 50},
			{550, false, false, 50}, {600, false, false, 50}, {800, false, true, 50}}},
		{"three misses are not enough before the dead time", []step{
			{0, true, false, 200}, {200, false, false, 50}, {250, false, false, 50}, {300, false, false, 50}, {600, false, true, 50}}},
		{"one answer resets the count", []step{
			{0, true, false, 200}, {200, false, false, 50}, {250, false, false, 50}, {300, true, false, 200},
			{500, false, false, 50}, {550, false, false, 50}, {850, false, false, 50}, {900, false, true, 50}}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			d := newDebouncer(ms(200), 3, fiptest.T0)
			for i, s := range tc.steps {
				now := fiptest.T0.Add(ms(s.at))
				if s.answered {
					d.answered(now)
				} else {
					d.missed()
				}
				if got := d.free(now); got != s.free {
					t.Errorf("step %d (t=%dms): free=%v, want %v", i, s.at, got, s.free)
				}
				if got := d.spacing(); got != ms(s.spacing) {
					t.Errorf("step %d: spacing %v, want %dms", i, got, s.spacing)
				}
			}
		})
	}
}

func TestDebouncerBootWaitsADeadTime(t *testing.T) {
	d := newDebouncer(ms(200), 3, fiptest.T0)
	for range 10 {
		d.missed()
	}
	if d.free(fiptest.T0.Add(ms(599))) {
		t.Error("free before a whole dead time since start")
	}
	if !d.free(fiptest.T0.Add(ms(600))) {
		t.Error("not free after a dead time of silence")
	}
	d2 := newDebouncer(ms(200), 3, fiptest.T0)
	d2.forceFree(fiptest.T0.Add(ms(10)))
	if !d2.free(fiptest.T0.Add(ms(10))) {
		t.Error("forceFree did not free")
	}
}

func TestRank(t *testing.T) {
	a := fiptest.MustMAC("02:00:00:00:00:01")
	b := fiptest.MustMAC("02:00:00:00:00:02")
	cases := []struct {
		x, y rank
		want bool
	}{
		{rank{200, b}, rank{100, a}, true},  // higher priority wins
		{rank{100, a}, rank{200, b}, false}, //
		{rank{100, a}, rank{100, b}, true},  // tie: lower MAC wins
		{rank{100, b}, rank{100, a}, false}, //
		{rank{100, a}, rank{100, a}, false}, // nobody outranks itself
	}
	for _, tc := range cases {
		if got := tc.x.outranks(tc.y); got != tc.want {
			t.Errorf("%v outranks %v = %v, want %v", tc.x, tc.y, got, tc.want)
		}
	}
}

func TestResolveConflict(t *testing.T) {
	self := rank{100, fiptest.MustMAC("02:00:00:00:00:02")}
	cases := []struct {
		name    string
		other   rank
		floatip bool
		want    conflictAction
	}{
		{"better floatip node", rank{150, fiptest.MustMAC("02:00:00:00:00:09")}, true, yield},
		{"equal priority, lower MAC", rank{100, fiptest.MustMAC("02:00:00:00:00:01")}, true, yield},
		{"equal priority, higher MAC", rank{100, fiptest.MustMAC("02:00:00:00:00:03")}, true, defend},
		{"worse floatip node", rank{50, fiptest.MustMAC("02:00:00:00:00:01")}, true, defend},
		{"not floatip", rank{}, false, defend},
	}
	for _, tc := range cases {
		if got := resolveConflict(self, tc.other, tc.floatip); got != tc.want {
			t.Errorf("%s: %v, want %v", tc.name, got, tc.want)
		}
		// Both sides reach the same verdict without talking.
		if tc.floatip {
			if back := resolveConflict(tc.other, self, true); back == tc.want {
				t.Errorf("%s: both sides decided %v", tc.name, back)
			}
		}
	}
}

func TestBetterStandby(t *testing.T) {
	self := rank{100, fiptest.MustMAC("02:00:00:00:00:05")}
	peers := peerTable{}
	peers.observe(fiptest.MustMAC("02:00:00:00:00:01"), wire.Tag{Priority: 50}, fiptest.T0) // worse
	holder := fiptest.MustMAC("02:00:00:00:00:02")
	peers.observe(holder, wire.Tag{Priority: 200, Flags: wire.FlagHolder}, fiptest.T0) // the VIP's holder, not a standby
	if _, ok := peers.betterStandby(self, holder, fiptest.T0, ms(600)); ok {
		t.Fatal("found a better standby among a worse one and the VIP's holder")
	}
	if r, ok := peers.betterStandby(self, nil, fiptest.T0, ms(600)); !ok || !bytes.Equal(r.mac, holder) {
		t.Fatal("a node holding other VIPs is a standby for this one")
	}
	peers.observe(fiptest.MustMAC("02:00:00:00:00:03"), wire.Tag{Priority: 150}, fiptest.T0)
	if r, ok := peers.betterStandby(self, holder, fiptest.T0.Add(ms(600)), ms(600)); !ok || r.priority != 150 {
		t.Fatalf("better standby: %v %v", r, ok)
	}
	if _, ok := peers.betterStandby(self, holder, fiptest.T0.Add(ms(601)), ms(600)); ok {
		t.Error("a standby silent for longer than the window still counts")
	}
	peers.observe(fiptest.MustMAC("02:00:00:00:00:03"), wire.Tag{Priority: 150, Flags: wire.FlagReleasing}, fiptest.T0.Add(ms(100)))
	if _, ok := peers.betterStandby(self, holder, fiptest.T0.Add(ms(100)), ms(600)); ok {
		t.Error("a leaving node still counts as a standby")
	}
	peers.observe(fiptest.MustMAC("02:00:00:00:00:04"), wire.Tag{Priority: 250, Flags: wire.FlagStandAside}, fiptest.T0.Add(ms(100)))
	if _, ok := peers.betterStandby(self, holder, fiptest.T0.Add(ms(100)), ms(600)); ok {
		t.Error("an unhealthy node that stands aside still counts as a better standby")
	}
}

// fakeLAN stands in for the ARP socket and netlink: it records what the
// machine sends and configures.
type fakeLAN struct {
	own        net.HardwareAddr
	probes     []wire.Tag
	probeDsts  []string
	announces  int
	sent       []string // "probe" and "announce", in the order sent
	configured bool
	adds       int
	removes    int
}

func (f *fakeLAN) MAC() net.HardwareAddr { return f.own }
func (f *fakeLAN) Probe(_ netip.Addr, tag wire.Tag, dst net.HardwareAddr) error {
	f.probes = append(f.probes, tag)
	f.probeDsts = append(f.probeDsts, dst.String())
	f.sent = append(f.sent, "probe")
	return nil
}
func (f *fakeLAN) Announce(netip.Addr, wire.AnnounceForm) error {
	f.announces++
	f.sent = append(f.sent, "announce")
	return nil
}
func (f *fakeLAN) Add() error    { f.configured = true; f.adds++; return nil }
func (f *fakeLAN) Remove() error { f.configured = false; f.removes++; return nil }

var testVIP = netip.MustParseAddr("192.0.2.50")

// fakeRefs is a reachability whose answer the test sets.
type fakeRefs struct {
	ok     bool
	probes int
	last   time.Time // heardAt; with none, there are no references
	none   bool
}

func (f *fakeRefs) Probe(time.Time)                         { f.probes++ }
func (f *fakeRefs) reachable(time.Time, time.Duration) bool { return f.ok }
func (f *fakeRefs) heardAt(time.Time) (time.Time, bool)     { return f.last, !f.none }

func newTestMachine(t *testing.T, priority uint8, own string) (*vipMachine, *fakeLAN) {
	t.Helper()
	return newTestMachineWith(t, priority, own, nil, func(*machineConfig) {})
}

func newTestMachineWith(t *testing.T, priority uint8, own string, refs reachability, change func(*machineConfig)) (*vipMachine, *fakeLAN) {
	t.Helper()
	lan := &fakeLAN{own: fiptest.MustMAC(own)}
	cfg := machineConfig{priority: priority, interval: ms(200), misses: 3, announceCount: 3,
		announceSpacing: ms(1100), announceForm: wire.FormRequest, refresh: 100 * time.Second}
	change(&cfg)
	deps := machineDeps{ifname: "eth0", log: slog.New(slog.NewTextHandler(io.Discard, nil)), arp: lan, addr: lan, refs: refs}
	m := newVIPMachine(testVIP, cfg, deps, false, fiptest.T0)
	m.group.event(evLinkUp, fiptest.T0)
	return m, lan
}

// driveGroup runs a group's loop with synthetic time from now to until, as
// the interface's loop does (the machines, the holder watches and the
// rotations); afterTick runs after every tick, to answer what was sent.
func driveGroup(g *groupView, now, until time.Time, afterTick func(now time.Time)) time.Time {
	g.queue.refresh() // the test may have called handlers directly
	for {
		wake := g.next()
		if wake.After(until) {
			return until
		}
		if wake.Before(now) {
			wake = now
		}
		now = wake
		g.tick(now)
		if afterTick != nil {
			afterTick(now)
		}
	}
}

// advance runs the machine's group up to until; after each tick, reply
// decides whether the holder answers the probe just sent.
func advance(m *vipMachine, now, until time.Time, reply func(at time.Time) *wire.Frame) time.Time {
	g := m.group
	return driveGroup(g, now, until, func(now time.Time) {
		if reply != nil {
			if f := reply(now); f != nil {
				g.dispatch(*f, now.Add(ms(1)))
			}
		}
	})
}

func frame(op arp.Operation, sha string, spa netip.Addr, tha string, tpa netip.Addr) *wire.Frame {
	return &wire.Frame{Packet: &arp.Packet{HardwareType: 1, ProtocolType: 0x0800, HardwareAddrLength: 6, IPLength: 4,
		Operation: op, SenderHardwareAddr: fiptest.MustMAC(sha), SenderIP: spa, TargetHardwareAddr: fiptest.MustMAC(tha), TargetIP: tpa}}
}

// holderReply is the kernel's answer of a live holder to a probe.
func holderReply(mac string) *wire.Frame {
	return frame(arp.OperationReply, mac, testVIP, "02:00:00:00:00:09", wire.ZeroIPv4)
}

func TestMachineClaimsAnEmptyNetwork(t *testing.T) {
	m, lan := newTestMachine(t, 100, "02:00:00:00:00:09")
	now := advance(m, fiptest.T0, fiptest.T0.Add(ms(599)), nil)
	if m.state != event.Standby || lan.configured {
		t.Fatalf("claimed before a dead time: state %v", m.state)
	}
	advance(m, now, fiptest.T0.Add(ms(800)), nil)
	if m.state != event.Active || !lan.configured || lan.announces != 1 {
		t.Fatalf("after 800ms of silence: state %v, configured %v, announces %d", m.state, lan.configured, lan.announces)
	}
	// The announcement repeats count-1 more times, 1.1 s apart.
	advance(m, fiptest.T0.Add(ms(800)), fiptest.T0.Add(ms(800+2*1100+50)), nil)
	if lan.announces != 3 {
		t.Errorf("announcements %d, want 3", lan.announces)
	}
}

func TestMachineStaysStandbyWhileTheHolderAnswers(t *testing.T) {
	m, lan := newTestMachine(t, 200, "02:00:00:00:00:09")
	advance(m, fiptest.T0, fiptest.T0.Add(time.Minute), func(time.Time) *wire.Frame { return holderReply("02:00:00:00:00:01") })
	if m.state != event.Standby || lan.adds != 0 {
		t.Fatalf("state %v, adds %d", m.state, lan.adds)
	}
	if !bytes.Equal(m.holder, fiptest.MustMAC("02:00:00:00:00:01")) {
		t.Errorf("holder %v", m.holder)
	}
}

// With 5% of frames lost each way (a probe round fails ~9.75% of the time),
// the fast re-probe and the dead time keep a live holder from looking dead.
// A plain "3 misses in a row" debounce takes over ~3 times in these 10 min.
func TestMachineLossDoesNotCauseATakeover(t *testing.T) {
	m, lan := newTestMachine(t, 100, "02:00:00:00:00:09")
	rng := rand.New(rand.NewPCG(1, 2))
	advance(m, fiptest.T0, fiptest.T0.Add(10*time.Minute), func(time.Time) *wire.Frame {
		if rng.Float64() < 1-0.95*0.95 {
			return nil
		}
		return holderReply("02:00:00:00:00:01")
	})
	if lan.adds != 0 {
		t.Fatalf("took over %d times from a live holder on a lossy link", lan.adds)
	}
}

func TestMachineTakesOverWhenTheHolderDies(t *testing.T) {
	m, lan := newTestMachine(t, 100, "02:00:00:00:00:09")
	death := fiptest.T0.Add(5 * time.Second)
	alive := func(at time.Time) *wire.Frame {
		if at.Before(death) {
			return holderReply("02:00:00:00:00:01")
		}
		return nil
	}
	now := advance(m, fiptest.T0, death.Add(ms(399)), alive)
	if lan.adds != 0 {
		t.Fatal("claimed too early")
	}
	advance(m, now, death.Add(ms(700)), alive)
	if m.state != event.Active {
		t.Fatalf("state %v 700ms after the holder died (dead time 600ms + claim check)", m.state)
	}
}

func TestMachineReleaseNoticeMeansImmediateClaim(t *testing.T) {
	m, lan := newTestMachine(t, 100, "02:00:00:00:00:09")
	holder := "02:00:00:00:00:01"
	now := advance(m, fiptest.T0, fiptest.T0.Add(2*time.Second), func(time.Time) *wire.Frame { return holderReply(holder) })
	notice := frame(arp.OperationRequest, holder, wire.ZeroIPv4, wire.Tag{Priority: 100, Flags: wire.FlagReleasing}.HardwareAddr().String(), testVIP)
	m.onFrame(*notice, now)
	advance(m, now, now.Add(ms(60)), nil)
	if m.state != event.Active || lan.adds != 1 {
		t.Fatalf("60ms after a release notice: state %v", m.state)
	}
}

func TestMachineLeavesTheClaimToABetterStandby(t *testing.T) {
	m, lan := newTestMachine(t, 100, "02:00:00:00:00:09")
	better := wire.Tag{Priority: 200}.HardwareAddr().String()
	// The better standby keeps probing; nobody holds the VIP.
	advance(m, fiptest.T0, fiptest.T0.Add(3*time.Second), func(time.Time) *wire.Frame {
		return frame(arp.OperationRequest, "02:00:00:00:00:05", wire.ZeroIPv4, better, testVIP)
	})
	if lan.adds != 0 {
		t.Fatal("claimed although a better standby was alive")
	}
	// It falls silent too: now this node is the best alive.
	advance(m, fiptest.T0.Add(3*time.Second), fiptest.T0.Add(4*time.Second), nil)
	if m.state != event.Active {
		t.Fatalf("state %v after the better standby fell silent", m.state)
	}
}

func TestMachineSplitBrain(t *testing.T) {
	winnerMAC, loserMAC := "02:00:00:00:00:01", "02:00:00:00:00:02"
	winnerTag := wire.Tag{Priority: 200, Flags: wire.FlagHolder}.HardwareAddr().String()

	// The loser learns the winner's rank from its self-check, waits for its
	// announcement, and only then removes the address.
	loser, lan := newTestMachine(t, 100, loserMAC)
	now := advance(loser, fiptest.T0, fiptest.T0.Add(time.Second), nil)
	if loser.state != event.Active {
		t.Fatal("setup: not active")
	}
	loser.onFrame(*frame(arp.OperationRequest, winnerMAC, wire.ZeroIPv4, winnerTag, testVIP), now)
	if !lan.configured || lan.probes[len(lan.probes)-1].Flags != wire.FlagHolder {
		t.Fatalf("after the winner's self-check: configured %v, last probe %+v (must introduce itself and keep the VIP)", lan.configured, lan.probes[len(lan.probes)-1])
	}
	// A tag in one frame is not enough for a verdict; the winner's kernel
	// answering the loser's introduction confirms it.
	loser.onFrame(*frame(arp.OperationReply, winnerMAC, testVIP, loserMAC, wire.ZeroIPv4), now.Add(ms(1)))
	if loser.state != event.Yielding || !lan.configured {
		t.Fatalf("after the winner's self-check and answer: state %v, configured %v (must keep it until the winner announces)", loser.state, lan.configured)
	}
	loser.onFrame(*frame(arp.OperationRequest, winnerMAC, testVIP, "ff:ff:ff:ff:ff:ff", testVIP), now.Add(ms(5)))
	if loser.state != event.Standby || lan.configured {
		t.Fatalf("after the winner's announcement: state %v, configured %v", loser.state, lan.configured)
	}

	// The winner, seeing the loser's self-check, re-announces and keeps it.
	winner, wlan := newTestMachine(t, 200, winnerMAC)
	now = advance(winner, fiptest.T0, fiptest.T0.Add(4500*time.Millisecond), nil) // its claim announcements are past
	before := wlan.announces
	loserTag := wire.Tag{Priority: 100, Flags: wire.FlagHolder}.HardwareAddr().String()
	winner.onFrame(*frame(arp.OperationRequest, loserMAC, wire.ZeroIPv4, loserTag, testVIP), now)
	winner.onFrame(*frame(arp.OperationReply, loserMAC, testVIP, winnerMAC, wire.ZeroIPv4), now.Add(ms(1)))
	if winner.state != event.Active || wlan.announces != before {
		t.Fatalf("winner: state %v, announces %d (want %d: not at once, TestMachineSplitBrainThreeHolders)", winner.state, wlan.announces, before)
	}
	now = advance(winner, now, now.Add(60*time.Millisecond), nil)
	if wlan.announces != before+1 {
		t.Fatalf("winner: %d announcements 60 ms after winning, want %d", wlan.announces, before+1)
	}
	// ... and once more 1.1 s later, so that the winner's is the last
	// announcement the clients hear.
	now = advance(winner, now, now.Add(1200*time.Millisecond), nil)
	if wlan.announces != before+2 {
		t.Fatalf("winner: %d announcements 1.2 s after winning, want %d", wlan.announces, before+2)
	}

	// A holder that is not floatip is defended against at most once per 10 s.
	stranger := frame(arp.OperationReply, "02:00:00:00:00:77", testVIP, winnerMAC, wire.ZeroIPv4)
	before = wlan.announces
	for i := range 50 {
		winner.onFrame(*stranger, now.Add(ms(100*i)))
	}
	if got := wlan.announces - before; got != 1 {
		t.Errorf("defended %d times in 5s against a non-floatip holder, want 1", got)
	}
	if winner.state != event.Active {
		t.Errorf("yielded to a non-floatip holder")
	}
}

// TestMachineSplitBrainWinnerAnnouncesAfterTheLoser: the heal meets one of
// the loser's claim rounds. The winner's re-announcement must come clearly
// after it (announceOrderMargin), or the loser waits a whole announcement
// spacing for the next one (the lab's split-brain heal took over 2 s).
func TestMachineSplitBrainWinnerAnnouncesAfterTheLoser(t *testing.T) {
	winnerMAC, loserMAC := "02:00:00:00:00:01", "02:00:00:00:00:02"
	loserTag := wire.Tag{Priority: 100, Flags: wire.FlagHolder}.HardwareAddr().String()
	winner, wlan := newTestMachine(t, 200, winnerMAC)
	now := advance(winner, fiptest.T0, fiptest.T0.Add(4500*time.Millisecond), nil) // its claim announcements are past
	before := wlan.announces
	loserAnnounced := now
	winner.onFrame(*frame(arp.OperationRequest, loserMAC, testVIP, "ff:ff:ff:ff:ff:ff", testVIP), loserAnnounced)
	winner.onFrame(*frame(arp.OperationRequest, loserMAC, wire.ZeroIPv4, loserTag, testVIP), now.Add(ms(2)))
	winner.onFrame(*frame(arp.OperationReply, loserMAC, testVIP, winnerMAC, wire.ZeroIPv4), now.Add(ms(3)))
	now = advance(winner, now.Add(ms(3)), loserAnnounced.Add(announceOrderMargin), nil)
	if wlan.announces != before {
		t.Fatalf("winner announced %d times within %v of the loser's announcement; the loser would not count it", wlan.announces-before, announceOrderMargin)
	}
	advance(winner, now, loserAnnounced.Add(300*time.Millisecond), nil)
	if wlan.announces != before+1 {
		t.Fatalf("winner: %d announcements 300 ms after the loser's, want 1", wlan.announces-before)
	}
}

func TestMachineRestoresARemovedVIP(t *testing.T) {
	m, lan := newTestMachine(t, 100, "02:00:00:00:00:09")
	now := advance(m, fiptest.T0, fiptest.T0.Add(time.Second), nil)
	lan.configured = false // someone ran `ip addr del`
	m.onEvent(evAddrRemoved, now)
	if !lan.configured || lan.adds != 2 {
		t.Fatalf("VIP not added again: adds %d", lan.adds)
	}
}

func TestMachineLinkDownReleasesAndShutdownRemoves(t *testing.T) {
	m, lan := newTestMachine(t, 100, "02:00:00:00:00:09")
	now := advance(m, fiptest.T0, fiptest.T0.Add(time.Second), nil)
	m.onEvent(evLinkDown, now)
	if lan.configured || m.state != event.Standby {
		t.Fatalf("link down: configured %v, state %v", lan.configured, m.state)
	}
	m.onEvent(evLinkUp, now)
	advance(m, now, now.Add(time.Second), nil)
	if !lan.configured {
		t.Fatal("did not claim again after the link came back to an empty network")
	}
	probes := len(lan.probes)
	m.shutdown(now)
	if lan.configured {
		t.Fatal("shutdown left the VIP configured")
	}
	if len(lan.probes) != probes+1 || lan.probes[probes].Flags != wire.FlagReleasing {
		t.Errorf("no release notice after removal: %+v", lan.probes[probes:])
	}
}

// A standby probes a known holder by unicast (no broadcast load on the LAN)
// and goes broadcast as soon as one probe is missed.
func TestMachineProbesTheHolderByUnicast(t *testing.T) {
	m, lan := newTestMachine(t, 100, "02:00:00:00:00:09")
	holder := "02:00:00:00:00:01"
	now := advance(m, fiptest.T0, fiptest.T0.Add(2*time.Second), func(time.Time) *wire.Frame { return holderReply(holder) })
	n := len(lan.probeDsts)
	if n < 5 || lan.probeDsts[n-1] != holder || lan.probeDsts[n-2] != holder {
		t.Fatalf("probes went to %v, want the holder's MAC once known", lan.probeDsts)
	}
	advance(m, now, now.Add(ms(450)), nil) // the holder falls silent
	if last := lan.probeDsts[len(lan.probeDsts)-1]; last != "ff:ff:ff:ff:ff:ff" {
		t.Errorf("after a miss the probe went to %s, want broadcast", last)
	}
}

// TestMachineIsolatedNeverClaims: no holder answers, but no reference host
// either: this node is the one cut off.
func TestMachineIsolatedNeverClaims(t *testing.T) {
	refs := &fakeRefs{ok: false}
	m, lan := newTestMachineWith(t, 100, "02:00:00:00:00:09", refs, func(*machineConfig) {})
	now := advance(m, fiptest.T0, fiptest.T0.Add(10*time.Second), nil)
	if lan.adds != 0 {
		t.Fatal("an isolated standby claimed the VIP")
	}
	if refs.probes == 0 {
		t.Error("the references were never asked")
	}
	refs.ok = true // back in touch, and still nobody holds the VIP
	advance(m, now, now.Add(ms(100)), nil)
	if m.state != event.Active {
		t.Fatalf("state %v once the references answer", m.state)
	}
}

func TestMachinePreemption(t *testing.T) {
	holder := "02:00:00:00:00:01"
	holderTag := wire.Tag{Priority: 50, Flags: wire.FlagHolder}.HardwareAddr().String()
	// The lower-priority holder's self-check (its rank), then its kernel's replies.
	lowerHolder := func(at time.Time) *wire.Frame {
		if at.Sub(fiptest.T0)%time.Second < ms(200) {
			return frame(arp.OperationRequest, holder, wire.ZeroIPv4, holderTag, testVIP)
		}
		return holderReply(holder)
	}
	for _, preempt := range []bool{false, true} {
		m, lan := newTestMachineWith(t, 200, "02:00:00:00:00:09", nil, func(c *machineConfig) {
			c.preempt, c.preemptDelay = preempt, 3*time.Second
		})
		now := advance(m, fiptest.T0, fiptest.T0.Add(2*time.Second), lowerHolder)
		if lan.adds != 0 {
			t.Fatalf("preempt=%v: took the VIP before the hold-down", preempt)
		}
		advance(m, now, fiptest.T0.Add(6*time.Second), lowerHolder)
		if got := m.state == event.Active; got != preempt {
			t.Errorf("preempt=%v: active=%v after the hold-down", preempt, got)
		}
	}
}

// A host that is not floatip is given a moment to show a floatip tag before
// the RFC 5227 defence; a floatip winner that announced just before its
// rank was learnt still makes the loser yield at once.
func TestMachineIdentifiesBeforeDefending(t *testing.T) {
	m, lan := newTestMachine(t, 100, "02:00:00:00:00:02")
	now := advance(m, fiptest.T0, fiptest.T0.Add(time.Second), nil)
	before := lan.announces
	stranger := frame(arp.OperationReply, "02:00:00:00:00:77", testVIP, "02:00:00:00:00:02", wire.ZeroIPv4)
	m.onFrame(*stranger, now)
	if lan.announces != before {
		t.Fatal("defended before giving the other holder a chance to identify itself")
	}
	if last := lan.probes[len(lan.probes)-1]; last.Flags != wire.FlagHolder {
		t.Errorf("did not introduce itself with a tagged self-check: %+v", last)
	}
	m.onFrame(*stranger, now.Add(identifyTimeout))
	if lan.announces != before+1 {
		t.Fatalf("no defence after the identification timeout")
	}

	loser, llan := newTestMachine(t, 100, "02:00:00:00:00:02")
	now = advance(loser, fiptest.T0, fiptest.T0.Add(time.Second), nil)
	winner := "02:00:00:00:00:01"
	loser.onFrame(*frame(arp.OperationRequest, winner, testVIP, "ff:ff:ff:ff:ff:ff", testVIP), now)
	if !llan.configured {
		t.Fatal("released to a holder of unknown rank")
	}
	winnerTag := wire.Tag{Priority: 200, Flags: wire.FlagHolder}.HardwareAddr().String()
	loser.onFrame(*frame(arp.OperationRequest, winner, wire.ZeroIPv4, winnerTag, testVIP), now.Add(ms(2)))
	if llan.configured || loser.state != event.Standby {
		t.Fatalf("after learning the winner's rank (it announced 2 ms before): state %v, configured %v", loser.state, llan.configured)
	}
}

// TestMachineSplitBrainThreeHolders: a partition of two hosts heals and
// three nodes hold the VIP. The middle one outranks the worst but loses to
// the best: it must not announce, whichever of the two it hears first
// (found by the chaos run, seed 20261130: its announcement came after the
// best one's, the clients followed it, and it then released, leaving them
// on a MAC without the VIP for 2.4 s).
func TestMachineSplitBrainThreeHolders(t *testing.T) {
	bestMAC, worstMAC := "02:00:00:00:00:01", "02:00:00:00:00:03"
	bestTag := wire.Tag{Priority: 200, Flags: wire.FlagHolder}.HardwareAddr().String()
	worstTag := wire.Tag{Priority: 100, Flags: wire.FlagHolder}.HardwareAddr().String()
	best := frame(arp.OperationRequest, bestMAC, wire.ZeroIPv4, bestTag, testVIP)
	worst := frame(arp.OperationRequest, worstMAC, wire.ZeroIPv4, worstTag, testVIP)
	for _, order := range [][]*wire.Frame{{best, worst}, {worst, best}} {
		m, lan := newTestMachine(t, 150, "02:00:00:00:00:02")
		now := advance(m, fiptest.T0, fiptest.T0.Add(4500*time.Millisecond), nil)
		before := lan.announces
		// Each holder's self-check, then its kernel's answer to ours: a
		// floatip node heard in two frames gets a verdict.
		for i, f := range order {
			at := now.Add(time.Duration(3*i) * time.Millisecond)
			m.onFrame(*f, at)
			m.onFrame(*frame(arp.OperationReply, f.Packet.SenderHardwareAddr.String(), testVIP, "02:00:00:00:00:02", wire.ZeroIPv4), at.Add(ms(1)))
		}
		if m.state != event.Yielding {
			t.Fatalf("state %v after both holders' self-checks, want yielding", m.state)
		}
		advance(m, now.Add(ms(3)), now.Add(ms(200)), nil)
		if lan.announces != before {
			t.Fatalf("the middle holder announced (%d announcements, want %d)", lan.announces, before)
		}
		m.onFrame(*frame(arp.OperationRequest, bestMAC, testVIP, "ff:ff:ff:ff:ff:ff", testVIP), now.Add(ms(210)))
		if m.state != event.Standby || lan.configured {
			t.Fatalf("after the best holder's announcement: state %v, configured %v", m.state, lan.configured)
		}
	}
}

// TestMachineFencing: the --fence command runs before a standby claims from
// a silent holder; the claim goes ahead only if it succeeds.
func TestMachineFencing(t *testing.T) {
	for _, fenceOK := range []bool{true, false} {
		m, lan := newTestMachine(t, 100, "02:00:00:00:00:09")
		fenceDone := make(chan fenceResult, 1)
		m.fenceDone = fenceDone
		var fenced []string
		m.fence = func(_ context.Context, vip netip.Addr, holder net.HardwareAddr) error {
			fenced = append(fenced, holder.String())
			if !fenceOK {
				return errors.New("exit status 1")
			}
			return nil
		}
		death := fiptest.T0.Add(2 * time.Second)
		now := advance(m, fiptest.T0, death.Add(time.Second), func(at time.Time) *wire.Frame {
			if at.Before(death) {
				return holderReply("02:00:00:00:00:01")
			}
			return nil
		})
		if m.state != event.Fencing || lan.adds != 0 {
			t.Fatalf("fence ok=%v: state %v, adds %d before the fence finished", fenceOK, m.state, lan.adds)
		}
		r := <-fenceDone
		if r.machine != m {
			t.Fatal("fence result for another machine")
		}
		m.onFenceDone(r.err, now)
		advance(m, now, now.Add(ms(100)), nil)
		if got := lan.adds == 1; got != fenceOK {
			t.Errorf("fence ok=%v: claimed=%v", fenceOK, got)
		}
		if len(fenced) != 1 || fenced[0] != "02:00:00:00:00:01" {
			t.Errorf("fenced %v, want the silent holder once", fenced)
		}
	}
}

// TestMachineHealthGate: a node whose check has not passed never claims; an
// active node whose check fails hands the VIP over with a release notice.
func TestMachineHealthGate(t *testing.T) {
	lan := &fakeLAN{own: fiptest.MustMAC("02:00:00:00:00:09")}
	cfg := machineConfig{priority: 100, interval: ms(200), misses: 3, announceCount: 1, announceSpacing: ms(1100), announceForm: wire.FormRequest}
	m := newVIPMachine(testVIP, cfg, machineDeps{ifname: "eth0", log: slog.New(slog.NewTextHandler(io.Discard, nil)), arp: lan, addr: lan, checked: true}, false, fiptest.T0)
	m.onEvent(evLinkUp, fiptest.T0)
	now := advance(m, fiptest.T0, fiptest.T0.Add(5*time.Second), nil)
	if lan.adds != 0 {
		t.Fatal("claimed before the health check passed")
	}
	m.onEvent(evHealthy, now)
	now = advance(m, now, now.Add(ms(300)), nil)
	if m.state != event.Active {
		t.Fatalf("state %v once healthy on an empty network", m.state)
	}
	m.onEvent(evUnhealthy, now)
	if lan.configured || m.state != event.Standby {
		t.Fatalf("unhealthy holder kept the VIP: state %v", m.state)
	}
	if last := lan.probes[len(lan.probes)-1]; last.Flags != wire.FlagReleasing {
		t.Errorf("no release notice: %+v", last)
	}
	advance(m, now, now.Add(5*time.Second), nil)
	if lan.adds != 1 {
		t.Errorf("an unhealthy node claimed again")
	}
}

// gatewayRefs is a reference host on the LAN: it answers each question
// `delay` after it is asked.
type gatewayRefs struct {
	delay time.Duration
	asks  []time.Time
}

func (g *gatewayRefs) Probe(now time.Time) { g.asks = append(g.asks, now) }

// heardAt is its last answer by now.
func (g *gatewayRefs) heardAt(now time.Time) (time.Time, bool) {
	var last time.Time
	for _, a := range g.asks {
		if at := a.Add(g.delay); !now.Before(at) {
			last = at
		}
	}
	return last, true
}

func (g *gatewayRefs) reachable(now time.Time, window time.Duration) bool {
	at, _ := g.heardAt(now)
	return !at.IsZero() && now.Sub(at) <= window
}

// With reference hosts, a standby that followed a live holder has not
// asked them lately when the release notice comes: it asks then, and
// claims once the answer is in, without calling itself cut off.
func TestMachineReleaseNoticeWithReferences(t *testing.T) {
	refs := &gatewayRefs{delay: ms(2)}
	m, lan := newTestMachineWith(t, 100, "02:00:00:00:00:09", refs, func(*machineConfig) {})
	holder := "02:00:00:00:00:01"
	now := advance(m, fiptest.T0, fiptest.T0.Add(2*time.Second), func(time.Time) *wire.Frame { return holderReply(holder) })
	notice := frame(arp.OperationRequest, holder, wire.ZeroIPv4, wire.Tag{Priority: 100, Flags: wire.FlagReleasing}.HardwareAddr().String(), testVIP)
	m.onFrame(*notice, now)
	advance(m, now, now.Add(ms(60)+referenceAnswerWait), nil)
	if m.state != event.Active || lan.adds != 1 {
		t.Fatalf("%v after a release notice: state %v, adds %d (references asked %d times)", ms(60)+referenceAnswerWait, m.state, lan.adds, len(refs.asks))
	}
	if m.saidIsolated {
		t.Error("the standby called itself cut off before its references had a chance to answer")
	}
}

// A standby whose reference hosts do not answer, once asked, says it is
// the one cut off and never claims (the wait for their answer must end).
func TestMachineUnansweredReferencesAfterAHolderDeath(t *testing.T) {
	refs := &gatewayRefs{delay: time.Hour} // never answers
	m, lan := newTestMachineWith(t, 100, "02:00:00:00:00:09", refs, func(*machineConfig) {})
	holder := "02:00:00:00:00:01"
	now := advance(m, fiptest.T0, fiptest.T0.Add(2*time.Second), func(time.Time) *wire.Frame { return holderReply(holder) })
	advance(m, now, now.Add(3*time.Second), nil) // the holder dies
	if lan.adds != 0 || m.state != event.Standby {
		t.Fatalf("claimed with no reference host answering: state %v, adds %d", m.state, lan.adds)
	}
	if !m.saidIsolated || len(refs.asks) == 0 {
		t.Errorf("said it is cut off: %v, references asked %d times; want both", m.saidIsolated, len(refs.asks))
	}
}
