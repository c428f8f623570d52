package integration

// The chaos run's checker (chaos_test.go injects the faults): pure
// functions from what was observed — the VIP's holders sampled in every
// namespace, the client's gaps, the faults and the nodes' conditions — to
// invariant violations. They are table-tested below with synthetic
// observations, so that a checker that cannot fail would show here.

import (
	"fmt"
	"math/bits"
	"sort"
	"strings"
	"time"

	"floatip/internal/fiptest"
)

// Fault kinds the chaos run injects.
const (
	faultKill9     = "kill-9"    // SIGKILL a daemon, restart it after the hold
	faultTerm      = "sigterm"   // SIGTERM a daemon (it must exit 0), restart it after the hold
	faultStop      = "stop"      // SIGSTOP a daemon, SIGCONT after the hold
	faultCut       = "cut"       // the host's bridge port down (NO-CARRIER), up after the hold
	faultPartition = "partition" // one or two hosts silently isolated (carrier up), healed after the hold
	faultLoss      = "loss"      // 5-20 % frame loss both ways on a host's port, removed after the hold
	faultVIPDel    = "vip-del"   // a VIP deleted by hand on its holder
	faultHealth    = "health"    // a host's health check starts failing, passes again after the hold
)

var chaosFaultKinds = []string{faultKill9, faultTerm, faultStop, faultCut, faultPartition, faultLoss, faultVIPDel, faultHealth}

// chaosFault is one injected fault: injected at Start, undone at Restored;
// its window (for the client's outages) runs until End, the next fault's
// Start or the end of the run.
type chaosFault struct {
	N        int
	Kind     string
	Targets  []string
	Detail   string
	Start    time.Time
	Restored time.Time
	End      time.Time
}

// allowsTwoHolders: while a partition lasts both sides may hold the VIP,
// and heavy loss may let a standby believe the holder is dead.
func (f chaosFault) allowsTwoHolders() bool { return f.Kind == faultPartition || f.Kind == faultLoss }

// holdSample is one look at every host: for each VIP (by index) the set of
// Hosts (bit i-1 for host hi) that have it configured.
type holdSample struct {
	At      time.Time
	Holders []uint64
}

// clientGap is a gap in the client's answers from one VIP: between the
// send times of two answered requests, with Lost unanswered ones between.
type clientGap struct {
	VIP        int
	Start, End time.Time
	Lost       int
	FirstLost  time.Time // when the first lost request was sent (zero: unknown)
	From, To   string
	Open       bool // still open at the end of the run
	Planned    bool // a shared address's bucket moving by plan (bound: at least PlannedMove)
}

func (g clientGap) length() time.Duration { return g.End.Sub(g.Start) }

// outage is the gap as a client sending every `every` lived it: at most
// (lost + 1) × every. A gap with fewer lost requests than its length
// implies is the client itself not being scheduled (two cores shared by
// the whole lab), not the VIP being unreachable.
func (g clientGap) outage(every time.Duration) time.Duration {
	if every <= 0 {
		return g.length()
	}
	return min(g.length(), time.Duration(g.Lost+1)*every)
}

// nodeCond is one of the conditions that make a node able to take the VIP.
type nodeCond int

const (
	condRunning   nodeCond = iota // the daemon process runs (not killed, not stopped by SIGTERM)
	condAwake                     // not SIGSTOPped
	condConnected                 // carrier up and not isolated
	condHealthy                   // its health check passes
	numConds
)

// nodeEvent is a change of one of a host's conditions.
type nodeEvent struct {
	At   time.Time
	Host int // 1-based
	Cond nodeCond
	Up   bool
}

// span is a time interval [From, To).
type span struct{ From, To time.Time }

// chaosBounds are the invariants' limits.
type chaosBounds struct {
	NoHolder   time.Duration // (misses × interval + claim) + 20 %
	TwoHolders time.Duration // after the last heal
	RiseDelay  time.Duration // a (re)started daemon, or a check that passes again, needs this to be healthy
	// Outage bounds of the client, from the benchmark's targets.
	Failover  time.Duration // a holder's death: ≤ 800 ms
	Handover  time.Duration // a graceful release: ≤ 100 ms, + 20 % for several VIPs at once
	Readd     time.Duration // a VIP deleted behind floatip's back, re-added: ≤ 100 ms
	AfterHeal time.Duration // second outage after a partition heals: ≤ 50 ms
	// DeadTime is misses × interval: how long a standby waits for a better
	// standby it heard to claim.
	DeadTime time.Duration
	// ClientEvery is the client's request interval (0: judge gaps by their length).
	ClientEvery time.Duration
	// PlannedMove: a shared address's bucket moving by plan (a join) has
	// no owner until the taker's delay, two intervals, is over.
	PlannedMove time.Duration
}

// outageBound is the longest client outage a fault may cause while it
// lasts (during) or after it is undone.
func (b chaosBounds) outageBound(f chaosFault, during bool) time.Duration {
	switch f.Kind {
	case faultTerm, faultHealth:
		if during {
			return b.Handover // the holder releases with a notice
		}
		return b.Failover // a restarted or recovered node rejoins as a standby
	case faultVIPDel:
		return b.Readd // re-added within milliseconds
	case faultPartition:
		if !during {
			return b.AfterHeal
		}
		if len(f.Targets) > 1 {
			// Two hosts at once, possibly the holder and the best standby:
			// the others heard that standby within the dead time and leave
			// the claim to it, so they wait out one more dead time.
			return b.Failover + b.DeadTime
		}
		return b.Failover
	case faultCut:
		if during {
			return b.Failover
		}
		return b.AfterHeal
	}
	return b.Failover // kill -9, SIGSTOP, loss: at worst a holder's death
}

// violation is one broken invariant.
type violation struct {
	At     time.Time
	Kind   string // two-holders, no-holder, outage, exit, memory
	VIP    string
	Detail string
}

func (v violation) String() string {
	vip := ""
	if v.VIP != "" {
		vip = " " + v.VIP
	}
	return fmt.Sprintf("%s%s: %s", v.Kind, vip, v.Detail)
}

// holderNames lists the hosts of a holder set.
func holderNames(set uint64) string {
	var hs []string
	for set != 0 {
		i := bits.TrailingZeros64(set)
		hs = append(hs, fmt.Sprintf("h%d", i+1))
		set &^= 1 << i
	}
	if len(hs) == 0 {
		return "none"
	}
	return strings.Join(hs, "+")
}

// twoHolderViolations: a VIP held by two hosts or more at two samples in a
// row (one sample may straddle a handover, the namespaces being read one
// after the other), neither during a partition or loss fault nor within
// bound of the last heal (any fault undone, a daemon restarted), nor while
// the daemon of one of its holders is killed or stopped after the episode
// began (a split brain being resolved needs both daemons: the loser waits
// for the winner's announcement). One violation per episode.
func twoHolderViolations(samples []holdSample, faults []chaosFault, vips []string, bound time.Duration) []violation {
	var out []violation
	// holderDaemonDown: a kill-9 or stop of a holder's daemon that began
	// during the episode (since) and was not undone more than bound ago.
	holderDaemonDown := func(t, since time.Time, holders uint64) bool {
		for _, f := range faults {
			if (f.Kind != faultKill9 && f.Kind != faultStop) || f.Start.Before(since) || t.Before(f.Start) || t.Sub(f.Restored) > bound {
				continue
			}
			for _, h := range f.Targets {
				if i := fiptest.HostIndex(h); i >= 1 && holders&(1<<(i-1)) != 0 {
					return true
				}
			}
		}
		return false
	}
	excused := func(t time.Time) bool {
		for _, f := range faults {
			if f.allowsTwoHolders() && !t.Before(f.Start) && t.Before(f.Restored) {
				return true
			}
			if !f.Restored.After(t) && t.Sub(f.Restored) <= bound {
				return true
			}
			if f.Kind == faultVIPDel && !t.Before(f.Start) && t.Sub(f.Start) <= bound {
				return true
			}
		}
		return false
	}
	for v := range vips {
		run, reported := 0, false
		var first, episode time.Time // episode: since when two or more hold it
		for _, s := range samples {
			if bits.OnesCount64(s.Holders[v]) < 2 {
				episode = time.Time{}
			} else if episode.IsZero() {
				episode = s.At
			}
			if bits.OnesCount64(s.Holders[v]) < 2 || excused(s.At) || holderDaemonDown(s.At, episode, s.Holders[v]) {
				if bits.OnesCount64(s.Holders[v]) < 2 {
					reported = false
				}
				run = 0
				continue
			}
			if run == 0 {
				first = s.At
			}
			run++
			if run >= 2 && !reported {
				reported = true
				out = append(out, violation{At: first, Kind: "two-holders", VIP: vips[v],
					Detail: fmt.Sprintf("held by %s with no partition or loss and more than %v after the last heal", holderNames(s.Holders[v]), bound)})
			}
		}
	}
	return out
}

// eligibleSpans computes, per host (index 1..hosts), when it was able to
// take a VIP: running, awake, connected and healthy. Every condition holds
// from start on unless events say otherwise; a daemon that (re)starts and a
// check that passes again count only RiseDelay later (the daemon starts
// unhealthy and needs --rise passes).
func eligibleSpans(events []nodeEvent, hosts int, start, end time.Time, riseDelay time.Duration) [][]span {
	evs := append([]nodeEvent(nil), events...)
	sort.SliceStable(evs, func(i, j int) bool { return evs[i].At.Before(evs[j].At) })
	out := make([][]span, hosts+1)
	for h := 1; h <= hosts; h++ {
		var up [numConds]bool
		var since [numConds]time.Time
		for c := range up {
			up[c], since[c] = true, start
		}
		var open *span
		// at re-evaluates the host's eligibility after a change at t.
		at := func(t time.Time) {
			ok := true
			from := start
			for c := range up {
				if !up[c] {
					ok = false
					break
				}
				if since[c].After(from) {
					from = since[c]
				}
			}
			if open != nil && !ok {
				open.To = t
				out[h] = append(out[h], *open)
				open = nil
			}
			if open == nil && ok {
				open = &span{From: from}
			}
		}
		at(start)
		for _, e := range evs {
			if e.Host != h || e.At.After(end) {
				continue
			}
			if up[e.Cond] == e.Up {
				continue
			}
			up[e.Cond] = e.Up
			if e.Up {
				since[e.Cond] = e.At
				if e.Cond == condRunning || e.Cond == condHealthy {
					since[e.Cond] = e.At.Add(riseDelay)
				}
			}
			at(e.At)
		}
		if open != nil {
			open.To = end
			if open.From.Before(open.To) {
				out[h] = append(out[h], *open)
			}
		}
	}
	// A span whose start (delayed by the rise) lies after its end is no span.
	for h := range out {
		kept := out[h][:0]
		for _, s := range out[h] {
			if s.From.Before(s.To) {
				kept = append(kept, s)
			}
		}
		out[h] = kept
	}
	return out
}

// eligibleSince is the earliest start of an eligibility span that contains
// t, over all hosts; ok is false when no host is eligible at t.
func eligibleSince(spans [][]span, t time.Time) (since time.Time, ok bool) {
	for _, hs := range spans {
		for _, s := range hs {
			if !t.Before(s.From) && t.Before(s.To) && (!ok || s.From.Before(since)) {
				since, ok = s.From, true
			}
		}
	}
	return since, ok
}

// noHolderViolations: a VIP held by nobody for longer than bound, counted
// from the later of the first sample without a holder and the moment some
// node became eligible (running, awake, connected, healthy) and stayed so.
// One violation per episode.
func noHolderViolations(samples []holdSample, spans [][]span, vips []string, bound time.Duration) []violation {
	var out []violation
	for v := range vips {
		var episode time.Time
		inEpisode, reported := false, false
		for _, s := range samples {
			if s.Holders[v] != 0 {
				inEpisode, reported = false, false
				continue
			}
			if !inEpisode {
				inEpisode, episode = true, s.At
			}
			since, ok := eligibleSince(spans, s.At)
			if !ok || reported {
				continue
			}
			from := episode
			if since.After(from) {
				from = since
			}
			if s.At.Sub(from) > bound {
				reported = true
				out = append(out, violation{At: from, Kind: "no-holder", VIP: vips[v],
					Detail: fmt.Sprintf("nobody held it for more than %v while a healthy, connected node was up (since %s)", bound, from.Format("15:04:05.000"))})
			}
		}
	}
	return out
}

// sendSlack: how far before a fault's start a request it loses may have
// been sent (the client's millisecond send times, the way to the host).
const sendSlack = 2 * time.Millisecond

// faultAt is the fault whose window [Start, End) contains t.
func faultAt(faults []chaosFault, t time.Time) (int, bool) {
	for i, f := range faults {
		if !t.Before(f.Start) && t.Before(f.End) {
			return i, true
		}
	}
	return 0, false
}

// outageViolations attributes each client gap to the fault whose window its
// first lost request falls in, and checks its outage against that fault's bound (during the
// fault or after it was undone). It also returns each fault's longest outage. A gap
// outside every fault window is held to the after-heal bound.
func outageViolations(gaps []clientGap, faults []chaosFault, vips []string, b chaosBounds) ([]violation, []time.Duration) {
	var out []violation
	longest := make([]time.Duration, len(faults))
	for _, g := range gaps {
		// The gap starts with the last answered request; the first lost
		// one tells which fault caused it (the client may have stalled in
		// between).
		firstLost := g.FirstLost
		if firstLost.IsZero() {
			firstLost = g.Start.Add(b.ClientEvery)
		}
		// The client reports send times in whole milliseconds, and a
		// request takes a moment to arrive: one sent in the millisecond a
		// fault starts may be its first victim.
		i, ok := faultAt(faults, firstLost.Add(sendSlack))
		bound, what := b.AfterHeal, "outside any fault"
		if ok {
			f := faults[i]
			during := firstLost.Before(f.Restored)
			bound = b.outageBound(f, during)
			phase := "after"
			if during {
				phase = "during"
			}
			what = fmt.Sprintf("%s fault #%d (%s %s)", phase, f.N, f.Kind, strings.Join(f.Targets, ","))
			longest[i] = max(longest[i], g.outage(b.ClientEvery))
		}
		if g.Planned && b.PlannedMove > bound {
			bound, what = b.PlannedMove, what+", its bucket moving by plan"
		}
		if g.Planned {
			// A fault that begins during a planned move (its taker killed
			// before it took) ends the gap no sooner than the fault's own
			// bound from its start.
			for _, f := range faults {
				if f.Start.After(firstLost) && f.Start.Before(g.End) {
					if d := f.Start.Sub(g.Start) + b.outageBound(f, true); d > bound {
						bound, what = d, what+fmt.Sprintf(", then fault #%d (%s %s) within it", f.N, f.Kind, strings.Join(f.Targets, ","))
					}
				}
			}
		}
		if g.outage(b.ClientEvery) > bound {
			open := ""
			if g.Open {
				open = ", still open at the end"
			}
			out = append(out, violation{At: g.Start, Kind: "outage", VIP: vips[g.VIP],
				Detail: fmt.Sprintf("client got no answer for %v, %d requests lost (%s -> %s%s) %s; bound %v",
					g.length().Round(time.Millisecond), g.Lost, g.From, g.To, open, what, bound)})
		}
	}
	return out, longest
}

// gracefulGaps sums up, for the report, the VIPs' longest client gap of
// each graceful release (SIGTERM, a failing check) that cost one: the
// fastest, the median and the slowest. "" when there was none.
func gracefulGaps(faults []chaosFault, longest []time.Duration) string {
	var gs []time.Duration
	for i, f := range faults {
		if (f.Kind == faultTerm || f.Kind == faultHealth) && i < len(longest) && longest[i] > 0 {
			gs = append(gs, longest[i])
		}
	}
	if len(gs) == 0 {
		return ""
	}
	sort.Slice(gs, func(a, b int) bool { return gs[a] < gs[b] })
	return fmt.Sprintf("graceful releases (sigterm, health): the VIPs' longest client gap of each of %d: %v fastest, %v median, %v slowest",
		len(gs), gs[0].Round(time.Millisecond), gs[len(gs)/2].Round(time.Millisecond), gs[len(gs)-1].Round(time.Millisecond))
}
