package integration

// Table tests of the shared address's checker (chaos_shared_check_test.go)
// on synthetic observations.

import (
	"fmt"
	"net/netip"
	"testing"
	"time"

	"floatip/internal/clusterip"
)

// ckBuckets builds bucket samples every 100 ms over [0, endMS) of 3 hosts
// from a function giving each host's mine and draining sets.
func ckBuckets(endMS int, sets func(ms int) (mine, draining [4]uint64)) []bucketSample {
	var out []bucketSample
	for ms := 0; ms < endMS; ms += 100 {
		m, d := sets(ms)
		out = append(out, bucketSample{At: ckAt(ms), Mine: m[:], Draining: d[:]})
	}
	return out
}

// ckSplit: h1 owns buckets 0-3, h2 4-7, h3 8-11 (of 12).
var ckSplit = [4]uint64{0, 0x00f, 0x0f0, 0xf00}

func TestChaosSharedOwners(t *testing.T) {
	partition := chaosFault{N: 1, Kind: faultPartition, Targets: []string{"h1"}, Start: ckAt(1000), Restored: ckAt(5000), End: ckAt(8000)}
	stop := chaosFault{N: 1, Kind: faultStop, Targets: []string{"h3"}, Start: ckAt(1000), Restored: ckAt(1500), End: ckAt(2000)}
	cut := chaosFault{N: 1, Kind: faultCut, Targets: []string{"h2"}, Start: ckAt(1000), Restored: ckAt(5000), End: ckAt(8000)}
	allUp := func(int) [][]span {
		return [][]span{nil, {{ckAt(0), ckAt(10000)}}, {{ckAt(0), ckAt(10000)}}, {{ckAt(0), ckAt(10000)}}}
	}
	for _, tc := range []struct {
		name   string
		faults []chaosFault
		sets   func(ms int) (mine, draining [4]uint64)
		want   string
	}{
		{"one owner per bucket throughout", []chaosFault{stop}, func(int) (m, d [4]uint64) { return ckSplit, d }, ""},
		{"h3 also serves bucket 1 (h1's) for 500 ms, no fault", []chaosFault{stop}, func(ms int) (m, d [4]uint64) {
			m = ckSplit
			if ms >= 4000 && ms < 4500 {
				m[3] |= 1 << 1
			}
			return m, d
		}, "two-owners buckets 1@4000"},
		{"h3 also serves buckets 1 and 2 from the same sample: one violation", nil, func(ms int) (m, d [4]uint64) {
			m = ckSplit
			if ms >= 4000 && ms < 4500 {
				m[3] |= 1<<1 | 1<<2
			}
			return m, d
		}, "two-owners buckets 1,2@4000"},
		{"h1, partitioned, takes every bucket while the others keep theirs", []chaosFault{partition}, func(ms int) (m, d [4]uint64) {
			m = ckSplit
			if ms >= 1700 && ms < 6000 { // until 1 s after the heal
				m[1] = 0xfff
			}
			return m, d
		}, ""},
		{"the two-owner state outlives the heal by 3 s", []chaosFault{partition}, func(ms int) (m, d [4]uint64) {
			m = ckSplit
			if ms >= 1700 && ms < 8000 {
				m[1] |= 1 << 5
			}
			return m, d
		}, "two-owners buckets 5@7100"},
		{"h2 cut: its buckets are nobody's for 700 ms, then the others'", []chaosFault{cut}, func(ms int) (m, d [4]uint64) {
			m = ckSplit
			if ms >= 1000 && ms < 5000 {
				m[2] = 0
			}
			if ms >= 1700 && ms < 5000 {
				m[1] |= 0x030
				m[3] |= 0x0c0
			}
			return m, d
		}, ""},
		{"bucket 6 nobody's for 1.5 s while h1 and h3 are up", []chaosFault{cut}, func(ms int) (m, d [4]uint64) {
			m = ckSplit
			if ms >= 1000 {
				m[2] = 0
			}
			if ms >= 1700 {
				m[1] |= 0x030
				m[3] |= 0x080
			}
			if ms >= 2500 {
				m[3] |= 0x040
			}
			return m, d
		}, "no-owner buckets 6@1000"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			vs := ownerViolations(ckBuckets(10000, tc.sets), 12, tc.faults, allUp(0), ckBound.TwoHolders, ckBound.NoHolder)
			if got := ckKinds(vs); got != tc.want {
				t.Errorf("got %q, want %q", got, tc.want)
			}
			for _, v := range vs {
				t.Log(v)
			}
		})
	}
}

func TestChaosSharedOutages(t *testing.T) {
	faults := []chaosFault{
		{N: 1, Kind: faultKill9, Targets: []string{"h2"}, Start: ckAt(1000), Restored: ckAt(3000), End: ckAt(12000)},
		{N: 2, Kind: faultHealth, Targets: []string{"h3"}, Start: ckAt(12000), Restored: ckAt(14000), End: ckAt(16000)},
	}
	// h2 restarted at 3 s joins at 8.5 s: bucket 5 (source 1) drains on h1
	// from 8.5 s and is h2's from 8.9 s; bucket 9 (source 2) stays h3's
	// until its health check fails at 12 s.
	samples := ckBuckets(16000, func(ms int) (m, d [4]uint64) {
		m = ckSplit
		if ms >= 1000 && ms < 8500 {
			m[2], m[1] = 0, m[1]|0x0f0
		}
		if ms >= 8500 {
			m[1], d[1] = 0x00f, 0x0f0
		}
		if ms >= 8900 {
			m[2] = 0x0f0
		}
		return m, d
	})
	gap := func(src, from, to int) clientGap {
		return clientGap{VIP: src, Start: ckAt(from), End: ckAt(to), Lost: (to-from)/10 - 1, From: "h1", To: "h2"}
	}
	gaps := []clientGap{
		gap(1, 1100, 1800),   // h2 killed: 700 ms, fine
		gap(1, 1100, 2000),   // 900 ms: too long
		gap(1, 8450, 8900),   // the planned move: 450 ms, fine although after the kill's restart (800) — and within PlannedMove
		gap(2, 8450, 8900),   // bucket 9 was not moving: a 450 ms gap is held to the kill's "after" bound, 800 ms: fine
		gap(1, 12010, 12300), // during a failing check (100 ms), though bucket 5 still drains on h1 and is h2's: too long
		gap(2, 12010, 12080), // the failing check's handover: 70 ms, fine
	}
	b := ckBound
	b.ClientEvery, b.PlannedMove = 10*time.Millisecond, 500*time.Millisecond
	names := []string{"192.0.2.80@a", "192.0.2.80@b", "192.0.2.80@c"}
	vs, longest := sharedOutageViolations(gaps, samples, []int{0, 5, 9}, faults, names, b, 100*time.Millisecond)
	if got, want := ckKinds(vs), "outage 192.0.2.80@b@1100; outage 192.0.2.80@b@12010"; got != want {
		t.Errorf("got %q\nwant %q", got, want)
	}
	if fmt.Sprint(longest) != "[900ms 290ms]" {
		t.Errorf("longest per fault %v", longest)
	}
	// The planned move's bound is a floor, not a ceiling: a 700 ms gap of
	// a moving bucket after a kill is within the kill's bound.
	b.Failover = 800 * time.Millisecond
	if vs, _ := sharedOutageViolations([]clientGap{gap(1, 8400, 9100)}, samples, []int{0, 5, 9}, faults, names, b, 100*time.Millisecond); len(vs) != 0 {
		t.Errorf("a planned move's gap within the fault's bound: %v", vs)
	}
	for _, v := range vs {
		t.Log(v)
	}
}

// A planned move's taker is killed before it takes (chaos seed 20261202,
// +3m57): the bucket stays unserved until the taker is found dead. The
// gap is held to the kill's bound from the kill, not to the planned
// move's from its start.
func TestChaosSharedTakerKilledDuringAPlannedMove(t *testing.T) {
	vipDel := chaosFault{N: 1, Kind: faultVIPDel, Targets: []string{"h2"}, Start: ckAt(8000), Restored: ckAt(8010), End: ckAt(8600)}
	kill := chaosFault{N: 2, Kind: faultKill9, Targets: []string{"h2"}, Start: ckAt(8600), Restored: ckAt(9500), End: ckAt(12000)}
	// Bucket 2 is h1's; from 8.5 s it drains on h1, given by plan to h2,
	// which never takes it; h1 takes it back when h2 is found dead.
	samples := ckBuckets(12000, func(ms int) (m, d [4]uint64) {
		m = ckSplit
		if ms >= 8500 && ms < 9150 {
			m[1], d[1] = 0x00b, 0x004
		}
		return m, d
	})
	gap := func(from, to int) clientGap {
		return clientGap{VIP: 1, Start: ckAt(from), End: ckAt(to), Lost: (to-from)/10 - 1, From: "h1", To: "h1"}
	}
	b := ckBound
	b.ClientEvery, b.PlannedMove, b.Failover = 10*time.Millisecond, 500*time.Millisecond, 800*time.Millisecond
	names := []string{"192.0.2.80@a", "192.0.2.80@b"}
	for _, c := range []struct {
		gap    clientGap
		faults []chaosFault
		want   string
	}{
		{gap(8450, 9160), []chaosFault{vipDel, kill}, ""},                         // 710 ms: the kill 150 ms in, found dead 560 ms later
		{gap(8450, 9600), []chaosFault{vipDel, kill}, "outage 192.0.2.80@b@8450"}, // 1150 ms: more than 150 + 800 ms
		{gap(8450, 9160), []chaosFault{vipDel}, "outage 192.0.2.80@b@8450"},       // 710 ms with no fault in it: more than a planned move's 500 ms
	} {
		vs, _ := sharedOutageViolations([]clientGap{c.gap}, samples, []int{0, 2}, c.faults, names, b, 100*time.Millisecond)
		if got := ckKinds(vs); got != c.want {
			t.Errorf("gap %v..%v, %d faults: got %q, want %q", c.gap.Start.Sub(ckAt(0)), c.gap.End.Sub(ckAt(0)), len(c.faults), got, c.want)
		}
	}
}

func TestChaosSharedDuplicates(t *testing.T) {
	faults := []chaosFault{
		{N: 1, Kind: faultPartition, Targets: []string{"h1"}, Start: ckAt(1000), Restored: ckAt(5000), End: ckAt(8000)},
		{N: 2, Kind: faultStop, Targets: []string{"h2"}, Start: ckAt(8000), Restored: ckAt(12000), End: ckAt(20000)},
	}
	dup := func(from, to int) clientDup {
		return clientDup{Source: 0, Start: ckAt(from), End: ckAt(to), Count: (to-from)/10 + 1, From: "h1", To: "h2"}
	}
	dups := []clientDup{
		dup(1700, 6500),   // the partition, until 1.5 s after its heal: fine
		dup(6500, 7500),   // ends 2.5 s after the heal: a violation
		dup(9000, 9100),   // during a SIGSTOP: a violation (a stopped node's buckets expire after the dead time)
		dup(13000, 13100), // 1 s after the SIGCONT: fine
		dup(16000, 16000), // one request, no fault: a violation
	}
	if got, want := ckKinds(duplicateViolations(dups, faults, []string{"192.0.2.80@a"}, ckBound.TwoHolders)), "duplicates 192.0.2.80@a@6500; duplicates 192.0.2.80@a@9000; duplicates 192.0.2.80@a@16000"; got != want {
		t.Errorf("got %q\nwant %q", got, want)
	}
}

func TestChaosSharedSources(t *testing.T) {
	var cands []netip.Addr
	for i := 130; i < 250; i++ {
		cands = append(cands, netip.AddrFrom4([4]byte{192, 0, 2, byte(i)}))
	}
	seed := clusterip.Seed([]netip.Addr{netip.MustParseAddr("192.0.2.80")})
	srcs, bkts := spreadSources(cands, 16, 64, seed)
	seen := map[int]bool{}
	for i, b := range bkts {
		if b < 0 || b >= 64 || seen[b] || sourceBucket(srcs[i], 64, seed) != b {
			t.Fatalf("sources %v, buckets %v", srcs, bkts)
		}
		seen[b] = true
	}
	if len(srcs) != 16 {
		t.Fatalf("%d sources", len(srcs))
	}
}

// A planned move shorter than the sampling period: no sample shows the
// bucket in nobody's mine, but its owner changed across the gap and the
// old one drains it. A death's move (no drain) is not a planned one.
func TestChaosSharedPlannedMoveBetweenSamples(t *testing.T) {
	sample := func(at int, mine1, mine2, drain1 uint64) bucketSample {
		return bucketSample{At: ckAt(at), Mine: []uint64{0, mine1, mine2}, Draining: []uint64{0, drain1, 0}}
	}
	const b = 5
	moved := []bucketSample{sample(0, 1<<b, 0, 0), sample(100, 1<<b, 0, 0), sample(200, 0, 1<<b, 1<<b), sample(300, 0, 1<<b, 1<<b)}
	if !plannedMove(moved, b, ckAt(120), ckAt(190)) {
		t.Error("a planned move between two samples: not seen")
	}
	died := []bucketSample{sample(0, 1<<b, 0, 0), sample(100, 1<<b, 0, 0), sample(200, 0, 1<<b, 0), sample(300, 0, 1<<b, 0)}
	if plannedMove(died, b, ckAt(120), ckAt(190)) {
		t.Error("a move without a drain counted as planned")
	}
	stayed := []bucketSample{sample(0, 1<<b, 0, 1<<b), sample(100, 1<<b, 0, 1<<b), sample(200, 1<<b, 0, 1<<b)}
	if plannedMove(stayed, b, ckAt(120), ckAt(190)) {
		t.Error("a bucket that kept its owner counted as planned")
	}
}
