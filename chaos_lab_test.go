//go:build chaos

package main

// The chaos run (issue 5, item 1): a group of 3 to 5 hosts holding 1 or 16
// VIPs, and every few seconds a random fault — kill -9 and restart, SIGTERM
// and restart, SIGSTOP/SIGCONT, link cut and restore, silent partition of
// one or two hosts and heal, 5-20 % frame loss, a VIP deleted by hand, a
// failing health check — while the checker (chaos_check_test.go) watches the
// real state: every namespace's addresses every 50 ms (one netlink dump
// each) and a client talking to every VIP every 10 ms (udpecho watch).
//
//	go test -tags chaos -run TestChaos -count=1 -timeout 0 -v .
//
// Environment: FLOATIP_CHAOS_SEED (default: from the clock; printed first),
// FLOATIP_CHAOS_DURATION per run (default 10m), FLOATIP_CHAOS_RUNS, a list
// of HOSTSxVIPS (default "3x1,5x16"), FLOATIP_CHAOS_REFERENCE (non-empty:
// the client is every node's --reference). The seed fixes the sequence of faults,
// their targets and durations; a target named "the holder of VIP k" is
// whichever host holds it at that moment.

import (
	"encoding/json"
	"fmt"
	"maps"
	"math/rand/v2"
	"net/netip"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
)

const (
	chaosInterval      = 200 * time.Millisecond // the daemon's defaults
	chaosMisses        = 3
	chaosCheckInterval = 300 * time.Millisecond
	chaosRise          = 2
	chaosSampleEvery   = 50 * time.Millisecond
)

type chaosRunSpec struct{ hosts, vips int }

// chaosEnv reads the run's settings from the environment.
func chaosEnv(t *testing.T) (seed uint64, dur time.Duration, runs []chaosRunSpec) {
	seed = uint64(time.Now().UnixNano()) % 1_000_000_000
	if s := os.Getenv("FLOATIP_CHAOS_SEED"); s != "" {
		v, err := strconv.ParseUint(s, 10, 64)
		if err != nil {
			t.Fatalf("FLOATIP_CHAOS_SEED=%q: %v", s, err)
		}
		seed = v
	}
	dur = 10 * time.Minute
	if s := os.Getenv("FLOATIP_CHAOS_DURATION"); s != "" {
		v, err := time.ParseDuration(s)
		if err != nil || v < 20*time.Second {
			t.Fatalf("FLOATIP_CHAOS_DURATION=%q: want a duration of at least 20s (%v)", s, err)
		}
		dur = v
	}
	spec := "3x1,5x16"
	if s := os.Getenv("FLOATIP_CHAOS_RUNS"); s != "" {
		spec = s
	}
	for _, f := range strings.Split(spec, ",") {
		h, v, ok := strings.Cut(strings.TrimSpace(f), "x")
		hosts, err1 := strconv.Atoi(h)
		vips, err2 := strconv.Atoi(v)
		if !ok || err1 != nil || err2 != nil || hosts < 3 || hosts > 5 || vips < 1 || vips > 16 {
			t.Fatalf("FLOATIP_CHAOS_RUNS=%q: want HOSTSxVIPS,... with 3..5 hosts and 1..16 VIPs", spec)
		}
		runs = append(runs, chaosRunSpec{hosts, vips})
	}
	return seed, dur, runs
}

func TestChaos(t *testing.T) {
	t.Setenv("GOTRACEBACK", "all") // the daemons' dump on SIGQUIT, for the goroutine count
	seed, dur, runs := chaosEnv(t)
	t.Logf("chaos: seed %d, %v per run, runs %v; replay with FLOATIP_CHAOS_SEED=%d", seed, dur, runs, seed)
	for _, r := range runs {
		t.Run(fmt.Sprintf("%dhosts_%dvips", r.hosts, r.vips), func(t *testing.T) {
			if vs := newChaos(t, r, seed).run(dur, false); len(vs) > 0 {
				t.Errorf("%d invariant violations (seed %d)", len(vs), seed)
			}
		})
	}
}

// TestChaosCatchesPlantedFault: the checker is not blind. Half way through
// a short run the last VIP is added by hand on a standby that floatip does
// not know about — two holders with no partition and no heal — and the run
// must report it.
func TestChaosCatchesPlantedFault(t *testing.T) {
	t.Setenv("GOTRACEBACK", "all")
	seed, _, _ := chaosEnv(t)
	vs := newChaos(t, chaosRunSpec{hosts: 3, vips: 2}, seed).run(20*time.Second, true)
	for _, v := range vs {
		if v.Kind == "two-holders" && v.VIP == "192.0.2.51" {
			return
		}
	}
	t.Fatalf("the planted second holder of 192.0.2.51 was not reported; violations: %v", vs)
}

// chaos is one run: its lab, daemons and what the checker saw.
type chaos struct {
	t       *testing.T
	l       *lab
	rng     *rand.Rand
	hosts   int
	vips    []string
	failDir string
	bounds  chaosBounds
	daemons []*daemon // current daemon of host i at index i
	all     []*daemon // every daemon the run started
	killed  []bool    // its exit is expected

	mu      sync.Mutex // guards what follows (the sampler writes samples)
	samples []holdSample
	events  []nodeEvent
	faults  []chaosFault
	extra   []violation // daemon exits, memory
	mem     []memSample // the daemons' RSS, once a second (main goroutine only)
	begin   time.Time   // the chaos starts (after the warm-up)
	seed    uint64
}

func newChaos(t *testing.T, r chaosRunSpec, seed uint64) *chaos {
	c := &chaos{t: t, hosts: r.hosts, failDir: t.TempDir(), seed: seed,
		rng:     rand.New(rand.NewPCG(seed, uint64(r.hosts*100+r.vips))),
		daemons: make([]*daemon, r.hosts+1), killed: make([]bool, r.hosts+1)}
	for i := 0; i < r.vips; i++ {
		c.vips = append(c.vips, fmt.Sprintf("192.0.2.%d", 50+i))
	}
	claim := chaosInterval / 4 // the last check before adding (fastSpacing)
	riseDelay := time.Duration(chaosRise+1)*chaosCheckInterval + 200*time.Millisecond
	c.bounds = chaosBounds{
		NoHolder:   (time.Duration(chaosMisses)*chaosInterval + claim) * 12 / 10,
		TwoHolders: 2 * time.Second,
		RiseDelay:  riseDelay,
		Failover:   800 * time.Millisecond, // lab/bench.sh's targets
		Handover:   100 * time.Millisecond,
		AfterHeal:  50 * time.Millisecond,
		DeadTime:   time.Duration(chaosMisses) * chaosInterval,
		// The client's outage counts its lost requests, not its own stalls.
		ClientEvery: 10 * time.Millisecond,
	}
	c.l = newLab(t, r.hosts)
	return c
}

func (c *chaos) host(i int) string { return fmt.Sprintf("h%d", i) }

func (c *chaos) failFile(i int) string { return filepath.Join(c.failDir, c.host(i)+".fail") }

// daemonArgs: the hosts rank h1 > h2 > ...; otherwise the defaults (the
// lab has no gateway: no reference host), unless FLOATIP_CHAOS_REFERENCE
// is set, which makes the client every node's reference host.
func (c *chaos) daemonArgs(i int) []string {
	args := []string{"-i", "eth0", "--priority", strconv.Itoa(100 + 10*(c.hosts-i)),
		"--check", "test ! -e " + c.failFile(i), "--check-interval", chaosCheckInterval.String(),
		"--rise", strconv.Itoa(chaosRise), "--fall", "2"}
	if os.Getenv("FLOATIP_CHAOS_REFERENCE") != "" {
		args = append(args, "--reference", labClientIP)
	}
	return append(args, c.vips...)
}

func (c *chaos) startDaemon(i int) {
	c.daemons[i] = c.l.startDaemon(c.host(i), c.daemonArgs(i)...)
	c.killed[i] = false
	c.all = append(c.all, c.daemons[i])
}

// logsAround returns the daemons' log lines within window of at (every
// daemon the run started), in time order, at most max of them.
func (c *chaos) logsAround(at time.Time, window time.Duration, max int) string {
	type line struct {
		t    time.Time
		text string
	}
	var ls []line
	for _, d := range c.all {
		for _, l := range strings.Split(d.logs(), "\n") {
			ts, ok := strings.CutPrefix(l, "time=")
			if !ok || len(ts) < 24 {
				continue
			}
			tt, err := time.Parse(time.RFC3339Nano, ts[:24])
			if err != nil || tt.Before(at.Add(-window)) || tt.After(at.Add(window)) {
				continue
			}
			ls = append(ls, line{tt, d.name + ": " + l})
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

func (c *chaos) event(at time.Time, host int, cond nodeCond, up bool) {
	c.mu.Lock()
	c.events = append(c.events, nodeEvent{At: at, Host: host, Cond: cond, Up: up})
	c.mu.Unlock()
}

// holdersNow is the latest sample's holders of VIP v.
func (c *chaos) holdersNow(v int) uint64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(c.samples) == 0 {
		return 0
	}
	return c.samples[len(c.samples)-1].Holders[v]
}

// sampler dumps every host's addresses every chaosSampleEvery until stop.
func (c *chaos) sampler(stop <-chan struct{}, done chan<- struct{}) {
	defer close(done)
	handles := make([]*netlink.Handle, c.hosts+1)
	for i := 1; i <= c.hosts; i++ {
		ns, err := netns.GetFromName(c.l.nsName(c.host(i)))
		if err != nil {
			c.t.Errorf("sampler: namespace of %s: %v", c.host(i), err)
			return
		}
		h, err := netlink.NewHandleAt(ns)
		ns.Close()
		if err != nil {
			c.t.Errorf("sampler: netlink in %s: %v", c.host(i), err)
			return
		}
		defer h.Close()
		handles[i] = h
	}
	index := map[netip.Addr]int{}
	for v, vip := range c.vips {
		index[netip.MustParseAddr(vip)] = v
	}
	tick := time.NewTicker(chaosSampleEvery)
	defer tick.Stop()
	errs := 0
	for {
		s := holdSample{At: time.Now(), Holders: make([]uint64, len(c.vips))}
		for i := 1; i <= c.hosts; i++ {
			addrs, err := handles[i].AddrList(nil, netlink.FAMILY_V4)
			if err != nil {
				if errs++; errs <= 3 {
					c.t.Logf("sampler: addresses of %s: %v", c.host(i), err)
				}
				continue
			}
			for _, a := range addrs {
				ip, ok := netip.AddrFromSlice(a.IP)
				if ones, _ := a.Mask.Size(); !ok || ones != 32 {
					continue
				}
				if v, ok := index[ip.Unmap()]; ok {
					s.Holders[v] |= 1 << (i - 1)
				}
			}
		}
		c.mu.Lock()
		c.samples = append(c.samples, s)
		c.mu.Unlock()
		select {
		case <-stop:
			return
		case <-tick.C:
		}
	}
}

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
	From     string `json:"from"`
	To       string `json:"to"`
	Open     bool   `json:"open"`
	Sent     int    `json:"sent"`
	Answered int    `json:"answered"`
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
		if d == nil || d.exited() {
			continue
		}
		if rss, anon, threads, err := procStatus(d.pid()); err == nil {
			c.mem = append(c.mem, memSample{At: now, Host: i, PID: d.pid(), RSSkB: rss, AnonKB: anon, Threads: threads})
		}
	}
}

// run starts the group, injects faults for dur, then checks and returns the
// violations. With plant, it also adds the last VIP by hand on a host that
// does not hold it, half way through, without telling the checker.
func (c *chaos) run(dur time.Duration, plant bool) []violation {
	t, l := c.t, c.l
	var listen []string
	for _, v := range c.vips {
		listen = append(listen, fmt.Sprintf("%s:%d", v, labEchoPort))
	}
	for i := 1; i <= c.hosts; i++ {
		l.startEchoServer(c.host(i), strings.Join(listen, ","))
	}
	stopSampler, samplerDone := make(chan struct{}), make(chan struct{})
	go c.sampler(stopSampler, samplerDone)
	defer func() {
		select {
		case <-samplerDone:
		default:
			close(stopSampler)
			<-samplerDone
		}
	}()
	for i := c.hosts; i >= 1; i-- { // worst first: start order does not decide
		c.startDaemon(i)
	}
	waitFor(t, 15*time.Second, "h1 to hold every VIP alone", func() bool {
		for v := range c.vips {
			if c.holdersNow(v) != 1 {
				return false
			}
		}
		return true
	})
	client := l.startProcess("c", "udpecho-watch", buildUDPEcho(t), "watch", "-targets", strings.Join(listen, ","),
		"-every", "10ms", "-gap", "50ms", "-duration", (dur + 10*time.Minute).String())
	time.Sleep(2 * time.Second) // the client's ARP entries, the health checks' rise

	c.begin = time.Now()
	deadline := c.begin.Add(dur)
	warm := c.begin.Add(max(20*time.Second, dur/5))
	t.Logf("chaos: %d hosts, %d VIPs, %v from %s", c.hosts, len(c.vips), dur, c.begin.Format("15:04:05"))
	planted := !plant
	for n := 1; time.Now().Before(deadline); n++ {
		if !planted && time.Since(c.begin) >= dur/2 {
			planted = true
			v := len(c.vips) - 1
			for i := c.hosts; i >= 1; i-- {
				if c.holdersNow(v)&(1<<(i-1)) == 0 {
					t.Logf("planting a second holder: %s on %s, by hand", c.vips[v], c.host(i))
					l.mustRun(c.host(i), "ip", "addr", "add", c.vips[v]+"/32", "dev", "eth0")
					break
				}
			}
		}
		c.inject(n, c.draw())
	}
	c.sleep(3 * time.Second)
	c.recordMemory(true)
	end := time.Now()
	endPIDs := map[int]int{}
	for i := 1; i <= c.hosts; i++ {
		endPIDs[i] = c.daemons[i].pid()
	}
	client.signal(syscall.SIGTERM)
	if _, err := client.wait(10 * time.Second); err != nil {
		t.Errorf("udpecho watch: %v", err)
	}
	close(stopSampler)
	<-samplerDone
	c.checkExits()
	// A fresh daemon's goroutines are the yardstick of the long-lived ones':
	// h1 starts again (it also shows a restart into a running group).
	c.killed[1] = true
	c.daemons[1].signal(syscall.SIGTERM)
	if code, err := c.daemons[1].wait(5 * time.Second); err != nil || code != 0 {
		t.Errorf("h1 did not stop cleanly on SIGTERM: %d %v", code, err)
	}
	c.startDaemon(1)
	time.Sleep(3 * time.Second)
	return c.report(warm, end, endPIDs, client.logs(), c.goroutines())
}

// goroutineHeaderRE matches a goroutine's first line in a dump,
// "goroutine 7 [select]:" or "goroutine 7 gp=0x... m=nil [select]:".
var goroutineHeaderRE = regexp.MustCompile(`(?m)^goroutine [0-9]+ .*\[.*\]:$`)

// goroutines ends every daemon with SIGQUIT, on which the Go runtime dumps
// all goroutines, and counts them (-1: no dump).
func (c *chaos) goroutines() map[int]int {
	counts := map[int]int{}
	for i := 1; i <= c.hosts; i++ {
		d := c.daemons[i]
		if d.exited() {
			continue
		}
		c.killed[i] = true
		d.signal(syscall.SIGQUIT)
		if _, err := d.wait(10 * time.Second); err != nil {
			c.t.Errorf("SIGQUIT: %v", err)
			continue
		}
		_, dump, _ := strings.Cut(d.logs(), "SIGQUIT")
		counts[i] = len(goroutineHeaderRE.FindAllString(dump, -1))
		if counts[i] == 0 {
			counts[i] = -1
		}
	}
	return counts
}

// report evaluates the invariants over [begin, end], prints the table and
// returns the violations.
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
		vipIndex[fmt.Sprintf("%s:%d", vip, labEchoPort)] = v
	}
	var gaps []clientGap
	changes, ends := 0, 0
	sent, answered := 0, 0
	for _, line := range strings.Split(clientOut, "\n") {
		var ev chaosWatchEvent
		if !strings.HasPrefix(line, "{") || json.Unmarshal([]byte(line), &ev) != nil {
			continue
		}
		v, ok := vipIndex[ev.Target]
		if !ok {
			continue
		}
		switch ev.Event {
		case "gap":
			g := clientGap{VIP: v, Start: time.UnixMilli(ev.StartMS), End: time.UnixMilli(ev.EndMS), Lost: ev.Lost, From: ev.From, To: ev.To, Open: ev.Open}
			if !g.Start.Before(c.begin) {
				gaps = append(gaps, g)
			}
		case "change":
			changes++
		case "end":
			ends++
			sent += ev.Sent
			answered += ev.Answered
		}
	}
	if ends != len(c.vips) {
		t.Errorf("udpecho watch reported the end of %d targets, want %d; its output:\n%s", ends, len(c.vips), lastLines(clientOut, 20))
	}

	spans := eligibleSpans(c.events, c.hosts, c.begin, end, c.bounds.RiseDelay)
	vs := twoHolderViolations(samples, faults, c.vips, c.bounds.TwoHolders)
	vs = append(vs, noHolderViolations(samples, spans, c.vips, c.bounds.NoHolder)...)
	outages, longest := outageViolations(gaps, faults, c.vips, c.bounds)
	vs = append(vs, outages...)
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
		if v, bad := memoryViolation(i, b, e, 0.20); bad {
			vs = append(vs, v)
		}
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
