package engine

import (
	"errors"
	"math/rand/v2"
	"testing"
	"time"

	"floatip/internal/fiptest"
	"floatip/internal/wire/frame"

	"floatip/internal/event"

	"github.com/mdlayher/arp"
)

func TestHolderIsolated(t *testing.T) {
	silence := 3 * time.Second
	now := fiptest.T0.Add(time.Hour)
	ago := func(d time.Duration) time.Time { return now.Add(-d) }
	cases := []struct {
		name string
		f    isolationFacts
		want bool
	}{
		{"cut off: all silent together", isolationFacts{9, ago(3 * time.Second), ago(3 * time.Second)}, true},
		{"cut off: the group fell silent a little before the references", isolationFacts{9, ago(3 * time.Second), ago(5 * time.Second)}, true},
		{"too few unanswered rounds", isolationFacts{4, ago(10 * time.Second), ago(10 * time.Second)}, false},
		{"a reference answered recently", isolationFacts{9, ago(2 * time.Second), ago(10 * time.Second)}, false},
		{"only the reference is gone: standbys still heard", isolationFacts{9, ago(10 * time.Second), ago(ms(200))}, false},
		{"a standby heard just inside the window", isolationFacts{9, ago(10 * time.Second), ago(ms(2999))}, false},
		{"no reference ever answered", isolationFacts{9, time.Time{}, ago(10 * time.Second)}, false},
		{"no other floatip node ever heard: nobody to hand to", isolationFacts{9, ago(10 * time.Second), time.Time{}}, false},
		{"the group went quiet long before the references", isolationFacts{9, ago(10 * time.Second), ago(time.Hour)}, false},
	}
	for _, tc := range cases {
		if got := holderIsolated(tc.f, now, silence); got != tc.want {
			t.Errorf("%s: %v, want %v", tc.name, got, tc.want)
		}
	}
	if got := isolationSilence(ms(200)); got != 3*time.Second {
		t.Errorf("default silence %v, want 3s", got)
	}
	if got := isolationSilence(5 * time.Second); got != 15*time.Second {
		t.Errorf("silence at --interval 5s: %v, want 15s", got)
	}
}

// lossyRefs is a reference host behind a link that loses each frame with
// probability loss (each way).
type lossyRefs struct {
	rng    *rand.Rand
	loss   float64
	up     bool
	none   bool // no reference hosts configured
	last   time.Time
	probes int
}

func (r *lossyRefs) Probe(now time.Time) {
	r.probes++
	if r.up && r.rng.Float64() >= r.loss && r.rng.Float64() >= r.loss {
		r.last = now.Add(ms(1))
	}
}
func (r *lossyRefs) Reachable(now time.Time, window time.Duration) bool {
	return r.none || now.Sub(r.last) <= window
}
func (r *lossyRefs) HeardAt(time.Time) (time.Time, bool) { return r.last, !r.none }

// holderWorld runs an active machine in 10 ms steps with a standby that
// probes it every 200 ms; standbyUp and loss say whether its probes arrive.
type holderWorld struct {
	m         *Machine
	lan       *fakeLAN
	refs      *lossyRefs
	now       time.Time
	standbyUp bool
	loss      float64
	rng       *rand.Rand
	released  time.Time // when the VIP was first removed
}

func newHolderWorld(t *testing.T, loss float64, seed uint64) *holderWorld {
	t.Helper()
	rng := rand.New(rand.NewPCG(seed, 7))
	refs := &lossyRefs{rng: rng, loss: loss, up: true}
	m, lan := newTestMachineWith(t, 200, "02:00:00:00:00:09", refs, func(*Config) {})
	w := &holderWorld{m: m, lan: lan, refs: refs, now: fiptest.T0, standbyUp: true, loss: loss, rng: rng}
	w.run(2 * time.Second)
	if m.state != event.Active {
		t.Fatalf("setup: state %v, want active", m.state)
	}
	return w
}

var standbyProbe = arpFrame(arp.OperationRequest, "02:00:00:00:00:02", frame.ZeroIPv4, frame.Tag{Priority: 100}.HardwareAddr().String(), testVIP)

func (w *holderWorld) run(d time.Duration) {
	end := w.now.Add(d)
	g := w.m.Group
	g.queue.refresh() // the test may have called handlers directly
	for ; w.now.Before(end); w.now = w.now.Add(ms(10)) {
		if !w.now.Before(g.Next()) {
			g.Tick(w.now)
		}
		if w.standbyUp && w.now.Sub(fiptest.T0)%ms(200) == 0 && w.rng.Float64() >= w.loss {
			g.Dispatch(*standbyProbe, w.now)
		}
		if w.released.IsZero() && w.lan.removes > 0 {
			w.released = w.now
		}
	}
}

func TestMachineIsolatedHolderReleases(t *testing.T) {
	w := newHolderWorld(t, 0, 1)
	w.run(10 * time.Second)
	if w.lan.removes != 0 {
		t.Fatal("released while references and standby answer")
	}
	// Rate: about one reference round a second while all is well.
	probes := w.refs.probes
	w.run(10 * time.Second)
	if n := w.refs.probes - probes; n < 8 || n > 11 {
		t.Errorf("%d reference rounds in 10 s, want about 10", n)
	}

	cut := w.now
	w.refs.up, w.standbyUp = false, false
	// The silence counts from the last frame heard, up to 200 ms before
	// the cut.
	w.run(ms(2700))
	if w.lan.removes != 0 {
		t.Fatalf("released %v after the cut, before 3 s of silence", w.released.Sub(cut))
	}
	probes = len(w.lan.probes)
	w.run(ms(1800))
	if w.lan.removes != 1 || w.m.state != event.Standby || w.lan.configured {
		t.Fatalf("4.5 s after the cut: removes %d, state %v, configured %v", w.lan.removes, w.m.state, w.lan.configured)
	}
	t.Logf("released %v after the cut", w.released.Sub(cut))
	notices := 0
	for _, tag := range w.lan.probes[probes:] {
		if tag.Flags == frame.FlagReleasing {
			notices++
		}
	}
	if notices != 1 {
		t.Errorf("%d release notices when stepping down, want 1", notices)
	}
	// While cut off, the standby it has become never claims.
	w.run(time.Minute)
	if w.lan.adds != 1 {
		t.Errorf("claimed again while cut off: adds %d", w.lan.adds)
	}
}

func TestMachineHolderKeepsTheVIP(t *testing.T) {
	t.Run("only the reference host is gone", func(t *testing.T) {
		w := newHolderWorld(t, 0, 2)
		w.refs.up = false // the gateway reboots; the standby still probes
		w.run(time.Minute)
		if w.lan.removes != 0 {
			t.Errorf("released when only the reference fell silent")
		}
	})
	t.Run("no standby to hand to", func(t *testing.T) {
		w := newHolderWorld(t, 0, 3)
		w.standbyUp = false
		w.run(time.Minute) // the standby is long gone
		w.refs.up = false
		w.run(time.Minute)
		if w.lan.removes != 0 {
			t.Errorf("released with nobody to hand over to")
		}
	})
	t.Run("only standbys that stand aside", func(t *testing.T) {
		w := newHolderWorld(t, 0, 6)
		// The standby's health check fails: it says it will not take the VIP.
		unhealthy := arpFrame(arp.OperationRequest, "02:00:00:00:00:02", frame.ZeroIPv4, frame.Tag{Priority: 100, Flags: frame.FlagStandAside}.HardwareAddr().String(), testVIP)
		w.m.onFrame(*unhealthy, w.now)
		w.standbyUp = false
		for range 600 { // a minute of its probes, then the cut
			w.run(ms(100))
			w.m.onFrame(*unhealthy, w.now)
		}
		w.refs.up = false
		w.run(time.Minute)
		if w.lan.removes != 0 {
			t.Errorf("released with only a standby that cannot take the VIP")
		}
	})
	t.Run("no reference hosts", func(t *testing.T) {
		w := newHolderWorld(t, 0, 4)
		w.refs.none = true
		w.run(10 * time.Second)
		w.refs.up = false
		w.standbyUp = false
		probes := w.refs.probes
		w.run(time.Minute)
		if w.lan.removes != 0 {
			t.Errorf("released without reference hosts (--no-reference must keep the old behaviour)")
		}
		if n := w.refs.probes - probes; n != 0 {
			t.Errorf("%d reference probes with no reference hosts", n)
		}
	})
}

// TestMachineIsolationLossDoesNotRelease: 10 % loss each way on every frame
// (a reference round fails 19 % of the time, a standby's probe 10 %) for
// six simulated hours causes no release.
func TestMachineIsolationLossDoesNotRelease(t *testing.T) {
	if testing.Short() {
		t.Skip("long simulation")
	}
	w := newHolderWorld(t, 0.10, 5)
	w.run(6 * time.Hour)
	if w.lan.removes != 0 {
		t.Fatalf("released at %v under 10%% loss", w.released.Sub(fiptest.T0))
	}
}

// failingRemove is a Address whose removal fails (netlink refuses).
type failingRemove struct {
	*fakeLAN
	attempts int
}

func (f *failingRemove) Remove() error {
	f.attempts++
	return errors.New("operation not permitted")
}

// A cut-off holder whose removal fails stays the holder and tries again
// once a round, never in a tight loop.
func TestMachineIsolatedHolderRemovalFails(t *testing.T) {
	w := newHolderWorld(t, 0, 8)
	addr := &failingRemove{fakeLAN: w.lan}
	w.m.Address = addr
	w.refs.up, w.standbyUp = false, false
	w.run(10 * time.Second)
	if w.m.state != event.Active || !w.m.added {
		t.Fatalf("state %v, added %v after failed removals", w.m.state, w.m.added)
	}
	if addr.attempts < 5 || addr.attempts > 40 {
		t.Errorf("%d removal attempts in 10 s, want about one per fast round", addr.attempts)
	}
	if !w.m.nextWake().After(w.now) {
		t.Errorf("next wake %v is not after now %v: a tight loop", w.m.nextWake(), w.now)
	}
}
