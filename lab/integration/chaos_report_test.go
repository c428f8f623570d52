//go:build chaos

package integration

// The chaos run's measurements of the daemons (memory, goroutines, logs)
// and its report: the checker's verdicts over what was observed, and the
// table of faults.

import (
	"encoding/json"
	"fmt"
	"maps"
	"os"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"time"

	"floatip/internal/fiptest"
)

// procStatus reads VmRSS and RssAnon (kB) and Threads of a process.
func procStatus(pid int) (rssKB, anonKB, threads int, err error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, 0, 0, err
	}
	for _, line := range strings.Split(string(b), "\n") {
		f := strings.Fields(line)
		if len(f) < 2 {
			continue
		}
		switch f[0] {
		case "VmRSS:":
			rssKB, _ = strconv.Atoi(f[1])
		case "RssAnon:":
			anonKB, _ = strconv.Atoi(f[1])
		case "Threads:":
			threads, _ = strconv.Atoi(f[1])
		}
	}
	return rssKB, anonKB, threads, nil
}

// chaosWatchEvent is a line of udpecho watch's output.
type chaosWatchEvent struct {
	Event    string `json:"event"`
	Target   string `json:"target"`
	StartMS  int64  `json:"start_unix_ms"`
	EndMS    int64  `json:"end_unix_ms"`
	Lost     int    `json:"lost"`
	FirstMS  int64  `json:"first_lost_unix_ms"`
	From     string `json:"from"`
	To       string `json:"to"`
	Open     bool   `json:"open"`
	Sent     int    `json:"sent"`
	Answered int    `json:"answered"`
	Dups     int    `json:"duplicates"`
}

// watchSummary is what udpecho watch reported of some of its targets.
type watchSummary struct {
	gaps                          []clientGap // after the chaos began
	dups                          []clientDup // after the chaos began
	changes, ends, sent, answered int
}

// watchEvents reads udpecho watch's JSON lines for the targets of index
// (target → its number: a VIP's, or a shared address's source's).
func (c *chaos) watchEvents(clientOut string, index map[string]int) watchSummary {
	var w watchSummary
	for _, line := range strings.Split(clientOut, "\n") {
		var ev chaosWatchEvent
		if !strings.HasPrefix(line, "{") || json.Unmarshal([]byte(line), &ev) != nil {
			continue
		}
		k, ok := index[ev.Target]
		if !ok {
			continue
		}
		switch ev.Event {
		case "gap":
			g := clientGap{VIP: k, Start: time.UnixMilli(ev.StartMS), End: time.UnixMilli(ev.EndMS), Lost: ev.Lost, From: ev.From, To: ev.To, Open: ev.Open}
			if ev.FirstMS != 0 {
				g.FirstLost = time.UnixMilli(ev.FirstMS)
			}
			if !g.Start.Before(c.begin) {
				w.gaps = append(w.gaps, g)
			}
		case "duplicates":
			d := clientDup{Source: k, Start: time.UnixMilli(ev.StartMS), End: time.UnixMilli(ev.EndMS), Count: ev.Dups, From: ev.From, To: ev.To}
			if !d.Start.Before(c.begin) {
				w.dups = append(w.dups, d)
			}
		case "change":
			w.changes++
		case "end":
			w.ends++
			w.sent += ev.Sent
			w.answered += ev.Answered
		}
	}
	return w
}

// recordMemory adds every running daemon's RSS to the series, once a
// second (now, with force).
func (c *chaos) recordMemory(force bool) {
	now := time.Now()
	if n := len(c.mem); !force && n > 0 && now.Sub(c.mem[n-1].At) < time.Second {
		return
	}
	for i := 1; i <= c.hosts; i++ {
		d := c.daemons[i]
		if d == nil || d.Exited() {
			continue
		}
		if rss, anon, threads, err := procStatus(d.PID()); err == nil {
			c.mem = append(c.mem, memSample{At: now, Host: i, PID: d.PID(), RSSkB: rss, AnonKB: anon, Threads: threads})
		}
	}
}

// Run starts the group, injects faults for dur, then checks and returns the
// violations. With plant, it also adds the last VIP by hand on a host that
// does not hold it, half way through, without telling the checker.
// goroutineHeaderRE matches a goroutine's first line in a dump,
// "goroutine 7 [select]:" or "goroutine 7 gp=0x... m=nil [select]:".
// chaosMemoryMinRun: memory growth is judged only in runs this long.
const chaosMemoryMinRun = 5 * time.Minute

var goroutineHeaderRE = regexp.MustCompile(`(?m)^goroutine [0-9]+ .*\[.*\]:$`)

// goroutines ends every daemon with SIGQUIT, on which the Go runtime dumps
// all goroutines, and counts them (-1: no dump).
func (c *chaos) goroutines() map[int]int {
	counts := map[int]int{}
	for i := 1; i <= c.hosts; i++ {
		d := c.daemons[i]
		if d.Exited() {
			continue
		}
		c.killed[i] = true
		d.Signal(syscall.SIGQUIT)
		if _, err := d.Wait(10 * time.Second); err != nil {
			c.t.Errorf("SIGQUIT: %v", err)
			continue
		}
		_, dump, _ := strings.Cut(d.Logs(), "SIGQUIT")
		counts[i] = len(goroutineHeaderRE.FindAllString(dump, -1))
		if counts[i] == 0 {
			counts[i] = -1
		}
	}
	return counts
}

// report evaluates the invariants over [begin, end], prints the table and
// returns the violations.
// logsAround returns the daemons' log lines within window of at (every
// daemon the run started), in time order, at most max of them.
func (c *chaos) logsAround(at time.Time, window time.Duration, max int) string {
	type line struct {
		t    time.Time
		text string
	}
	var ls []line
	for _, d := range c.all {
		for _, l := range strings.Split(d.Logs(), "\n") {
			ts, ok := strings.CutPrefix(l, "time=")
			if !ok || len(ts) < 24 {
				continue
			}
			tt, err := time.Parse(time.RFC3339Nano, ts[:24])
			if err != nil || tt.Before(at.Add(-window)) || tt.After(at.Add(window)) {
				continue
			}
			ls = append(ls, line{tt, d.Name + ": " + l})
		}
	}
	sort.SliceStable(ls, func(i, j int) bool { return ls[i].t.Before(ls[j].t) })
	var b strings.Builder
	for i, l := range ls {
		if i == max {
			fmt.Fprintf(&b, "    ... %d more\n", len(ls)-max)
			break
		}
		fmt.Fprintf(&b, "    %s\n", l.text)
	}
	return b.String()
}

func (c *chaos) report(warm, end time.Time, endPIDs map[int]int, clientOut string, goroutines map[int]int) []violation {
	t := c.t
	c.mu.Lock()
	defer c.mu.Unlock()
	faults := c.faults
	for i := range faults {
		if i+1 < len(faults) {
			faults[i].End = faults[i+1].Start
		} else {
			faults[i].End = end
		}
	}
	var samples []holdSample
	for _, s := range c.samples {
		if !s.At.Before(c.begin) && !s.At.After(end) {
			samples = append(samples, s)
		}
	}
	vipIndex := map[string]int{}
	for v, vip := range c.vips {
		vipIndex[fmt.Sprintf("%s:%d", vip, fiptest.EchoPort)] = v
	}
	w := c.watchEvents(clientOut, vipIndex)
	gaps, changes, ends, sent, answered := w.gaps, w.changes, w.ends, w.sent, w.answered
	if ends != len(c.vips) {
		t.Errorf("udpecho watch reported the end of %d targets, want %d; its output:\n%s", ends, len(c.vips), fiptest.LastLines(clientOut, 20))
	}

	spans := eligibleSpans(c.events, c.hosts, c.begin, end, c.bounds.RiseDelay)
	vs := twoHolderViolations(samples, faults, c.vips, c.bounds.TwoHolders)
	vs = append(vs, noHolderViolations(samples, spans, c.vips, c.bounds.NoHolder)...)
	outages, longest := outageViolations(gaps, faults, c.vips, c.bounds)
	vs = append(vs, outages...)
	graceful := gracefulGaps(faults, longest) // the VIPs' alone, before the shared address's are added
	var buckets []bucketSample
	for _, s := range c.bucketSamples {
		if !s.At.Before(c.begin) && !s.At.After(end) {
			buckets = append(buckets, s)
		}
	}
	var shareLines []string
	if c.shared {
		var shareVs []violation
		var shareLongest []time.Duration
		shareVs, shareLongest, shareLines = c.shareReport(buckets, clientOut, faults, spans)
		vs = append(vs, shareVs...)
		for i := range longest {
			longest[i] = max(longest[i], shareLongest[i])
		}
	}
	vs = append(vs, c.extra...)

	var mem []string
	longLived := map[int]bool{}
	window := min(time.Minute, end.Sub(warm)/2)
	for i := 1; i <= c.hosts; i++ {
		b, e, ok := memoryPeaks(c.mem, endPIDs[i], warm, end, window)
		if !ok {
			continue // restarted since the warm-up
		}
		longLived[i] = true
		mem = append(mem, fmt.Sprintf("h%d (pid %d): peak RSS %d kB after the warm-up, %d kB at the end (%+.1f%%), anonymous %d -> %d kB, threads %d -> %d",
			i, e.PID, b.RSSkB, e.RSSkB, 100*growth(b, e), b.AnonKB, e.AnonKB, b.Threads, e.Threads))
		// A short run (CI's) measures the Go heap growing to its first
		// garbage-collection goals, not a leak: its figures are only shown.
		if v, bad := memoryViolation(i, b, e, 0.20); bad && end.Sub(c.begin) >= chaosMemoryMinRun {
			vs = append(vs, v)
		}
	}
	if end.Sub(c.begin) < chaosMemoryMinRun {
		mem = append(mem, fmt.Sprintf("(memory not judged: the run is shorter than %v)", chaosMemoryMinRun))
	}
	if len(mem) == 0 {
		vs = append(vs, violation{At: end, Kind: "memory", Detail: "no daemon lived from the warm-up to the end: nothing measured"})
	}
	oldDaemons := maps.Clone(longLived)
	delete(oldDaemons, 1) // its count is the fresh daemon's
	vs = append(vs, goroutineViolations(goroutines, oldDaemons, end)...)
	var gs []string
	for i := 1; i <= c.hosts; i++ {
		if n, ok := goroutines[i]; ok {
			tag := ""
			switch {
			case i == 1:
				tag = " (fresh)"
			case oldDaemons[i]:
				tag = " (since the warm-up)"
			}
			gs = append(gs, fmt.Sprintf("h%d %d%s", i, n, tag))
		}
	}
	mem = append(mem, "goroutines at the end: "+strings.Join(gs, ", "))

	perFault := make([]int, len(faults))
	for _, v := range vs {
		if i, ok := faultAt(faults, v.At); ok {
			perFault[i]++
		}
	}
	var b strings.Builder
	fmt.Fprintf(&b, "chaos run: %d hosts, %d VIPs, seed %d, %v of faults, %d samples of every namespace, client: %d requests, %d answered, %d responder changes\n",
		c.hosts, len(c.vips), c.seed, end.Sub(c.begin).Round(time.Second), len(samples), sent, answered, changes)
	fmt.Fprintf(&b, "bounds: no holder %v, two holders %v after a heal, client outage %v (failover) / %v (graceful) / %v (after a heal)\n",
		c.bounds.NoHolder, c.bounds.TwoHolders, c.bounds.Failover, c.bounds.Handover, c.bounds.AfterHeal)
	for _, l := range shareLines {
		fmt.Fprintln(&b, l)
	}
	fmt.Fprintf(&b, "%4s %9s  %-9s %-7s %-12s %7s %12s %10s\n", "#", "at", "fault", "targets", "detail", "held", "client gap", "violations")
	count := map[string]int{}
	for i, f := range faults {
		count[f.Kind]++
		gap := "-"
		if longest[i] > 0 {
			gap = longest[i].Round(time.Millisecond).String()
		}
		fmt.Fprintf(&b, "%4d %9s  %-9s %-7s %-12s %7s %12s %10d\n", f.N, "+"+f.Start.Sub(c.begin).Round(100*time.Millisecond).String(),
			f.Kind, strings.Join(f.Targets, ","), f.Detail, f.Restored.Sub(f.Start).Round(100*time.Millisecond), gap, perFault[i])
	}
	fmt.Fprintf(&b, "faults injected: %d (", len(faults))
	for i, k := range chaosFaultKinds {
		if i > 0 {
			b.WriteString(", ")
		}
		fmt.Fprintf(&b, "%s %d", k, count[k])
	}
	b.WriteString(")\n")
	if graceful != "" {
		fmt.Fprintln(&b, graceful)
	}
	for _, m := range mem {
		fmt.Fprintf(&b, "daemons: %s\n", m)
	}
	fmt.Fprintf(&b, "invariant violations: %d\n", len(vs))
	for _, v := range vs {
		fmt.Fprintf(&b, "  +%v %s\n", v.At.Sub(c.begin).Round(time.Millisecond), v)
	}
	t.Log("\n" + b.String())
	// What the daemons said around the first violations (the logs' tails are
	// goroutine dumps by now).
	for i, v := range vs {
		if i == 5 || v.Kind == "memory" || v.Kind == "goroutines" {
			break
		}
		t.Logf("daemon logs around +%v (%s):\n%s", v.At.Sub(c.begin).Round(time.Millisecond), v.Kind, c.logsAround(v.At, 2*time.Second, 40))
	}
	return vs
}
