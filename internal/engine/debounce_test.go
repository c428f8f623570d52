package engine

import (
	"testing"

	"floatip/internal/fiptest"
)

func TestDebouncer(t *testing.T) {
	// Interval 200ms, misses 3: free needs >= 3 unanswered probes in a row
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
