package integration

// Table tests of the chaos run's checker (chaos_check_test.go) on synthetic
// observations: each invariant must report what it should, and only that.

import (
	"fmt"
	"strings"
	"testing"
	"time"
)

var (
	ckT0    = time.Unix(1_800_000_000, 0)
	ckVIPs  = []string{"192.0.2.50", "192.0.2.51"}
	ckBound = chaosBounds{NoHolder: 780 * time.Millisecond, TwoHolders: 2 * time.Second, RiseDelay: time.Second, DeadTime: 600 * time.Millisecond,
		Failover: 800 * time.Millisecond, Handover: 100 * time.Millisecond, Readd: 100 * time.Millisecond, AfterHeal: 50 * time.Millisecond}
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
	partition2s := chaosFault{N: 1, Kind: faultPartition, Targets: []string{"h2"}, Start: ckAt(1000), Restored: ckAt(2000), End: ckAt(2500)}
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
		{"a holder's daemon killed while the split brain resolves", []chaosFault{partition2s, {N: 2, Kind: faultKill9, Targets: []string{"h2"}, Start: ckAt(3500), Restored: ckAt(5000), End: ckAt(7000)}}, func(ms int) []uint64 {
			// The kill comes 1.5 s after the heal, before the split brain
			// is resolved; it is resolved 1.5 s after the restart.
			if ms >= 1500 && ms < 6500 {
				return []uint64{h1 | h2, h1}
			}
			return []uint64{h1, h1}
		}, ""},
		{"a daemon killed before the split brain began excuses nothing", []chaosFault{partition2s, {N: 2, Kind: faultKill9, Targets: []string{"h2"}, Start: ckAt(1200), Restored: ckAt(1800), End: ckAt(6000)}}, func(ms int) []uint64 {
			if ms >= 1500 && ms < 5500 {
				return []uint64{h1 | h2, h1}
			}
			return []uint64{h1, h1}
		}, "two-holders 192.0.2.50@4050"},
		{"a daemon of another host stopped excuses nothing", []chaosFault{partition2s, {N: 2, Kind: faultStop, Targets: []string{"h3"}, Start: ckAt(2500), Restored: ckAt(2600), End: ckAt(6000)}}, func(ms int) []uint64 {
			if ms >= 1500 && ms < 5500 {
				return []uint64{h1 | h2, h1}
			}
			return []uint64{h1, h1}
		}, "two-holders 192.0.2.50@4650"},
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
		return clientGap{VIP: vip, Start: ckAt(from), End: ckAt(to), Lost: (to-from)/10 - 1, From: "h1", To: "h2"}
	}
	stall := gap(1, 5010, 5200) // the client itself was not scheduled: 190 ms, 2 requests lost
	stall.Lost = 2
	stalledThenLost := gap(0, 4900, 5071)
	stalledThenLost.Lost, stalledThenLost.FirstLost = 6, ckAt(5005)
	sentAsItStarted := gap(1, 4989, 5060) // the first lost request sent in the millisecond before the SIGTERM's start
	sentAsItStarted.FirstLost = ckAt(4999)
	gaps := []clientGap{
		gap(0, 100, 750),     // cut: failover in 650 ms, fine
		gap(1, 100, 950),     // cut: 850 ms, too long
		gap(0, 3100, 3140),   // after the heal: 40 ms, fine
		gap(1, 3100, 3200),   // after the heal: 100 ms, too long
		gap(0, 5010, 5090),   // SIGTERM handover: 80 ms, fine
		gap(1, 5010, 5200),   // 190 ms, too long
		gap(0, 9500, 9800),   // loss: 300 ms, fine
		gap(0, 20000, 20100), // outside any fault
		stall,                // 30 ms as the client lived it
		gap(0, 4995, 5060),   // the last answer just before the SIGTERM: 65 ms, fine
		stalledThenLost,      // the client stalled after the cut's heal, then lost 6 requests to the SIGTERM: fine
		sentAsItStarted,      // the SIGTERM's, not the heal's (50 ms): 71 ms, fine
	}
	b := ckBound
	b.ClientEvery = 10 * time.Millisecond
	vs, longest := outageViolations(gaps, faults, ckVIPs, b)
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
			if b := ckBound.outageBound(chaosFault{Kind: k, Targets: []string{"h1"}}, during); b <= 0 || b > ckBound.Failover {
				t.Errorf("%s during=%v: bound %v", k, during, b)
			}
		}
	}
	two := chaosFault{Kind: faultPartition, Targets: []string{"h1", "h2"}}
	if b := ckBound.outageBound(two, true); b != ckBound.Failover+ckBound.DeadTime {
		t.Errorf("partition of two hosts: bound %v", b)
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

func TestChaosGoroutines(t *testing.T) {
	for _, tc := range []struct {
		name      string
		counts    map[int]int
		longLived map[int]bool
		want      string
	}{
		{"steady", map[int]int{1: 14, 2: 12, 3: 15}, map[int]bool{3: true}, ""},
		{"a leak in the long-lived daemon", map[int]int{1: 14, 2: 12, 3: 40}, map[int]bool{3: true}, "goroutines @0"},
		{"the fresh daemons may differ", map[int]int{1: 30, 2: 12, 3: 13}, map[int]bool{3: true}, ""},
		{"no dump", map[int]int{1: 14, 2: -1}, map[int]bool{1: true}, "goroutines @0"},
		{"nothing counted", map[int]int{}, map[int]bool{1: true}, "goroutines @0"},
	} {
		if got := ckKinds(goroutineViolations(tc.counts, tc.longLived, ckT0)); got != tc.want {
			t.Errorf("%s: got %q, want %q", tc.name, got, tc.want)
		}
	}
}

func TestChaosMemory(t *testing.T) {
	// A daemon whose RSS saws between 9 and 11 MB every 10 s, sampled every second for 10 minutes.
	saw := func(pid int, grow float64) []memSample {
		var out []memSample
		for sec := 0; sec < 600; sec++ {
			rss := 9000 + 200*(sec%10) + int(grow*float64(sec))
			out = append(out, memSample{At: ckAt(sec * 1000), Host: 1, PID: pid, RSSkB: rss})
		}
		return out
	}
	warm, end, w := ckAt(120_000), ckAt(599_000), time.Minute
	series := append(saw(7, 0), saw(8, 10)...)                              // pid 8 leaks 10 kB/s
	series = append(series, memSample{At: ckAt(300_000), PID: 9, RSSkB: 1}) // started after the warm-up
	for _, tc := range []struct {
		pid    int
		ok     bool
		growth bool
	}{{7, true, false}, {8, true, true}, {9, false, false}} {
		b, e, ok := memoryPeaks(series, tc.pid, warm, end, w)
		if ok != tc.ok {
			t.Errorf("pid %d: ok %v", tc.pid, ok)
			continue
		}
		if !ok {
			continue
		}
		_, bad := memoryViolation(1, b, e, 0.20)
		if bad != tc.growth {
			t.Errorf("pid %d: peaks %d -> %d kB (%+.1f%%), violation %v, want %v", tc.pid, b.RSSkB, e.RSSkB, 100*growth(b, e), bad, tc.growth)
		}
	}
	// The peaks, not single readings: a reading at the top of the sawtooth
	// late against one at the bottom early is no growth.
	if b, e, _ := memoryPeaks(saw(7, 0), 7, warm, end, w); b.RSSkB != 10800 || e.RSSkB != 10800 {
		t.Errorf("peaks %d and %d, want 10800 both", b.RSSkB, e.RSSkB)
	}
}

// The report's line on graceful releases: only SIGTERM and failing checks
// that cost the VIPs' client a gap count.
func TestChaosGracefulGaps(t *testing.T) {
	f := func(kind string) chaosFault { return chaosFault{Kind: kind} }
	ms := func(n int) time.Duration { return time.Duration(n) * time.Millisecond }
	faults := []chaosFault{f(faultTerm), f(faultKill9), f(faultHealth), f(faultTerm), f(faultCut), f(faultTerm)}
	longest := []time.Duration{ms(70), ms(600), ms(90), 0, ms(500), ms(80)}
	want := "graceful releases (sigterm, health): the VIPs' longest client gap of each of 3: 70ms fastest, 80ms median, 90ms slowest"
	if got := gracefulGaps(faults, longest); got != want {
		t.Errorf("got  %q\nwant %q", got, want)
	}
	if got := gracefulGaps([]chaosFault{f(faultKill9)}, []time.Duration{ms(600)}); got != "" {
		t.Errorf("without a graceful release: %q", got)
	}
}
