package engine

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

	"floatip/internal/event"
	"floatip/internal/fiptest"
	"floatip/internal/wire/frame"

	"github.com/mdlayher/arp"
)

func TestMachineStaysStandbyWhileTheHolderAnswers(t *testing.T) {
	m, lan := newTestMachine(t, 200, "02:00:00:00:00:09")
	advance(m, fiptest.T0, fiptest.T0.Add(time.Minute), func(time.Time) *frame.Frame { return holderReply("02:00:00:00:00:01") })
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
	advance(m, fiptest.T0, fiptest.T0.Add(10*time.Minute), func(time.Time) *frame.Frame {
		if rng.Float64() < 1-0.95*0.95 {
			return nil
		}
		return holderReply("02:00:00:00:00:01")
	})
	if lan.adds != 0 {
		t.Fatalf("took over %d times from a live holder on a lossy link", lan.adds)
	}
}

func TestMachineLeavesTheClaimToABetterStandby(t *testing.T) {
	m, lan := newTestMachine(t, 100, "02:00:00:00:00:09")
	better := frame.Tag{Priority: 200}.HardwareAddr().String()
	// The better standby keeps probing; nobody holds the VIP.
	advance(m, fiptest.T0, fiptest.T0.Add(3*time.Second), func(time.Time) *frame.Frame {
		return arpFrame(arp.OperationRequest, "02:00:00:00:00:05", frame.ZeroIPv4, better, testVIP)
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

// A standby probes a known holder by unicast (no broadcast load on the LAN)
// and goes broadcast as soon as one probe is missed.
func TestMachineProbesTheHolderByUnicast(t *testing.T) {
	m, lan := newTestMachine(t, 100, "02:00:00:00:00:09")
	holder := "02:00:00:00:00:01"
	now := advance(m, fiptest.T0, fiptest.T0.Add(2*time.Second), func(time.Time) *frame.Frame { return holderReply(holder) })
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
	m, lan := newTestMachineWith(t, 100, "02:00:00:00:00:09", refs, func(*Config) {})
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
	holderTag := frame.Tag{Priority: 50, Flags: frame.FlagHolder}.HardwareAddr().String()
	// The lower-priority holder's self-check (its rank), then its kernel's replies.
	lowerHolder := func(at time.Time) *frame.Frame {
		if at.Sub(fiptest.T0)%time.Second < ms(200) {
			return arpFrame(arp.OperationRequest, holder, frame.ZeroIPv4, holderTag, testVIP)
		}
		return holderReply(holder)
	}
	for _, preempt := range []bool{false, true} {
		m, lan := newTestMachineWith(t, 200, "02:00:00:00:00:09", nil, func(c *Config) {
			c.Preempt, c.PreemptDelay = preempt, 3*time.Second
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

// TestMachineFencing: the --fence command runs before a standby claims from
// a silent holder; the claim goes ahead only if it succeeds.
func TestMachineFencing(t *testing.T) {
	for _, fenceOK := range []bool{true, false} {
		m, lan := newTestMachine(t, 100, "02:00:00:00:00:09")
		fenceDone := make(chan FenceResult, 1)
		m.FenceDone = fenceDone
		var fenced []string
		m.Fence = func(_ context.Context, vip netip.Addr, holder net.HardwareAddr) error {
			fenced = append(fenced, holder.String())
			if !fenceOK {
				return errors.New("exit status 1")
			}
			return nil
		}
		death := fiptest.T0.Add(2 * time.Second)
		now := advance(m, fiptest.T0, death.Add(time.Second), func(at time.Time) *frame.Frame {
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
	cfg := Config{Priority: 100, Interval: ms(200), Misses: 3, AnnounceCount: 1, AnnounceSpacing: ms(1100), AnnounceForm: frame.FormRequest}
	m := NewMachine(testVIP, cfg, Deps{Interface: "eth0", Log: slog.New(slog.NewTextHandler(io.Discard, nil)), ARP: lan, Address: lan, StartUnhealthy: true}, StartStandby, fiptest.T0)
	m.onEvent(EvLinkUp, fiptest.T0)
	now := advance(m, fiptest.T0, fiptest.T0.Add(5*time.Second), nil)
	if lan.adds != 0 {
		t.Fatal("claimed before the health check passed")
	}
	m.onEvent(EvHealthy, now)
	now = advance(m, now, now.Add(ms(300)), nil)
	if m.state != event.Active {
		t.Fatalf("state %v once healthy on an empty network", m.state)
	}
	m.onEvent(EvUnhealthy, now)
	if lan.configured || m.state != event.Standby {
		t.Fatalf("unhealthy holder kept the VIP: state %v", m.state)
	}
	if last := lan.probes[len(lan.probes)-1]; last.Flags != frame.FlagReleasing {
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

// HeardAt is its last answer by now.
func (g *gatewayRefs) HeardAt(now time.Time) (time.Time, bool) {
	var last time.Time
	for _, a := range g.asks {
		if at := a.Add(g.delay); !now.Before(at) {
			last = at
		}
	}
	return last, true
}

func (g *gatewayRefs) Reachable(now time.Time, window time.Duration) bool {
	at, _ := g.HeardAt(now)
	return !at.IsZero() && now.Sub(at) <= window
}

// With reference hosts, a standby that followed a live holder has not
// asked them lately when the release notice comes: it asks then, and
// claims once the answer is in, without calling itself cut off.
func TestMachineReleaseNoticeWithReferences(t *testing.T) {
	refs := &gatewayRefs{delay: ms(2)}
	m, lan := newTestMachineWith(t, 100, "02:00:00:00:00:09", refs, func(*Config) {})
	holder := "02:00:00:00:00:01"
	now := advance(m, fiptest.T0, fiptest.T0.Add(2*time.Second), func(time.Time) *frame.Frame { return holderReply(holder) })
	notice := arpFrame(arp.OperationRequest, holder, frame.ZeroIPv4, frame.Tag{Priority: 100, Flags: frame.FlagReleasing}.HardwareAddr().String(), testVIP)
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
	m, lan := newTestMachineWith(t, 100, "02:00:00:00:00:09", refs, func(*Config) {})
	holder := "02:00:00:00:00:01"
	now := advance(m, fiptest.T0, fiptest.T0.Add(2*time.Second), func(time.Time) *frame.Frame { return holderReply(holder) })
	advance(m, now, now.Add(3*time.Second), nil) // the holder dies
	if lan.adds != 0 || m.state != event.Standby {
		t.Fatalf("claimed with no reference host answering: state %v, adds %d", m.state, lan.adds)
	}
	if !m.saidIsolated || len(refs.asks) == 0 {
		t.Errorf("said it is cut off: %v, references asked %d times; want both", m.saidIsolated, len(refs.asks))
	}
}
