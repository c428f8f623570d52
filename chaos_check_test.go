package main

// The chaos run's checker (chaos_lab_test.go injects the faults): pure
// functions from what was observed — the VIP's holders sampled in every
// namespace, the client's gaps, the faults and the nodes' conditions — to
// invariant violations. They are table-tested below with synthetic
// observations, so that a checker that cannot fail would show here.

import (
	"fmt"
	"math/bits"
	"sort"
	"strings"
	"testing"
	"time"
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
// hosts (bit i-1 for host hi) that have it configured.
type holdSample struct {
	At      time.Time
	Holders []uint64
}

// clientGap is a gap in the client's answers from one VIP.
type clientGap struct {
	VIP        int
	Start, End time.Time
	From, To   string
	Open       bool // still open at the end of the run
}

func (g clientGap) length() time.Duration { return g.End.Sub(g.Start) }

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
	Handover  time.Duration // a graceful release: ≤ 100 ms
	AfterHeal time.Duration // second outage after a partition heals: ≤ 50 ms
}

// outageBound is the longest client outage a fault may cause while it
// lasts (during) or after it is undone.
func (b chaosBounds) outageBound(kind string, during bool) time.Duration {
	switch kind {
	case faultTerm, faultHealth:
		if during {
			return b.Handover // the holder releases with a notice
		}
		return b.Failover // a restarted or recovered node rejoins as a standby
	case faultVIPDel:
		return b.Handover // re-added within milliseconds
	case faultCut, faultPartition:
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
// bound of the last heal (any fault undone, a daemon restarted). One
// violation per episode.
func twoHolderViolations(samples []holdSample, faults []chaosFault, vips []string, bound time.Duration) []violation {
	var out []violation
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
		var first time.Time
		for _, s := range samples {
			if bits.OnesCount64(s.Holders[v]) < 2 || excused(s.At) {
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

// faultAt is the fault whose window [Start, End) contains t.
func faultAt(faults []chaosFault, t time.Time) (int, bool) {
	for i, f := range faults {
		if !t.Before(f.Start) && t.Before(f.End) {
			return i, true
		}
	}
	return 0, false
}

// outageViolations attributes each client gap to the fault whose window it
// starts in, and checks it against that fault's bound (during the fault or
// after it was undone). It also returns each fault's longest gap. A gap
// outside every fault window is held to the after-heal bound.
func outageViolations(gaps []clientGap, faults []chaosFault, vips []string, b chaosBounds) ([]violation, []time.Duration) {
	var out []violation
	longest := make([]time.Duration, len(faults))
	for _, g := range gaps {
		i, ok := faultAt(faults, g.Start)
		bound, what := b.AfterHeal, "outside any fault"
		if ok {
			f := faults[i]
			during := g.Start.Before(f.Restored)
			bound = b.outageBound(f.Kind, during)
			phase := "after"
			if during {
				phase = "during"
			}
			what = fmt.Sprintf("%s fault #%d (%s %s)", phase, f.N, f.Kind, strings.Join(f.Targets, ","))
			longest[i] = max(longest[i], g.length())
		}
		if g.length() > bound {
			open := ""
			if g.Open {
				open = ", still open at the end"
			}
			out = append(out, violation{At: g.Start, Kind: "outage", VIP: vips[g.VIP],
				Detail: fmt.Sprintf("client got no answer for %v (%s -> %s%s) %s; bound %v", g.length().Round(time.Millisecond), g.From, g.To, open, what, bound)})
		}
	}
	return out, longest
}

// ---------------------------------------------------------------- tests

var (
	ckT0    = time.Unix(1_800_000_000, 0)
	ckVIPs  = []string{"192.0.2.50", "192.0.2.51"}
	ckBound = chaosBounds{NoHolder: 780 * time.Millisecond, TwoHolders: 2 * time.Second, RiseDelay: time.Second,
		Failover: 800 * time.Millisecond, Handover: 100 * time.Millisecond, AfterHeal: 50 * time.Millisecond}
)

func ckAt(ms int) time.Time { return ckT0.Add(time.Duration(ms) * time.Millisecond) }

// ckSamples builds samples every 50 ms over [0, endMS) from a function of
// the time giving each VIP's holders.
func ckSamples(endMS int, holders func(ms int) []uint64) []holdSample {
	var out []holdSample
	for ms := 0; ms < endMS; ms += 50 {
		out = append(out, holdSample{At: ckAt(ms), Holders: holders(ms)})
	}
	return out
}

func ckKinds(vs []violation) string {
	var ks []string
	for _, v := range vs {
		ks = append(ks, v.Kind+" "+v.VIP+"@"+fmt.Sprint(v.At.Sub(ckT0).Milliseconds()))
	}
	return strings.Join(ks, "; ")
}

func TestChaosTwoHolders(t *testing.T) {
	const h1, h2, h3 = 1, 2, 4
	partition := chaosFault{N: 1, Kind: faultPartition, Targets: []string{"h1"}, Start: ckAt(1000), Restored: ckAt(5000), End: ckAt(8000)}
	stop := chaosFault{N: 1, Kind: faultStop, Targets: []string{"h2"}, Start: ckAt(1000), Restored: ckAt(5000), End: ckAt(8000)}
	for _, tc := range []struct {
		name    string
		faults  []chaosFault
		holders func(ms int) []uint64
		want    string
	}{
		{"one holder throughout", []chaosFault{stop}, func(int) []uint64 { return []uint64{h1, h2} }, ""},
		{"both hold during the partition and until 1.9 s after the heal", []chaosFault{partition}, func(ms int) []uint64 {
			if ms >= 1500 && ms < 6900 {
				return []uint64{h1 | h2, h1}
			}
			return []uint64{h1, h1}
		}, ""},
		{"both still hold 2.5 s after the heal", []chaosFault{partition}, func(ms int) []uint64 {
			if ms >= 1500 && ms < 7500 {
				return []uint64{h1 | h2, h1}
			}
			return []uint64{h1, h1}
		}, "two-holders 192.0.2.50@7050"},
		{"a second holder without any partition (planted by hand)", []chaosFault{stop}, func(ms int) []uint64 {
			if ms >= 2000 && ms < 2200 {
				return []uint64{h1, h2 | h3}
			}
			return []uint64{h1, h2}
		}, "two-holders 192.0.2.51@2000"},
		{"a single straddling sample is no episode", nil, func(ms int) []uint64 {
			if ms == 3000 {
				return []uint64{h1 | h2, h1}
			}
			return []uint64{h1, h1}
		}, ""},
		{"two episodes, two violations", nil, func(ms int) []uint64 {
			if (ms >= 3000 && ms < 3200) || (ms >= 4000 && ms < 4100) {
				return []uint64{h1 | h2, h1}
			}
			return []uint64{h1, h1}
		}, "two-holders 192.0.2.50@3000; two-holders 192.0.2.50@4000"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := ckKinds(twoHolderViolations(ckSamples(10000, tc.holders), tc.faults, ckVIPs, ckBound.TwoHolders))
			if got != tc.want {
				t.Errorf("got %q, want %q", got, tc.want)
			}
		})
	}
}

func TestChaosEligibleSpans(t *testing.T) {
	end := ckAt(10000)
	events := []nodeEvent{
		{At: ckAt(1000), Host: 1, Cond: condConnected, Up: false},
		{At: ckAt(3000), Host: 1, Cond: condConnected, Up: true},
		{At: ckAt(4000), Host: 2, Cond: condRunning, Up: false},
		{At: ckAt(5000), Host: 2, Cond: condRunning, Up: true}, // eligible from 6000 (rise)
		{At: ckAt(7000), Host: 2, Cond: condHealthy, Up: false},
		{At: ckAt(7500), Host: 2, Cond: condAwake, Up: false},
		{At: ckAt(7600), Host: 2, Cond: condHealthy, Up: true}, // still asleep
		{At: ckAt(8000), Host: 2, Cond: condAwake, Up: true},   // from 8600 (rise of the check)
		{At: ckAt(9000), Host: 1, Cond: condAwake, Up: true},   // no change
	}
	got := eligibleSpans(events, 2, ckT0, end, time.Second)
	want := [][]span{nil,
		{{ckAt(0), ckAt(1000)}, {ckAt(3000), end}},
		{{ckAt(0), ckAt(4000)}, {ckAt(6000), ckAt(7000)}, {ckAt(8600), end}}}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("spans\n got %v\nwant %v", got, want)
	}
	if s, ok := eligibleSince(got, ckAt(6500)); !ok || !s.Equal(ckAt(3000)) {
		t.Errorf("eligibleSince(6500) = %v %v, want 3000", s.Sub(ckT0), ok)
	}
	if s, ok := eligibleSince(got, ckAt(2000)); !ok || !s.Equal(ckT0) {
		t.Errorf("eligibleSince(2000) = %v %v, want 0 (h2)", s.Sub(ckT0), ok)
	}
	if _, ok := eligibleSince(got, ckAt(10000)); ok {
		t.Errorf("someone eligible at the end")
	}
}

func TestChaosNoHolder(t *testing.T) {
	const h1, h2 = 1, 2
	for _, tc := range []struct {
		name    string
		events  []nodeEvent
		holders func(ms int) []uint64
		want    string
	}{
		{"failover within the bound", []nodeEvent{{At: ckAt(1000), Host: 1, Cond: condConnected}}, func(ms int) []uint64 {
			switch {
			case ms < 1000:
				return []uint64{h1, h1}
			case ms < 1750:
				return []uint64{0, 0}
			}
			return []uint64{h2, h2}
		}, ""},
		{"failover too slow for one VIP", []nodeEvent{{At: ckAt(1000), Host: 1, Cond: condConnected}}, func(ms int) []uint64 {
			switch {
			case ms < 1000:
				return []uint64{h1, h1}
			case ms < 1750:
				return []uint64{0, 0}
			case ms < 2000:
				return []uint64{h2, 0}
			}
			return []uint64{h2, h2}
		}, "no-holder 192.0.2.51@1000"},
		{"nobody eligible: h1 cut, h2 stopped, no violation", []nodeEvent{
			{At: ckAt(900), Host: 2, Cond: condAwake},
			{At: ckAt(1000), Host: 1, Cond: condConnected},
			{At: ckAt(5000), Host: 2, Cond: condAwake, Up: true}, // the bound runs from here
		}, func(ms int) []uint64 {
			if ms >= 1000 && ms < 5700 {
				return []uint64{0, 0}
			}
			return []uint64{h1, h1}
		}, ""},
		{"the stopped standby wakes up and stays idle", []nodeEvent{
			{At: ckAt(900), Host: 2, Cond: condAwake},
			{At: ckAt(1000), Host: 1, Cond: condConnected},
			{At: ckAt(5000), Host: 2, Cond: condAwake, Up: true},
		}, func(ms int) []uint64 {
			if ms >= 1000 {
				return []uint64{0, h2}
			}
			return []uint64{h1, h2}
		}, "no-holder 192.0.2.50@5000"},
		{"the restarted daemon counts after its rise", []nodeEvent{
			{At: ckAt(1000), Host: 1, Cond: condRunning},
			{At: ckAt(1000), Host: 2, Cond: condConnected},
			{At: ckAt(3000), Host: 1, Cond: condRunning, Up: true}, // eligible from 4000
		}, func(ms int) []uint64 {
			if ms >= 1000 && ms < 4700 {
				return []uint64{0, 0}
			}
			return []uint64{h1, h1}
		}, ""},
		{"a VIP deleted by hand and never re-added", nil, func(ms int) []uint64 {
			if ms >= 2000 {
				return []uint64{h1, 0}
			}
			return []uint64{h1, h1}
		}, "no-holder 192.0.2.51@2000"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			spans := eligibleSpans(tc.events, 2, ckT0, ckAt(10000), ckBound.RiseDelay)
			got := ckKinds(noHolderViolations(ckSamples(10000, tc.holders), spans, ckVIPs, ckBound.NoHolder))
			if got != tc.want {
				t.Errorf("got %q, want %q", got, tc.want)
			}
		})
	}
}

func TestChaosOutages(t *testing.T) {
	faults := []chaosFault{
		{N: 1, Kind: faultCut, Targets: []string{"h1"}, Start: ckAt(0), Restored: ckAt(3000), End: ckAt(5000)},
		{N: 2, Kind: faultTerm, Targets: []string{"h2"}, Start: ckAt(5000), Restored: ckAt(7000), End: ckAt(9000)},
		{N: 3, Kind: faultLoss, Targets: []string{"h2"}, Start: ckAt(9000), Restored: ckAt(12000), End: ckAt(14000)},
	}
	gap := func(vip, from, to int) clientGap {
		return clientGap{VIP: vip, Start: ckAt(from), End: ckAt(to), From: "h1", To: "h2"}
	}
	gaps := []clientGap{
		gap(0, 100, 750),     // cut: failover in 650 ms, fine
		gap(1, 100, 950),     // cut: 850 ms, too long
		gap(0, 3100, 3140),   // after the heal: 40 ms, fine
		gap(1, 3100, 3200),   // after the heal: 100 ms, too long
		gap(0, 5010, 5090),   // SIGTERM handover: 80 ms, fine
		gap(1, 5010, 5200),   // 190 ms, too long
		gap(0, 9500, 9800),   // loss: 300 ms, fine
		gap(0, 20000, 20100), // outside any fault
	}
	vs, longest := outageViolations(gaps, faults, ckVIPs, ckBound)
	if got, want := ckKinds(vs), "outage 192.0.2.51@100; outage 192.0.2.51@3100; outage 192.0.2.51@5010; outage 192.0.2.50@20000"; got != want {
		t.Errorf("got %q\nwant %q", got, want)
	}
	if fmt.Sprint(longest) != "[850ms 190ms 300ms]" {
		t.Errorf("longest per fault %v", longest)
	}
	for _, v := range vs {
		t.Log(v)
	}
}

func TestChaosOutageBounds(t *testing.T) {
	for _, k := range chaosFaultKinds {
		for _, during := range []bool{true, false} {
			if b := ckBound.outageBound(k, during); b <= 0 || b > ckBound.Failover {
				t.Errorf("%s during=%v: bound %v", k, during, b)
			}
		}
	}
}

func TestHolderNames(t *testing.T) {
	if got := holderNames(0b101); got != "h1+h3" {
		t.Errorf("holderNames(0b101) = %q", got)
	}
	if got := holderNames(0); got != "none" {
		t.Errorf("holderNames(0) = %q", got)
	}
}
