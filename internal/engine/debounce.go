package engine

import (
	"time"
)

// debouncer decides when a silent VIP is free. A standby probes every
// Interval while the holder answers. One unanswered probe switches it to
// fast re-probing (a quarter of the interval), so a single lost frame is
// re-checked at once instead of counting toward a low bar. The VIP is free
// only when at least `misses` probes in a row went unanswered AND no answer
// was seen for misses × interval. With 5 % loss a false "free" needs about
// five losses in a row; a real death is seen within misses × interval of
// the holder's last answer.
type debouncer struct {
	interval time.Duration
	misses   int

	lastAnswer  time.Time // last sign of life from a holder
	missedInRow int
}

func newDebouncer(interval time.Duration, misses int, now time.Time) *debouncer {
	// Start as if the holder had just answered: a booting standby waits a
	// full dead time before it may claim.
	return &debouncer{interval: interval, misses: misses, lastAnswer: now}
}

// answered records a sign of life from the holder.
func (d *debouncer) answered(now time.Time) {
	d.lastAnswer = now
	d.missedInRow = 0
}

// missed records one probe that went unanswered for its whole spacing.
func (d *debouncer) missed() { d.missedInRow++ }

// deadTime is how long the holder must be silent before the VIP is free.
func (d *debouncer) deadTime() time.Duration { return time.Duration(d.misses) * d.interval }

// free reports whether the holder has been silent long enough.
func (d *debouncer) free(now time.Time) bool {
	return d.missedInRow >= d.misses && now.Sub(d.lastAnswer) >= d.deadTime()
}

// spacing is the time until the next probe: the interval while the holder
// answers, a quarter of it once a probe went unanswered.
func (d *debouncer) spacing() time.Duration {
	if d.missedInRow == 0 {
		return d.interval
	}
	return FastSpacing(d.interval)
}

// forceFree marks the VIP free at once: its holder said it is leaving.
func (d *debouncer) forceFree(now time.Time) {
	d.missedInRow = d.misses
	d.lastAnswer = now.Add(-d.deadTime())
}

// FastSpacing is the probe spacing after a first miss, and the least gap
// between probes of the reference hosts: a quarter of the interval.
func FastSpacing(interval time.Duration) time.Duration {
	return max(interval/4, time.Millisecond)
}
