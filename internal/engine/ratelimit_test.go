package engine

import (
	"bytes"
	"log/slog"
	"strings"
	"testing"
	"time"

	"floatip/internal/fiptest"
)

func TestRateLimit(t *testing.T) {
	r := newRateLimit(10*time.Second, 3)
	type step struct {
		at         time.Duration
		ok         bool
		suppressed int
	}
	steps := []step{
		{0, true, 0}, {time.Millisecond, true, 0}, {2 * time.Millisecond, true, 0}, // the burst
		{3 * time.Millisecond, false, 0}, {4 * time.Millisecond, false, 0}, {9 * time.Second, false, 0},
		{10 * time.Second, true, 3}, // one token per 10 s, and the count of what was held back
		{11 * time.Second, false, 0},
		{20 * time.Second, true, 1},
		{time.Hour, true, 0}, {time.Hour, true, 0}, {time.Hour, true, 0}, // refilled, but no more than the burst
		{time.Hour, false, 0},
	}
	for i, s := range steps {
		ok, suppressed := r.allow(fiptest.T0.Add(s.at))
		if ok != s.ok || suppressed != s.suppressed {
			t.Errorf("step %d at %v: allow = %v, %d; want %v, %d", i, s.at, ok, suppressed, s.ok, s.suppressed)
		}
	}
}

// TestRateLimitSteadyFlood: over a long flood the lines are the burst plus
// one per interval, whatever the rate of events.
func TestRateLimitSteadyFlood(t *testing.T) {
	r := newRateLimit(time.Minute, 5)
	passed := 0
	for at := time.Duration(0); at < 10*time.Minute; at += 100 * time.Microsecond {
		if ok, _ := r.allow(fiptest.T0.Add(at)); ok {
			passed++
		}
	}
	if passed != 5+10-1 && passed != 5+10 {
		t.Errorf("%d events passed in 10 minutes at 10 000/s, want 14 or 15", passed)
	}
}

func TestLimitedLog(t *testing.T) {
	var buf bytes.Buffer
	l := newLimitedLog(slog.New(slog.NewTextHandler(&buf, nil)), time.Minute, 2)
	for i := range 100 {
		l.logAt(fiptest.T0.Add(time.Duration(i)*time.Millisecond), slog.LevelInfo, "noisy", "i", i)
	}
	l.logAt(fiptest.T0, slog.LevelWarn, "other message", "k", "v") // its own share
	l.logAt(fiptest.T0.Add(time.Minute), slog.LevelInfo, "noisy", "i", 100)
	l.logAt(fiptest.T0, slog.LevelDebug, "below the level")
	lines := strings.Split(strings.TrimSpace(buf.String()), "\n")
	if len(lines) != 4 {
		t.Fatalf("%d lines, want 4:\n%s", len(lines), buf.String())
	}
	for i, want := range []string{"msg=noisy i=0", "msg=noisy i=1", `msg="other message" k=v`, "msg=noisy i=100 suppressed=98"} {
		if !strings.Contains(lines[i], want) {
			t.Errorf("line %d = %q, want it to contain %q", i, lines[i], want)
		}
	}
}
