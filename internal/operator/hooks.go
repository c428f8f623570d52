package operator

import (
	"context"
	"log/slog"
	"net/netip"
	"sync"
	"time"

	"floatip/internal/event"
)

// hookRunner runs the operator's --on-up, --on-down and --on-change
// commands on state changes. It is an observer: StateChanged only records
// the change and starts a goroutine, so a slow or failing hook never delays
// failover.
//
// Concurrency and ordering: each VIP has two lanes, one for --on-up and
// --on-down (so that an up never overtakes the down before it) and one for
// --on-change. A lane runs one hook at a time. Changes arriving while it
// runs are coalesced into one pending change, from the state the running
// hook was told about to the latest state; when the run ends, the pending
// change runs if it still calls for a hook. So after a flap the last hook a
// lane ran always describes the current state, at most two runs per lane are
// ever outstanding, and intermediate states of a burst may be skipped (the
// skip is logged). A coalesced change that ends where it started (active →
// standby → active during an on-up) runs nothing.
//
// A event.Change with From == To is an update of the facts (the initial
// state, a new holder), not a transition: it runs no hook.
type hookRunner struct {
	onUp, onDown, onChange []string
	timeout                time.Duration
	log                    *slog.Logger

	mu       sync.Mutex
	lanes    map[hookLaneKey]*hookLane
	closed   bool           // wait has begun: no new runs
	inFlight sync.WaitGroup // one per busy lane
}

type hookLaneKind int

const (
	laneUpDown hookLaneKind = iota // --on-up and --on-down, in order
	laneChange                     // --on-change
)

type hookLaneKey struct {
	vip  netip.Addr
	kind hookLaneKind
}

type hookLane struct {
	busy    bool
	pending *event.Change // coalesced changes that came while busy
}

// NewHookRunner makes a runner; a nil or empty argv means no such hook.
// Each run is killed (with its process group) after timeout.
func NewHookRunner(onUp, onDown, onChange []string, timeout time.Duration, log *slog.Logger) *hookRunner {
	return &hookRunner{
		onUp:     nonEmpty(onUp),
		onDown:   nonEmpty(onDown),
		onChange: nonEmpty(onChange),
		timeout:  timeout,
		log:      log,
		lanes:    map[hookLaneKey]*hookLane{},
	}
}

func nonEmpty(argv []string) []string {
	if len(argv) == 0 || argv[0] == "" {
		return nil
	}
	return argv
}

// pickHook is the hook a lane runs for a change: name and argv, or nil argv.
func (r *hookRunner) pickHook(kind hookLaneKind, c event.Change) (string, []string) {
	if c.From == c.To {
		return "", nil
	}
	switch kind {
	case laneUpDown:
		if c.To == event.Active {
			return "on-up", r.onUp
		}
		if c.From == event.Active {
			return "on-down", r.onDown
		}
	case laneChange:
		return "on-change", r.onChange
	}
	return "", nil
}

// laneKinds are the lanes that have a hook configured.
func (r *hookRunner) laneKinds() []hookLaneKind {
	var kinds []hookLaneKind
	if r.onUp != nil || r.onDown != nil {
		kinds = append(kinds, laneUpDown)
	}
	if r.onChange != nil {
		kinds = append(kinds, laneChange)
	}
	return kinds
}

// StateChanged implements observer; it never blocks on a hook.
func (r *hookRunner) StateChanged(c event.Change) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.closed {
		if c.From != c.To && len(r.laneKinds()) > 0 {
			r.log.Warn("hooks not run: shutting down", "vip", c.VIP.String(), "state", c.To.String(), "previous_state", c.From.String())
		}
		return
	}
	for _, kind := range r.laneKinds() {
		key := hookLaneKey{c.VIP, kind}
		lane := r.lanes[key]
		if lane == nil {
			lane = &hookLane{}
			r.lanes[key] = lane
		}
		if lane.busy {
			if lane.pending == nil {
				p := c
				lane.pending = &p
				continue
			}
			if name, argv := r.pickHook(kind, *lane.pending); argv != nil {
				r.log.Info("hook skipped: a later change superseded it while an earlier run was busy", "hook", name, "vip", c.VIP.String(),
					"state", lane.pending.To.String(), "previous_state", lane.pending.From.String())
			}
			from := lane.pending.From
			p := c
			p.From = from
			lane.pending = &p
			continue
		}
		if _, argv := r.pickHook(kind, c); argv == nil {
			continue
		}
		lane.busy = true
		r.inFlight.Add(1)
		go r.drain(kind, lane, c)
	}
}

// drain runs the lane's hook for c, then for the pending change, until
// nothing is pending.
func (r *hookRunner) drain(kind hookLaneKind, lane *hookLane, c event.Change) {
	defer r.inFlight.Done()
	for {
		if name, argv := r.pickHook(kind, c); argv != nil {
			r.runHook(name, argv, c)
		}
		r.mu.Lock()
		if lane.pending == nil {
			lane.busy = false
			r.mu.Unlock()
			return
		}
		c, lane.pending = *lane.pending, nil
		r.mu.Unlock()
	}
}

// runHook runs one hook and logs its outcome in one line. Shutdown does not
// cut it short: the hook that reports a release at exit must still run, and
// its timeout bounds it.
func (r *hookRunner) runHook(name string, argv []string, c event.Change) {
	res := runCommand(context.Background(), argv, ChangeEnv(c), r.timeout)
	attrs := []any{"hook", name, "vip", c.VIP.String(), "state", c.To.String(), "previous_state", c.From.String(),
		"exit", res.exitCode, "duration", res.duration.Round(time.Millisecond).String(), "output", res.output}
	switch {
	case res.err == nil:
		r.log.Info("hook finished", attrs...)
	case res.timedOut:
		r.log.Warn("hook timed out and was killed", append(attrs, "timeout", r.timeout.String())...)
	default:
		r.log.Warn("hook failed", append(attrs, "err", res.err.Error())...)
	}
}

// Counted implements observer: hooks do not care about counts.
func (r *hookRunner) Counted(netip.Addr, string) {}

// Wait stops accepting changes and returns when every running or pending
// hook has finished; each is bounded by the timeout, so wait returns within
// two hook timeouts (a running run, then the pending one; lanes run in
// parallel). Call it after the machines have stopped, so that the hooks for
// the releases at exit are started before.
func (r *hookRunner) Wait() {
	r.mu.Lock()
	r.closed = true
	r.mu.Unlock()
	r.inFlight.Wait()
}

// ChangeEnv is the environment of a hook (or fence) for a change, added to
// the daemon's own.
func ChangeEnv(c event.Change) []string {
	holder := ""
	if c.Holder != nil {
		holder = c.Holder.String()
	}
	return []string{
		"FLOATIP_STATE=" + c.To.String(),
		"FLOATIP_PREVIOUS_STATE=" + c.From.String(),
		"FLOATIP_VIP=" + c.VIP.String(),
		"FLOATIP_INTERFACE=" + c.Interface,
		"FLOATIP_HOLDER=" + holder,
		"FLOATIP_REASON=" + c.Reason,
	}
}
