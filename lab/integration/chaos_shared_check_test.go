package integration

// The chaos run's checker for the shared address (--share, CLUSTERIP's
// model; chaos_shared_test.go samples it): pure functions from what was
// observed — every host's nftables bucket sets, the client's per-source
// gaps and duplicate answers — to violations, table-tested in
// chaos_shared_check_cases_test.go. The rules are the VIPs' ones
// (chaos_check_test.go) with a bucket in the place of a VIP:
//
//   - one owner per bucket: a bucket in the `mine` set of two hosts at two
//     samples in a row is "two-owners", with the VIPs' exceptions (a
//     partition or loss in effect, 2 s after the last heal, an owner's
//     daemon killed or stopped in mid-resolution); a bucket in nobody's
//     `mine` longer than the detection bound while some node could take it
//     is "no-owner";
//   - nothing unanswered beyond the failover bound: a source's gap is held
//     to the bound of the fault in effect (outageBound), or to PlannedMove
//     when its bucket was being moved by plan (a join: in a `draining` set
//     and in nobody's `mine`, the taker's delay);
//   - no duplicate answers (one request answered by two hosts) except while
//     a fault that allows two holders lasts and within the two-holder bound
//     of the last heal.

import (
	"fmt"
	"math/bits"
	"net/netip"
	"sort"
	"strings"
	"time"

	"floatip/internal/clusterip"
)

// sourceBucket is the bucket of a client source address with --hash
// source: nft's "jhash ip saddr mod n seed s".
func sourceBucket(src netip.Addr, n int, seed uint32) int {
	a := src.As4()
	return clusterip.Bucket(a[:], n, seed)
}

// spreadSources picks n addresses from candidates whose buckets differ.
func spreadSources(candidates []netip.Addr, n, buckets int, seed uint32) (srcs []netip.Addr, bkts []int) {
	used := map[int]bool{}
	for _, a := range candidates {
		b := sourceBucket(a, buckets, seed)
		if used[b] {
			continue
		}
		used[b] = true
		srcs, bkts = append(srcs, a), append(bkts, b)
		if len(srcs) == n {
			break
		}
	}
	return srcs, bkts
}

// bucketSample is one look at every host's bucket sets: Mine[i] (the
// buckets host hi serves: its mine and incoming sets) and Draining[i] as
// bit masks of buckets (bit b: bucket b; at most 64 buckets).
type bucketSample struct {
	At             time.Time
	Mine, Draining []uint64 // index 1..hosts
}

// owners turns bucket samples into the VIP checker's holder samples: one
// "VIP" per bucket, held by the hosts that serve it (mine or incoming).
func owners(samples []bucketSample, buckets int) []holdSample {
	out := make([]holdSample, len(samples))
	for k, s := range samples {
		h := holdSample{At: s.At, Holders: make([]uint64, buckets)}
		for i, m := range s.Mine {
			for m != 0 {
				b := bits.TrailingZeros64(m)
				m &^= 1 << b
				if b < buckets {
					h.Holders[b] |= 1 << (i - 1)
				}
			}
		}
		out[k] = h
	}
	return out
}

func bucketNames(buckets int) []string {
	names := make([]string, buckets)
	for b := range names {
		names[b] = fmt.Sprintf("bucket %d", b)
	}
	return names
}

// ownerViolations: two owners of a bucket (the VIPs' two-holder rule) and
// no owner for longer than noOwner while a node could take it.
func ownerViolations(samples []bucketSample, buckets int, faults []chaosFault, spans [][]span, twoOwners, noOwner time.Duration) []violation {
	holds, names := owners(samples, buckets), bucketNames(buckets)
	var out []violation
	for _, v := range twoHolderViolations(holds, faults, names, twoOwners) {
		v.Kind, v.Detail = "two-owners", "served (mine or incoming) by "+v.Detail[len("held by "):]
		out = append(out, v)
	}
	for _, v := range noHolderViolations(holds, spans, names, noOwner) {
		v.Kind, v.Detail = "no-owner", "served by nobody"+v.Detail[len("nobody held it"):]
		out = append(out, v)
	}
	return groupBuckets(out)
}

// groupBuckets makes the violations of several buckets that begin at the
// same sample, and say the same, one.
func groupBuckets(vs []violation) []violation {
	var out []violation
	at := map[string]int{}
	for _, v := range vs {
		key := v.Kind + v.At.String() + v.Detail
		if i, ok := at[key]; ok {
			out[i].VIP += "," + strings.TrimPrefix(v.VIP, "bucket ")
			continue
		}
		at[key] = len(out)
		v.VIP = "buckets " + strings.TrimPrefix(v.VIP, "bucket ")
		out = append(out, v)
	}
	sort.SliceStable(out, func(i, j int) bool { return out[i].At.Before(out[j].At) })
	return out
}

// plannedMove tells whether bucket b was moving by plan in [from, to]: at
// a sample within, it is in some host's draining set and in nobody's mine
// (the taker's delay, seen); or it changed owners between the last sample
// before from and the first after to, and a host drains it at the latter
// (a move shorter than the sampling period: only a planned give drains).
func plannedMove(samples []bucketSample, b int, from, to time.Time) bool {
	bit := uint64(1) << b
	sets := func(s bucketSample) (mine, draining uint64) {
		for h := range s.Mine {
			if s.Mine[h]&bit != 0 {
				mine |= 1 << h
			}
			if s.Draining[h]&bit != 0 {
				draining |= 1 << h
			}
		}
		return mine, draining
	}
	i := sort.Search(len(samples), func(i int) bool { return !samples[i].At.Before(from) })
	first := i
	for ; i < len(samples) && !samples[i].At.After(to); i++ {
		if mine, draining := sets(samples[i]); mine == 0 && draining != 0 {
			return true
		}
	}
	if first == 0 || i == len(samples) {
		return false
	}
	before, _ := sets(samples[first-1])
	after, draining := sets(samples[i])
	return before != after && draining != 0
}

// sharedOutageViolations: the VIPs' outage rule for each source's gaps
// (clientGap.VIP is the source's index in names), a gap whose bucket
// (bucketOf) was moving by plan being held to at least PlannedMove. The
// samples looked at start one sampling period before the first lost
// request.
func sharedOutageViolations(gaps []clientGap, samples []bucketSample, bucketOf []int, faults []chaosFault, names []string, b chaosBounds, period time.Duration) ([]violation, []time.Duration) {
	gs := append([]clientGap(nil), gaps...)
	for i, g := range gs {
		first := g.FirstLost
		if first.IsZero() {
			first = g.Start.Add(b.ClientEvery)
		}
		gs[i].Planned = plannedMove(samples, bucketOf[g.VIP], first.Add(-period), g.End)
	}
	return outageViolations(gs, faults, names, b)
}

// clientDup is an episode of requests from one source answered twice:
// between the send times of the first and the last of them.
type clientDup struct {
	Source     int // index in the names
	Start, End time.Time
	Count      int
	From, To   string
}

// twoHoldersExcused: during a fault that allows two holders, within bound
// of any fault's end.
func twoHoldersExcused(faults []chaosFault, t time.Time, bound time.Duration) bool {
	for _, f := range faults {
		if f.allowsTwoHolders() && !t.Before(f.Start) && t.Before(f.Restored) {
			return true
		}
		if !f.Restored.After(t) && t.Sub(f.Restored) <= bound {
			return true
		}
	}
	return false
}

// duplicateViolations: an episode of duplicate answers is a violation
// unless both its first and its last duplicate are excused (twoHoldersExcused).
func duplicateViolations(dups []clientDup, faults []chaosFault, names []string, bound time.Duration) []violation {
	var out []violation
	for _, d := range dups {
		if twoHoldersExcused(faults, d.Start, bound) && twoHoldersExcused(faults, d.End, bound) {
			continue
		}
		out = append(out, violation{At: d.Start, Kind: "duplicates", VIP: names[d.Source],
			Detail: fmt.Sprintf("%d requests answered by both %s and %s over %v, with no partition or loss and more than %v after the last heal",
				d.Count, d.From, d.To, d.End.Sub(d.Start).Round(time.Millisecond), bound)})
	}
	return out
}
