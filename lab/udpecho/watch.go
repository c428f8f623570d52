package main

// udpecho watch: the chaos run's client. It sends to several targets (one
// per VIP) every -every and prints, as they happen, one JSON line per event:
//
//	{"event":"gap","target":"192.0.2.50:7007","start_unix_ms":...,"end_unix_ms":...,"gap_ms":640,"lost":63,"first_lost_unix_ms":...,"from":"h1","to":"h2"}
//	{"event":"change","target":...,"end_unix_ms":...,"from":"h1","to":"h2"}
//	{"event":"duplicates","target":...,"start_unix_ms":...,"end_unix_ms":...,"duplicates":12,"from":"h1","to":"h2"}
//	{"event":"end","target":...,"sent":6000,"answered":5990}
//
// A target ADDR:PORT@SRC is sent to from the local address SRC (already on
// this host), so that one shared address (--share) can be watched from
// several sources, each in its own flow-hash bucket; its events name it
// with the suffix. A request answered by two names is a duplicate:
// duplicates less than dupJoin requests apart make one "duplicates" event
// (the send times of the first and the last, how many), printed when the
// episode ends.
//
// A gap is measured as the client's summary does: between the send times of
// two consecutive answered requests, reported when it exceeds -gap, with
// the number of requests sent in between that got no answer ("lost") and
// when the first of them was sent: a gap with few lost requests is a stall
// of the client itself. A gap
// still open when the run ends is reported with "open":true and the last
// send as its end. Times are Unix milliseconds, so a caller on the same
// machine can line them up with its own clock.

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"floatip/lab/labnet"
)

// watchEvent is one line of watch's output.
type watchEvent struct {
	Event    string `json:"event"` // gap, change, end
	Target   string `json:"target"`
	StartMS  int64  `json:"start_unix_ms,omitempty"`
	EndMS    int64  `json:"end_unix_ms,omitempty"`
	GapMS    int64  `json:"gap_ms,omitempty"`
	Lost     int    `json:"lost,omitempty"`
	FirstMS  int64  `json:"first_lost_unix_ms,omitempty"`
	From     string `json:"from,omitempty"`
	To       string `json:"to,omitempty"`
	Open     bool   `json:"open,omitempty"`
	Sent     int    `json:"sent,omitempty"`
	Answered int    `json:"answered,omitempty"`
	Dups     int    `json:"duplicates,omitempty"`
}

// dupJoin: duplicates fewer requests apart than this are one episode.
const dupJoin = 20

// gapTracker follows one target's answers and turns them into events. It
// is pure: send and answer times come from the caller.
type gapTracker struct {
	target   string
	minGap   time.Duration
	timeout  time.Duration // an answer later than this after its request does not count
	sends    []time.Time   // send time of each sequence number
	lastSeq  int           // latest answered sequence number, -1 before the first
	lastResp string
	answered int
	// first responder of each request: an index into names, plus one
	firstBy []uint8
	names   []string
	// the open episode of duplicates (dupFirst -1: none)
	dupFirst, dupLast, dups int
	dupFrom, dupTo          string
}

func newGapTracker(target string, minGap, timeout time.Duration) *gapTracker {
	return &gapTracker{target: target, minGap: minGap, timeout: timeout, lastSeq: -1, dupFirst: -1}
}

// sent records the next request; it returns its sequence number.
func (g *gapTracker) sent(at time.Time) int {
	g.sends = append(g.sends, at)
	g.firstBy = append(g.firstBy, 0)
	return len(g.sends) - 1
}

// nameIndex interns a responder's name (at most 255 of them).
func (g *gapTracker) nameIndex(name string) uint8 {
	for i, n := range g.names {
		if n == name {
			return uint8(i + 1)
		}
	}
	if len(g.names) == 255 {
		return 255
	}
	g.names = append(g.names, name)
	return uint8(len(g.names))
}

// duplicate records a second answer to seq from another name; it returns
// the episode it ends, if any.
func (g *gapTracker) duplicate(seq int, first, name string) []watchEvent {
	var evs []watchEvent
	if g.dupFirst >= 0 && seq > g.dupLast+dupJoin {
		evs = g.flushDups()
	}
	if g.dupFirst < 0 {
		g.dupFirst, g.dupLast, g.dups, g.dupFrom, g.dupTo = seq, seq, 0, first, name
	}
	g.dupFirst, g.dupLast = min(g.dupFirst, seq), max(g.dupLast, seq)
	g.dups++
	return evs
}

func (g *gapTracker) flushDups() []watchEvent {
	if g.dupFirst < 0 {
		return nil
	}
	ev := watchEvent{Event: "duplicates", Target: g.target, StartMS: g.sends[g.dupFirst].UnixMilli(), EndMS: g.sends[g.dupLast].UnixMilli(),
		Dups: g.dups, From: g.dupFrom, To: g.dupTo}
	g.dupFirst = -1
	return []watchEvent{ev}
}

// answer records the first reply to seq from name, arrived at at, and
// returns the events it completes. Answers older than the latest answered
// request, late ones and unknown sequence numbers are ignored.
func (g *gapTracker) answer(seq int, name string, at time.Time) []watchEvent {
	if seq >= 0 && seq < len(g.sends) {
		if by := g.firstBy[seq]; by == 0 {
			g.firstBy[seq] = g.nameIndex(name)
		} else if first := g.names[by-1]; first != name {
			return g.duplicate(seq, first, name)
		}
	}
	if seq < 0 || seq >= len(g.sends) || seq <= g.lastSeq || at.Sub(g.sends[seq]) > g.timeout {
		return nil
	}
	g.answered++
	var prevSent time.Time
	if g.lastSeq >= 0 {
		prevSent = g.sends[g.lastSeq]
	} else {
		prevSent = g.sends[0]
	}
	lost := seq - g.lastSeq - 1
	var first int64
	if lost > 0 {
		first = g.sends[g.lastSeq+1].UnixMilli()
	}
	from := g.lastResp
	g.lastSeq, g.lastResp = seq, name
	if gap := g.sends[seq].Sub(prevSent); gap > g.minGap {
		return []watchEvent{{Event: "gap", Target: g.target, StartMS: prevSent.UnixMilli(), EndMS: g.sends[seq].UnixMilli(),
			GapMS: gap.Milliseconds(), Lost: lost, FirstMS: first, From: from, To: name}}
	}
	if from != "" && from != name {
		return []watchEvent{{Event: "change", Target: g.target, EndMS: g.sends[seq].UnixMilli(), From: from, To: name}}
	}
	return nil
}

// finish returns the events of the run's end: a gap still open, and the counts.
func (g *gapTracker) finish() []watchEvent {
	evs := g.flushDups()
	if n := len(g.sends); n > 0 {
		prev := g.sends[0]
		if g.lastSeq >= 0 {
			prev = g.sends[g.lastSeq]
		}
		if gap := g.sends[n-1].Sub(prev); gap > g.minGap {
			evs = append(evs, watchEvent{Event: "gap", Target: g.target, StartMS: prev.UnixMilli(), EndMS: g.sends[n-1].UnixMilli(),
				GapMS: gap.Milliseconds(), Lost: n - 1 - g.lastSeq, FirstMS: g.sends[g.lastSeq+1].UnixMilli(), From: g.lastResp, Open: true})
		}
	}
	return append(evs, watchEvent{Event: "end", Target: g.target, Sent: len(g.sends), Answered: g.answered})
}

// watchTarget is a server and the local address to send from (zero: any).
type watchTarget struct {
	ap  netip.AddrPort
	src netip.Addr
}

func (w watchTarget) String() string {
	if w.src.IsValid() {
		return w.ap.String() + "@" + w.src.String()
	}
	return w.ap.String()
}

// parseTargets parses "A:P,B:P@SRC" and refuses anything outside the lab's ranges.
func parseTargets(s string) ([]watchTarget, error) {
	var out []watchTarget
	for _, f := range strings.Split(s, ",") {
		if f = strings.TrimSpace(f); f == "" {
			continue
		}
		var w watchTarget
		addr, src, ok := strings.Cut(f, "@")
		var err error
		if w.ap, err = netip.ParseAddrPort(addr); err != nil {
			return nil, fmt.Errorf("-targets: %w", err)
		}
		if ok {
			if w.src, err = netip.ParseAddr(src); err != nil {
				return nil, fmt.Errorf("-targets: source of %s: %w", addr, err)
			}
		}
		if !labnet.AllowedTarget(w.ap.Addr()) {
			return nil, fmt.Errorf("refusing %s: only loopback and the documentation ranges are allowed", w.ap.Addr())
		}
		out = append(out, w)
	}
	if len(out) == 0 {
		return nil, errors.New("-targets is required")
	}
	return out, nil
}

func watch(args []string) int {
	fs := flag.NewFlagSet("watch", flag.ContinueOnError)
	targets := fs.String("targets", "", "comma-separated server address:port[@source] list (required)")
	every := fs.Duration("every", 10*time.Millisecond, "interval between requests to each target (>= 1ms)")
	duration := fs.Duration("duration", time.Hour, "how long to send (<= 2h); SIGTERM ends it earlier")
	minGap := fs.Duration("gap", 50*time.Millisecond, "report gaps in answers longer than this")
	timeout := fs.Duration("timeout", time.Second, "a reply later than this after its request does not count")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	aps, err := parseTargets(*targets)
	if err != nil {
		fmt.Fprintf(os.Stderr, "udpecho watch: %v\n", err)
		return 2
	}
	if *every < time.Millisecond || *duration <= 0 || *duration > 2*time.Hour || *minGap <= 0 || *timeout <= 0 {
		fmt.Fprintln(os.Stderr, "udpecho watch: need -every >= 1ms, 0 < -duration <= 2h, -gap > 0, -timeout > 0")
		return 2
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	ctx, cancel := context.WithTimeout(ctx, *duration)
	defer cancel()
	if err := runWatch(ctx, aps, *every, *minGap, *timeout, os.Stdout); err != nil {
		fmt.Fprintf(os.Stderr, "udpecho watch: %v\n", err)
		return 1
	}
	return 0
}

// runWatch sends to every target each tick until ctx ends, writing events
// to out as JSON lines; it waits up to timeout for the last answers.
func runWatch(ctx context.Context, targets []watchTarget, every, minGap, timeout time.Duration, out io.Writer) error {
	var mu sync.Mutex // guards the trackers and out
	enc := json.NewEncoder(out)
	emit := func(evs []watchEvent) {
		for _, ev := range evs {
			_ = enc.Encode(ev)
		}
	}
	type conn struct {
		c  *net.UDPConn
		gt *gapTracker
	}
	conns := make([]conn, 0, len(targets))
	defer func() {
		for _, c := range conns {
			c.c.Close()
		}
	}()
	for _, w := range targets {
		var laddr *net.UDPAddr
		if w.src.IsValid() {
			laddr = &net.UDPAddr{IP: w.src.AsSlice()}
		}
		c, err := net.DialUDP("udp", laddr, net.UDPAddrFromAddrPort(w.ap))
		if err != nil {
			return err
		}
		conns = append(conns, conn{c: c, gt: newGapTracker(w.String(), minGap, timeout)})
	}
	var wg sync.WaitGroup
	for _, c := range conns {
		wg.Add(1)
		go func() {
			defer wg.Done()
			buf := make([]byte, 2048)
			for {
				k, err := c.c.Read(buf)
				at := time.Now()
				if err != nil {
					if errors.Is(err, os.ErrDeadlineExceeded) || errors.Is(err, net.ErrClosed) {
						return
					}
					continue // ICMP errors: keep listening
				}
				name, seqText, ok := strings.Cut(string(buf[:k]), " ")
				seq, err := strconv.Atoi(seqText)
				if !ok || err != nil || name == "" {
					continue
				}
				mu.Lock()
				emit(c.gt.answer(seq, name, at))
				mu.Unlock()
			}
		}()
	}
	tick := time.NewTicker(every)
	for ctx.Err() == nil {
		now := time.Now()
		for _, c := range conns {
			mu.Lock()
			seq := c.gt.sent(now)
			mu.Unlock()
			_, _ = c.c.Write(strconv.AppendInt(nil, int64(seq), 10))
		}
		select {
		case <-ctx.Done():
		case <-tick.C:
		}
	}
	tick.Stop()
	time.Sleep(min(timeout, 200*time.Millisecond))
	for _, c := range conns {
		_ = c.c.SetReadDeadline(time.Unix(1, 0))
	}
	wg.Wait()
	mu.Lock()
	defer mu.Unlock()
	for _, c := range conns {
		emit(c.gt.finish())
	}
	return nil
}
