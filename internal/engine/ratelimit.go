package engine

import (
	"context"
	"log/slog"
	"time"
)

// rateLimit lets events through in a burst, then one per every; it counts
// what it held back, so that the next event that goes through can say so.
// The zero value lets nothing through; use newRateLimit.
type rateLimit struct {
	every      time.Duration
	burst      int
	tokens     int
	refilled   time.Time
	suppressed int
}

func newRateLimit(every time.Duration, burst int) *rateLimit {
	return &rateLimit{every: every, burst: burst, tokens: burst}
}

// allow reports whether an event at now goes through and, if it does, how
// many were held back since the last one that did.
func (r *rateLimit) allow(now time.Time) (ok bool, suppressed int) {
	if r.refilled.IsZero() || r.tokens >= r.burst {
		r.refilled = now // a full bucket does not save up time
	} else if n := int(now.Sub(r.refilled) / r.every); n > 0 {
		r.tokens = min(r.burst, r.tokens+n)
		r.refilled = r.refilled.Add(time.Duration(n) * r.every)
	}
	if r.tokens <= 0 {
		r.suppressed++
		return false, 0
	}
	r.tokens--
	suppressed, r.suppressed = r.suppressed, 0
	return true, suppressed
}

// Log lines caused by frames from the LAN: a few at once, then one per
// minute and message. A flood of foreign ARP must not become one line per
// frame (or per foreign MAC); what was held back is counted in the next line.
const (
	lanLogEvery = time.Minute
	lanLogBurst = 5
)

// limitedLog writes log lines at most as often as its rateLimit per
// message allows. Messages are constant strings, so the map stays small.
type limitedLog struct {
	log    *slog.Logger
	limits map[string]*rateLimit
	every  time.Duration
	burst  int
}

func newLimitedLog(log *slog.Logger, every time.Duration, burst int) *limitedLog {
	return &limitedLog{log: log, limits: map[string]*rateLimit{}, every: every, burst: burst}
}

// logAt writes msg at level unless this message has used up its share;
// a line after held-back ones carries suppressed=N.
func (l *limitedLog) logAt(now time.Time, level slog.Level, msg string, args ...any) {
	if !l.log.Enabled(context.Background(), level) {
		return
	}
	r := l.limits[msg]
	if r == nil {
		r = newRateLimit(l.every, l.burst)
		l.limits[msg] = r
	}
	ok, suppressed := r.allow(now)
	if !ok {
		return
	}
	if suppressed > 0 {
		args = append(args, "suppressed", suppressed)
	}
	l.log.Log(context.Background(), level, msg, args...)
}
