package operator

import (
	"context"
	"errors"
	"log/slog"
	"time"
)

// healthCounter turns a series of check results into a verdict with
// hysteresis: rise consecutive passes make an unhealthy host healthy, fall
// consecutive failures make a healthy host unhealthy, and a result that
// agrees with the verdict resets the count. It starts unhealthy — a host
// must prove its service works before it may claim — and the first pass
// counts like any other: with rise=1 the first pass makes it healthy.
type healthCounter struct {
	rise, fall int
	healthy    bool
	streak     int // consecutive results that contradict the verdict
}

func newHealthCounter(rise, fall int) healthCounter {
	return healthCounter{rise: rise, fall: fall}
}

// observe records one result and reports whether the verdict changed.
func (c *healthCounter) observe(pass bool) bool {
	if pass == c.healthy {
		c.streak = 0
		return false
	}
	c.streak++
	need := c.rise
	if c.healthy {
		need = c.fall
	}
	if c.streak < need {
		return false
	}
	c.healthy, c.streak = pass, 0
	return true
}

// healthCheck runs the operator's --check command every interval.
type healthCheck struct {
	argv       []string
	interval   time.Duration
	timeout    time.Duration
	rise, fall int
	healthy    bool // the verdict it starts from
	log        *slog.Logger
}

// NewHealthCheck makes a check; the caller validates the numbers (rise and
// fall at least 1, interval and timeout positive). healthy is the verdict
// to start from: false when the daemon starts (a host proves its service
// works before it may claim), the previous program's after a reload.
func NewHealthCheck(argv []string, interval, timeout time.Duration, rise, fall int, healthy bool, log *slog.Logger) *healthCheck {
	return &healthCheck{argv: argv, interval: interval, timeout: timeout, rise: rise, fall: fall, healthy: healthy, log: log}
}

// Run checks until ctx ends, then returns nil (a check still running is
// killed). The verdict starts as NewHealthCheck was told and onChange is called, from Run's
// goroutine, only when it changes: it must not block for long. Exit 0 is a
// pass; any other exit, a timeout or a command that cannot start is a
// failure. Transitions are logged once each, plus the first failure after
// start, so that an operator sees why a host does not claim; single
// results are logged at debug level only.
func (h *healthCheck) Run(ctx context.Context, onChange func(healthy bool)) error {
	if len(h.argv) == 0 || h.argv[0] == "" {
		return errors.New("health check: no command given")
	}
	counter := newHealthCounter(h.rise, h.fall)
	counter.healthy = h.healthy
	toldStartFailure := false
	timer := time.NewTimer(0)
	defer timer.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-timer.C:
		}
		start := time.Now()
		res := runCommand(ctx, h.argv, nil, h.timeout)
		if ctx.Err() != nil {
			return nil
		}
		pass := res.err == nil
		attrs := []any{"exit", res.exitCode, "duration", res.duration.Round(time.Millisecond).String()}
		if !pass {
			attrs = append(attrs, "err", res.err.Error(), "output", res.output)
		}
		h.log.Debug("health check run", append(attrs, "pass", pass)...)
		switch {
		case counter.observe(pass):
			if counter.healthy {
				h.log.Info("health check passing: healthy", append(attrs, "rise", h.rise)...)
			} else {
				h.log.Warn("health check failing: unhealthy", append(attrs, "fall", h.fall)...)
			}
			onChange(counter.healthy)
		case !pass && !counter.healthy && !toldStartFailure:
			h.log.Warn("health check failing: not healthy yet", attrs...)
		}
		if !pass {
			toldStartFailure = true
		}
		// Start to start, so the period does not drift by the check's run
		// time; a check slower than the interval is followed at once.
		timer.Reset(time.Until(start.Add(h.interval)))
	}
}
