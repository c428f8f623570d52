package integration

// The chaos run's verdicts on the daemons themselves (chaos_check_test.go
// has the ones on the VIPs): goroutine and memory growth.

import (
	"fmt"
	"sort"
	"time"
)

// goroutineSlack is how many more goroutines than a freshly started daemon
// a long-lived one may have: a health check or a scrape in flight.
const goroutineSlack = 5

// goroutineViolations compares the goroutines of the daemons that lived
// through the run (longLived) with the fewest any daemon had at the end
// (a restarted one, usually): more than goroutineSlack above it is growth.
// A count of -1 means the daemon gave no goroutine dump.
func goroutineViolations(counts map[int]int, longLived map[int]bool, at time.Time) []violation {
	var out []violation
	least := -1
	for _, n := range counts {
		if n > 0 && (least < 0 || n < least) {
			least = n
		}
	}
	hosts := make([]int, 0, len(counts))
	for h := range counts {
		hosts = append(hosts, h)
	}
	sort.Ints(hosts)
	for _, h := range hosts {
		n := counts[h]
		switch {
		case n < 0:
			out = append(out, violation{At: at, Kind: "goroutines", Detail: fmt.Sprintf("h%d gave no goroutine dump on SIGQUIT", h)})
		case longLived[h] && n > least+goroutineSlack:
			out = append(out, violation{At: at, Kind: "goroutines",
				Detail: fmt.Sprintf("h%d has %d goroutines after the whole run, a daemon with the fewest has %d", h, n, least)})
		}
	}
	if len(longLived) > 0 && len(counts) == 0 {
		out = append(out, violation{At: at, Kind: "goroutines", Detail: "no goroutine counts"})
	}
	return out
}

// memSample is a daemon's memory at one moment (from /proc/PID/status).
type memSample struct {
	At                     time.Time
	Host, PID              int
	RSSkB, AnonKB, Threads int
}

// memoryPeaks finds pid's largest RSS in the window after the warm-up
// [warm, warm+w] and in the last one [end-w, end]. Comparing peaks, not two
// single readings, keeps the garbage collector's sawtooth out of the
// verdict. ok is false unless pid has samples in both windows.
func memoryPeaks(series []memSample, pid int, warm, end time.Time, w time.Duration) (base, last memSample, ok bool) {
	var okb, oke bool
	for _, m := range series {
		if m.PID != pid {
			continue
		}
		if !m.At.Before(warm) && !m.At.After(warm.Add(w)) && (!okb || m.RSSkB > base.RSSkB) {
			base, okb = m, true
		}
		if !m.At.Before(end.Add(-w)) && !m.At.After(end) && (!oke || m.RSSkB > last.RSSkB) {
			last, oke = m, true
		}
	}
	return base, last, okb && oke
}

func growth(base, last memSample) float64 {
	if base.RSSkB == 0 {
		return 0
	}
	return float64(last.RSSkB-base.RSSkB) / float64(base.RSSkB)
}

// memoryViolation: the peak RSS at the end more than limit (a fraction)
// above the peak after the warm-up.
func memoryViolation(host int, base, last memSample, limit float64) (violation, bool) {
	g := growth(base, last)
	if g <= limit {
		return violation{}, false
	}
	return violation{At: last.At, Kind: "memory", Detail: fmt.Sprintf("h%d's peak RSS grew %.1f%% from the warm-up to the end (%d -> %d kB, anonymous %d -> %d kB)",
		host, 100*g, base.RSSkB, last.RSSkB, base.AnonKB, last.AnonKB)}, true
}
