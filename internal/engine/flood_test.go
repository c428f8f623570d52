package engine

// Bad input from the LAN, without root: a holder under a flood of foreign
// ARP for its VIP from changing MACs keeps the VIP, defends at the RFC 5227
// rate, logs a bounded number of lines and keeps its peer table small,
// while a real floatip peer is still recognised. The lab test with the real
// binary and a real flood is in lab/integration/flood_test.go.

import (
	"bytes"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net"
	"strings"
	"testing"
	"time"

	"floatip/internal/fiptest"
	"floatip/internal/wire/frame"

	"floatip/internal/event"

	"github.com/mdlayher/arp"
)

func randomMAC(r *rand.Rand) string {
	b := make(net.HardwareAddr, 6)
	for i := range b {
		b[i] = byte(r.UintN(256))
	}
	b[0] = b[0]&0xfc | 0x02 // unicast, locally administered
	return b.String()
}

// floodFrame is frame i of a flood of foreign ARP for testVIP, each from a
// new random MAC: announcements and replies claiming the VIP, and probes
// with floatip tags that outrank the holder, that it outranks, that say
// "releasing", or that are invalid (bad version, priority 0).
func floodFrame(r *rand.Rand, i int, own string) *frame.Frame {
	mac := randomMAC(r)
	tag := func(version, priority, flags byte) string {
		return net.HardwareAddr{'f', 'i', 'p', version, priority, flags}.String()
	}
	switch i % 8 {
	case 0:
		return arpFrame(arp.OperationRequest, mac, testVIP, "ff:ff:ff:ff:ff:ff", testVIP)
	case 1:
		return arpFrame(arp.OperationReply, mac, testVIP, mac, testVIP)
	case 2:
		return arpFrame(arp.OperationReply, mac, testVIP, own, frame.ZeroIPv4)
	case 3:
		return arpFrame(arp.OperationRequest, mac, frame.ZeroIPv4, tag(frame.TagVersion, 255, frame.FlagHolder), testVIP)
	case 4:
		return arpFrame(arp.OperationRequest, mac, frame.ZeroIPv4, tag(frame.TagVersion, 1, frame.FlagHolder), testVIP)
	case 5:
		return arpFrame(arp.OperationRequest, mac, frame.ZeroIPv4, tag(frame.TagVersion, 200, frame.FlagReleasing), testVIP)
	case 6:
		return arpFrame(arp.OperationRequest, mac, frame.ZeroIPv4, tag(frame.TagVersion+1, 255, frame.FlagHolder), testVIP)
	default:
		return arpFrame(arp.OperationRequest, mac, frame.ZeroIPv4, tag(frame.TagVersion, 0, frame.FlagHolder), testVIP)
	}
}

func TestMachineUnderFlood(t *testing.T) {
	const own = "02:00:00:00:00:05"
	var logs bytes.Buffer
	lan := &fakeLAN{own: fiptest.MustMAC(own)}
	cfg := Config{Priority: 100, Interval: ms(200), Misses: 3, AnnounceCount: 3,
		AnnounceSpacing: ms(1100), AnnounceForm: frame.FormRequest} // no refresh: every announcement below is a defence
	deps := Deps{Interface: "eth0", Log: slog.New(slog.NewTextHandler(&logs, nil)), ARP: lan, Address: lan}
	m := NewMachine(testVIP, cfg, deps, StartStandby, fiptest.T0)
	m.onEvent(EvLinkUp, fiptest.T0)
	now := advance(m, fiptest.T0, fiptest.T0.Add(5*time.Second), nil)
	if m.state != event.Active || lan.announces != 3 {
		t.Fatalf("setup: state %v, %d announcements", m.state, lan.announces)
	}
	logs.Reset()
	announces, probes := lan.announces, len(lan.probes)

	// 60 s at 1000 frames/s, the timers running in between.
	r := rand.New(rand.NewPCG(1, 2))
	start := now
	var defences []time.Duration
	const floodFor = 60 * time.Second
	for i := 0; now.Sub(start) < floodFor; i++ {
		now = start.Add(time.Duration(i) * time.Millisecond)
		if !m.nextWake().After(now) {
			m.onTick(now)
		}
		before := lan.announces
		m.onFrame(*floodFrame(r, i, own), now)
		if lan.announces != before {
			defences = append(defences, now.Sub(start))
		}
		if m.state != event.Active || !lan.configured {
			t.Fatalf("lost the VIP %v into the flood (frame %d): state %v, configured %v\n%s", now.Sub(start), i, m.state, lan.configured, logs.String())
		}
	}
	if lan.announces-announces != len(defences) {
		t.Errorf("%d announcements outside frame handling", lan.announces-announces-len(defences))
	}
	// Defence: after the identification window, then every DEFEND_INTERVAL.
	if len(defences) == 0 || defences[0] > identifyTimeout+ms(10) {
		t.Fatalf("first defence at %v, want within %v: %v", defences, identifyTimeout, defences)
	}
	for i := 1; i < len(defences); i++ {
		if gap := defences[i] - defences[i-1]; gap < DefendInterval || gap > DefendInterval+ms(10) {
			t.Errorf("defences %v apart (%v), want every %v", gap, defences, DefendInterval)
		}
	}
	if max := int(floodFor/DefendInterval) + 1; len(defences) > max {
		t.Errorf("%d defences in %v, at most %d allowed", len(defences), floodFor, max)
	}
	// Probes: the self-checks (one per 1.1 s) and introductions during the
	// identification window only.
	if sent, max := len(lan.probes)-probes, int(floodFor/selfCheckEvery)+int(identifyTimeout/introduceEvery)+2; sent > max {
		t.Errorf("%d probes in %v of flood, want at most %d", sent, floodFor, max)
	}
	lines := strings.Count(logs.String(), "\n")
	if lines > 2*lanLogBurst+int(floodFor/lanLogEvery)+2 {
		t.Errorf("%d log lines over %v of flood:\n%s", lines, floodFor, logs.String())
	}
	if len(m.Group.peers) > maxPeers {
		t.Errorf("peer table grew to %d entries", len(m.Group.peers))
	}
	t.Logf("60 000 frames: %d defences at %v, %d probes, %d log lines, %d peers remembered", len(defences), defences, len(lan.probes)-probes, lines, len(m.Group.peers))

	// A real floatip node that outranks us still gets its verdict amid the
	// flood: its self-check, its kernel's answer, its announcement.
	winner, winnerTag := "02:00:00:00:00:01", frame.Tag{Priority: 200, Flags: frame.FlagHolder}.HardwareAddr().String()
	m.onFrame(*floodFrame(r, 0, own), now)
	m.onFrame(*arpFrame(arp.OperationRequest, winner, frame.ZeroIPv4, winnerTag, testVIP), now.Add(ms(1)))
	m.onFrame(*floodFrame(r, 3, own), now.Add(ms(2)))
	m.onFrame(*arpFrame(arp.OperationReply, winner, testVIP, own, frame.ZeroIPv4), now.Add(ms(3)))
	m.onFrame(*floodFrame(r, 1, own), now.Add(ms(4)))
	m.onFrame(*arpFrame(arp.OperationRequest, winner, testVIP, "ff:ff:ff:ff:ff:ff", testVIP), now.Add(ms(5)))
	if m.state != event.Standby || lan.configured {
		t.Fatalf("a real, better floatip holder amid the flood: state %v, configured %v", m.state, lan.configured)
	}
}

// TestPeerTableBounded: tagged probes from ever new MACs do not grow the
// table past maxPeers, and peers heard more than once survive the flood.
func TestPeerTableBounded(t *testing.T) {
	peers := peerTable{}
	real := fiptest.MustMAC("02:00:00:00:00:01")
	peers.observe(real, frame.Tag{Priority: 150}, fiptest.T0)
	if _, ok := peers.confirmed(real); ok {
		t.Fatal("confirmed after one frame")
	}
	peers.heard(real)
	if r, ok := peers.confirmed(real); !ok || r.priority != 150 {
		t.Fatalf("not confirmed after a second frame: %v %v", r, ok)
	}
	r := rand.New(rand.NewPCG(3, 4))
	for i := range 100_000 {
		peers.observe(fiptest.MustMAC(randomMAC(r)), frame.Tag{Priority: 200, Flags: frame.FlagHolder}, fiptest.T0.Add(ms(i/100)))
		if len(peers) > maxPeers {
			t.Fatalf("%d peers after %d random MACs", len(peers), i+1)
		}
	}
	if _, ok := peers.confirmed(real); !ok {
		t.Error("the flood pushed out a confirmed peer heard within the last minute")
	}
	// Long silent peers go when room is needed.
	later := fiptest.T0.Add(ms(1000) + peerForget + time.Second)
	for range maxPeers {
		peers.observe(fiptest.MustMAC(randomMAC(r)), frame.Tag{Priority: 200}, later)
	}
	if _, ok := peers.known(real); ok {
		t.Error("a peer silent for longer than peerForget was kept")
	}
	// A flood that repeats its MACs fills the table with "confirmed" peers:
	// new ones are then not recorded at all.
	full := peerTable{}
	for i := range maxPeers {
		mac := fiptest.MustMAC(fmt.Sprintf("02:00:00:00:%02x:%02x", i/256, i%256))
		full.observe(mac, frame.Tag{Priority: 1}, fiptest.T0)
		full.heard(mac)
	}
	full.observe(fiptest.MustMAC("02:00:00:00:ff:ff"), frame.Tag{Priority: 1}, fiptest.T0)
	if len(full) != maxPeers {
		t.Errorf("%d peers, want at most %d", len(full), maxPeers)
	}
}

// TestStandbyUnderFlood: a standby flooded with the same frames stays a
// standby while the holder answers, logs a bounded number of lines, finds
// the real holder again after the flood, and still takes over when it dies.
func TestStandbyUnderFlood(t *testing.T) {
	const own, holder = "02:00:00:00:00:05", "02:00:00:00:00:01"
	var logs bytes.Buffer
	lan := &fakeLAN{own: fiptest.MustMAC(own)}
	cfg := Config{Priority: 100, Interval: ms(200), Misses: 3, AnnounceCount: 3, AnnounceSpacing: ms(1100), AnnounceForm: frame.FormRequest}
	deps := Deps{Interface: "eth0", Log: slog.New(slog.NewTextHandler(&logs, nil)), ARP: lan, Address: lan}
	m := NewMachine(testVIP, cfg, deps, StartStandby, fiptest.T0)
	m.Group.Broadcast(EvLinkUp, fiptest.T0)
	holderAlive := true
	// step runs 1 ms: the timers, the holder's answer to a probe that
	// reaches it (broadcast or to its MAC), and a flood frame.
	r := rand.New(rand.NewPCG(5, 6))
	probes := 0
	g := m.Group
	step := func(now time.Time, i int, flooding bool) {
		if !g.Next().After(now) {
			g.Tick(now)
		}
		if len(lan.probes) > probes {
			probes = len(lan.probes)
			if dst := lan.probeDsts[probes-1]; holderAlive && (dst == holder || dst == "ff:ff:ff:ff:ff:ff") {
				g.Dispatch(*arpFrame(arp.OperationReply, holder, testVIP, own, frame.ZeroIPv4), now)
			}
		}
		if flooding {
			g.Dispatch(*floodFrame(r, i, own), now)
		}
		if m.state != event.Standby && holderAlive {
			t.Fatalf("%v: state %v while the holder is alive", now.Sub(fiptest.T0), m.state)
		}
	}
	now := fiptest.T0
	for i := range 2000 {
		now = fiptest.T0.Add(time.Duration(i) * time.Millisecond)
		step(now, i, false)
	}
	if !bytes.Equal(m.holder, fiptest.MustMAC(holder)) {
		t.Fatalf("setup: holder %v", m.holder)
	}
	logs.Reset()
	start := now
	for i := 0; now.Sub(start) < 30*time.Second; i++ {
		now = start.Add(time.Duration(i) * time.Millisecond)
		step(now, i, true)
	}
	lines := strings.Count(logs.String(), "\n")
	if lines > 2*lanLogBurst {
		t.Errorf("%d log lines over 30 s of flood:\n%s", lines, logs.String())
	}
	// After the flood: the real holder again within a few probes.
	end := now
	for i := 0; now.Sub(end) < 3*time.Second; i++ {
		now = end.Add(time.Duration(i) * time.Millisecond)
		step(now, i, false)
	}
	if !bytes.Equal(m.holder, fiptest.MustMAC(holder)) || lan.adds != 0 {
		t.Fatalf("3 s after the flood: holder %v, adds %d", m.holder, lan.adds)
	}
	// The holder dies: the standby takes over as usual.
	holderAlive = false
	death := now
	for i := 0; now.Sub(death) < 2*time.Second && m.state != event.Active; i++ {
		now = death.Add(time.Duration(i) * time.Millisecond)
		step(now, i, false)
	}
	if m.state != event.Active || !lan.configured {
		t.Fatalf("2 s after the holder died: state %v, configured %v\n%s", m.state, lan.configured, logs.String())
	}
	t.Logf("standby: %d log lines over 30 s of flood; took over %v after the holder died", lines, now.Sub(death))
}

// TestMachineDefendsSporadicStranger: a host that is not floatip and
// announces the VIP only now and then (say every 30 s) is defended against
// when it shows up again, not given a new identification window each time;
// a new stranger after a quiet spell gets one.
func TestMachineDefendsSporadicStranger(t *testing.T) {
	m, lan := newTestMachine(t, 100, "02:00:00:00:00:05")
	now := advance(m, fiptest.T0, fiptest.T0.Add(5*time.Second), nil)
	announce := func(mac string, at time.Time) int {
		before := lan.announces
		m.onFrame(*arpFrame(arp.OperationRequest, mac, testVIP, "ff:ff:ff:ff:ff:ff", testVIP), at)
		return lan.announces - before
	}
	if n := announce("02:00:00:00:00:77", now); n != 0 {
		t.Fatal("defended before the identification window")
	}
	if n := announce("02:00:00:00:00:77", now.Add(30*time.Second)); n != 1 {
		t.Fatalf("the same stranger 30 s later: %d defences, want 1", n)
	}
	if n := announce("02:00:00:00:00:78", now.Add(60*time.Second)); n != 0 {
		t.Fatal("a new stranger after a quiet spell was not given its identification window")
	}
	if n := announce("02:00:00:00:00:78", now.Add(60*time.Second+identifyTimeout)); n != 1 {
		t.Fatalf("%d defences after the new stranger's window, want 1", n)
	}
}
