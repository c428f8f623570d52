// Command udpecho shows what a user of a floating IP sees during a failover.
//
//	udpecho serve  -listen 192.0.2.50:7007 -name h1
//	udpecho client -target 192.0.2.50:7007 -every 10ms -duration 10s [-json] [-live]
//	udpecho watch  -targets 192.0.2.50:7007,192.0.2.51:7007 -every 10ms [-gap 50ms]
//
// The server answers each datagram with its name, a space and the datagram's
// payload. It binds with IP_FREEBIND, so it can listen on the floating IP
// before this host holds it (the lab also sets net.ipv4.ip_nonlocal_bind=1).
//
// The client sends the sequence numbers 0, 1, 2, ... (decimal text), one
// every -every, for -duration, then waits -timeout for the last answers and
// prints a summary: requests sent and answered, answers per responder, the
// changes of responder, and the longest gap in answers. A request counts as
// answered when its first reply came within -timeout; later replies count as
// late. -live prints a line to stderr whenever the responder changes, answers
// stop, or answers resume after a gap of more than 50 ms. SIGINT or SIGTERM
// ends the run early; the summary is still printed. The client only talks to
// loopback and the documentation ranges 2001:db8::/32, 192.0.2.0/24, 198.51.100.0/24 and
// 203.0.113.0/24.
//
// watch (watch.go) is the chaos run's client: it talks to several targets
// at once and prints gaps and responder changes as JSON lines as they happen.
package main

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
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"floatip/lab/labnet"
)

func main() {
	if len(os.Args) < 2 {
		usage(os.Stderr)
		os.Exit(2)
	}
	switch os.Args[1] {
	case "serve":
		os.Exit(serve(os.Args[2:]))
	case "client":
		os.Exit(client(os.Args[2:]))
	case "watch":
		os.Exit(watch(os.Args[2:]))
	case "-h", "-help", "--help", "help":
		usage(os.Stdout)
	default:
		usage(os.Stderr)
		os.Exit(2)
	}
}

func usage(w io.Writer) {
	fmt.Fprintln(w, "usage: udpecho serve -listen ADDR:PORT[,ADDR:PORT...] [-name NAME]")
	fmt.Fprintln(w, "       udpecho client -target ADDR:PORT [-every 10ms] [-duration 10s] [-timeout 1s] [-json] [-live]")
	fmt.Fprintln(w, "       udpecho watch -targets ADDR:PORT,... [-every 10ms] [-duration 1h] [-gap 50ms] [-timeout 1s]")
}

// ---------------------------------------------------------------- server

func serve(args []string) int {
	fs := flag.NewFlagSet("serve", flag.ContinueOnError)
	listen := fs.String("listen", "", "address:port to listen on, or a comma-separated list of them (required)")
	host, _ := os.Hostname()
	name := fs.String("name", host, "name put in front of every answer")
	bindTimeout := fs.Duration("bind-timeout", 30*time.Second, "how long to retry a bind that fails with EADDRNOTAVAIL")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	if *listen == "" || strings.ContainsAny(*name, " \n") || *name == "" {
		fmt.Fprintln(os.Stderr, "udpecho serve: -listen is required and -name must be one word")
		return 2
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()

	// Several addresses (one per VIP) are served by one process.
	var conns []net.PacketConn
	for _, addr := range strings.Split(*listen, ",") {
		conn, err := listenFreebind(ctx, addr, *bindTimeout)
		if err != nil {
			for _, c := range conns {
				c.Close()
			}
			fmt.Fprintf(os.Stderr, "udpecho serve: %v\n", err)
			return 1
		}
		conns = append(conns, conn)
	}
	var wg sync.WaitGroup
	for _, conn := range conns {
		fmt.Fprintf(os.Stderr, "udpecho: %s serving on %s\n", *name, conn.LocalAddr())
		wg.Add(1)
		go func() { defer wg.Done(); serveConn(ctx, conn, *name) }()
	}
	wg.Wait()
	return 0
}

// serveConn answers every datagram on conn with "NAME PAYLOAD" until ctx
// ends, then closes conn.
func serveConn(ctx context.Context, conn net.PacketConn, name string) {
	defer conn.Close()
	stopped := make(chan struct{})
	defer close(stopped)
	go func() {
		select {
		case <-ctx.Done():
			_ = conn.SetReadDeadline(time.Unix(1, 0))
		case <-stopped:
		}
	}()
	buf := make([]byte, 64*1024)
	prefix := []byte(name + " ")
	for {
		n, from, err := conn.ReadFrom(buf)
		if ctx.Err() != nil {
			return
		}
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return
			}
			// ICMP errors from earlier answers and the like: keep serving.
			time.Sleep(time.Millisecond)
			continue
		}
		reply := append(append(make([]byte, 0, len(prefix)+n), prefix...), buf[:n]...)
		_, _ = conn.WriteTo(reply, from)
	}
}

// listenFreebind binds a UDP socket with IP_FREEBIND, retrying every 100 ms
// on EADDRNOTAVAIL until timeout (or ctx ends).
func listenFreebind(ctx context.Context, addr string, timeout time.Duration) (net.PacketConn, error) {
	lc := net.ListenConfig{Control: labnet.Freebind}
	network := "udp4"
	if ap, err := netip.ParseAddrPort(addr); err == nil && ap.Addr().Unmap().Is6() {
		network = "udp6" // IP_FREEBIND works on an IPv6 socket too
	}
	deadline := time.Now().Add(timeout)
	for {
		conn, err := lc.ListenPacket(ctx, network, addr)
		if err == nil {
			return conn, nil
		}
		if !errors.Is(err, syscall.EADDRNOTAVAIL) || time.Now().After(deadline) || ctx.Err() != nil {
			return nil, err
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// ---------------------------------------------------------------- summary

// probe is one request: its sequence number, when it was sent and when its
// first reply came (offsets from the first send), and who answered it.
// Responder is "" for a request without a reply.
type probe struct {
	Seq       int
	Sent      time.Duration
	Reply     time.Duration
	Responder string
}

// change is a change of responder, at the send time of the first request
// the new responder answered.
type change struct {
	AtMS  int64  `json:"at_ms"`
	From  string `json:"from"`
	To    string `json:"to"`
	GapMS int64  `json:"gap_ms"` // since the previous answered request: the outage of this move
}

// summary is what the client prints (-json prints it as one JSON object).
type summary struct {
	Target            string         `json:"target,omitempty"`
	EveryMS           float64        `json:"every_ms,omitempty"`
	DurationMS        int64          `json:"duration_ms"`
	Sent              int            `json:"sent"`
	Answered          int            `json:"answered"`
	Late              int            `json:"late"`
	Duplicates        int            `json:"duplicates"`
	ByResponder       map[string]int `json:"by_responder"`
	FirstResponder    string         `json:"first_responder"`
	LastResponder     string         `json:"last_responder"`
	Changes           []change       `json:"changes"`
	LongestGapMS      int64          `json:"longest_gap_ms"`
	LongestGapStartMS int64          `json:"longest_gap_start_ms"`
}

// summarize computes the summary of a run from its probes (in any order).
//
// A probe is answered when it has a responder and its reply came no later
// than timeout after it was sent (timeout <= 0: no limit); other replies are
// late. Gaps are measured between the send times of consecutive answered
// probes, in sequence order; the run's first and last sends count as bounds,
// so an outage at the start or at the end (or a run without any answer)
// shows too. Changes list each switch of responder between consecutive
// answered probes.
func summarize(probes []probe, timeout time.Duration) summary {
	ps := append([]probe(nil), probes...)
	sort.Slice(ps, func(i, j int) bool { return ps[i].Seq < ps[j].Seq })
	s := summary{ByResponder: map[string]int{}, Changes: []change{}, Sent: len(ps)}
	if len(ps) == 0 {
		return s
	}
	first, last := ps[0].Sent, ps[len(ps)-1].Sent
	s.DurationMS = ms(last - first)
	prevAt := first
	var longest, longestStart time.Duration
	gap := func(at time.Duration) {
		if g := at - prevAt; g > longest {
			longest, longestStart = g, prevAt
		}
		prevAt = at
	}
	prev := ""
	for _, p := range ps {
		if p.Responder == "" {
			continue
		}
		if timeout > 0 && p.Reply-p.Sent > timeout {
			s.Late++
			continue
		}
		s.Answered++
		s.ByResponder[p.Responder]++
		if prev == "" {
			s.FirstResponder = p.Responder
		} else if p.Responder != prev {
			s.Changes = append(s.Changes, change{AtMS: ms(p.Sent), From: prev, To: p.Responder, GapMS: ms(p.Sent - prevAt)})
		}
		prev = p.Responder
		gap(p.Sent)
	}
	gap(last)
	s.LastResponder = prev
	s.LongestGapMS = ms(longest)
	s.LongestGapStartMS = ms(longestStart)
	return s
}

func ms(d time.Duration) int64 { return d.Round(time.Millisecond).Milliseconds() }

func (s summary) text() string {
	var b strings.Builder
	pct := 0.0
	if s.Sent > 0 {
		pct = 100 * float64(s.Answered) / float64(s.Sent)
	}
	fmt.Fprintf(&b, "udpecho: %d sent to %s over %d ms, %d answered (%.1f%%), %d late, %d duplicate replies\n",
		s.Sent, s.Target, s.DurationMS, s.Answered, pct, s.Late, s.Duplicates)
	names := make([]string, 0, len(s.ByResponder))
	for n := range s.ByResponder {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		fmt.Fprintf(&b, "  answered by %-8s %d\n", n, s.ByResponder[n])
	}
	if s.FirstResponder != "" {
		fmt.Fprintf(&b, "  first responder: %s\n", s.FirstResponder)
	}
	for _, c := range s.Changes {
		fmt.Fprintf(&b, "  +%6d ms  responder %s -> %s\n", c.AtMS, c.From, c.To)
	}
	fmt.Fprintf(&b, "  longest gap in answers: %d ms, from +%d ms\n", s.LongestGapMS, s.LongestGapStartMS)
	return b.String()
}

// ---------------------------------------------------------------- client

type run struct {
	start   time.Time
	timeout time.Duration
	live    bool
	out     io.Writer

	mu          sync.Mutex
	probes      []probe
	dups        int
	lastArrival time.Duration // offset of the latest in-time reply
	liveResp    string        // responder of the latest answered request, by seq
	liveSeq     int           // its sequence number (-1: none yet)
	quietShown  bool          // "no answers" already printed for this gap
}

func (r *run) since() time.Duration { return time.Since(r.start) }

func (r *run) logf(format string, a ...any) {
	fmt.Fprintf(r.out, "udpecho: +%6d ms  %s\n", ms(r.since()), fmt.Sprintf(format, a...))
}

// reply records the reply "NAME SEQ".
func (r *run) reply(msg []byte, at time.Duration) {
	name, seqText, ok := strings.Cut(string(msg), " ")
	if !ok || name == "" {
		return
	}
	seq, err := strconv.Atoi(seqText)
	r.mu.Lock()
	defer r.mu.Unlock()
	if err != nil || seq < 0 || seq >= len(r.probes) {
		return
	}
	p := &r.probes[seq]
	if p.Responder != "" {
		r.dups++
		return
	}
	p.Responder, p.Reply = name, at
	if r.timeout > 0 && at-p.Sent > r.timeout {
		return
	}
	r.lastArrival = at
	if !r.live || seq < r.liveSeq {
		return
	}
	if r.liveSeq >= 0 {
		prevSent := r.probes[r.liveSeq].Sent
		if gap := p.Sent - prevSent; gap > 50*time.Millisecond {
			r.logf("answers resumed (%s) after a %d ms gap from +%d ms", name, ms(gap), ms(prevSent))
		}
	}
	switch {
	case r.liveResp == "":
		r.logf("first answer, from %s", name)
	case name != r.liveResp:
		r.logf("responder changed: %s -> %s", r.liveResp, name)
	}
	r.liveResp, r.liveSeq, r.quietShown = name, seq, false
}

// watchQuiet prints one line per silence of more than 200 ms (live mode)
// until done is closed.
func (r *run) watchQuiet(done <-chan struct{}) {
	t := time.NewTicker(50 * time.Millisecond)
	defer t.Stop()
	for {
		select {
		case <-done:
			return
		case <-t.C:
		}
		r.mu.Lock()
		now := r.since()
		if len(r.probes) > 0 && !r.quietShown && now-r.lastArrival > 200*time.Millisecond {
			r.quietShown = true
			r.logf("no answers since +%d ms", ms(r.lastArrival))
		}
		r.mu.Unlock()
	}
}

// clientConfig describes one client run.
type clientConfig struct {
	Target   netip.AddrPort
	Every    time.Duration
	Duration time.Duration
	Timeout  time.Duration
	Live     io.Writer // nil: no live lines
}

func client(args []string) int {
	fs := flag.NewFlagSet("client", flag.ContinueOnError)
	target := fs.String("target", "", "server address:port (required)")
	every := fs.Duration("every", 10*time.Millisecond, "interval between requests (>= 1ms)")
	duration := fs.Duration("duration", 10*time.Second, "how long to send (<= 1h)")
	timeout := fs.Duration("timeout", time.Second, "a reply later than this after its request is late")
	asJSON := fs.Bool("json", false, "print the summary as one JSON object")
	live := fs.Bool("live", false, "print responder changes and gaps on stderr as they happen")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	if *every < time.Millisecond || *duration <= 0 || *duration > time.Hour || *timeout <= 0 || *timeout > time.Minute {
		fmt.Fprintln(os.Stderr, "udpecho client: need -every >= 1ms, 0 < -duration <= 1h, 0 < -timeout <= 1m")
		return 2
	}
	ap, err := netip.ParseAddrPort(*target)
	if err != nil {
		fmt.Fprintf(os.Stderr, "udpecho client: -target: %v\n", err)
		return 2
	}
	if !labnet.AllowedTarget(ap.Addr()) {
		fmt.Fprintf(os.Stderr, "udpecho client: refusing %s: only loopback and the documentation ranges are allowed\n", ap.Addr())
		return 2
	}
	cfg := clientConfig{Target: ap, Every: *every, Duration: *duration, Timeout: *timeout}
	if *live {
		cfg.Live = os.Stderr
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	s, err := runClient(ctx, cfg)
	if err != nil {
		fmt.Fprintf(os.Stderr, "udpecho client: %v\n", err)
		return 1
	}
	if *asJSON {
		if err := json.NewEncoder(os.Stdout).Encode(s); err != nil {
			return 1
		}
		return 0
	}
	fmt.Print(s.text())
	return 0
}

// runClient sends requests as cfg says until cfg.Duration has passed or ctx
// ends, waits for the last answers (cfg.Timeout, or 200 ms at most after ctx
// ended) and returns the summary.
func runClient(ctx context.Context, cfg clientConfig) (summary, error) {
	conn, err := net.DialUDP("udp", nil, net.UDPAddrFromAddrPort(cfg.Target))
	if err != nil {
		return summary{}, err
	}
	defer conn.Close()

	n := int(cfg.Duration/cfg.Every) + 1
	r := &run{start: time.Now(), timeout: cfg.Timeout, live: cfg.Live != nil, out: cfg.Live,
		probes: make([]probe, 0, n), liveSeq: -1}

	recvDone := make(chan struct{})
	go func() {
		defer close(recvDone)
		buf := make([]byte, 2048)
		for {
			k, err := conn.Read(buf)
			at := r.since()
			if err != nil {
				if errors.Is(err, os.ErrDeadlineExceeded) || errors.Is(err, net.ErrClosed) {
					return
				}
				continue // ICMP errors (unreachable, refused): keep listening
			}
			r.reply(buf[:k], at)
		}
	}()
	quietDone := make(chan struct{})
	if r.live {
		go r.watchQuiet(quietDone)
	}

	tick := time.NewTicker(cfg.Every)
	sendErrs := 0
send:
	for seq := 0; seq < n; seq++ {
		at := r.since()
		if at >= cfg.Duration {
			break
		}
		r.mu.Lock()
		r.probes = append(r.probes, probe{Seq: seq, Sent: at})
		r.mu.Unlock()
		if _, err := conn.Write(strconv.AppendInt(nil, int64(seq), 10)); err != nil {
			sendErrs++
		}
		select {
		case <-ctx.Done():
			break send
		case <-tick.C:
		}
	}
	tick.Stop()
	close(quietDone) // silence after the last request is no news

	// Wait for the last answers; a signal cuts that short.
	grace := cfg.Timeout
	var sig <-chan struct{}
	if ctx.Err() != nil {
		grace = min(grace, 200*time.Millisecond)
	} else {
		sig = ctx.Done()
	}
	timer := time.NewTimer(grace)
	select {
	case <-timer.C:
	case <-sig:
	}
	timer.Stop()
	_ = conn.SetReadDeadline(time.Unix(1, 0))
	<-recvDone

	r.mu.Lock()
	s := summarize(r.probes, r.timeout)
	s.Duplicates = r.dups
	r.mu.Unlock()
	s.Target = cfg.Target.String()
	s.EveryMS = float64(cfg.Every) / float64(time.Millisecond)
	if sendErrs > 0 && r.live {
		fmt.Fprintf(cfg.Live, "udpecho: %d sends failed (no route or neighbour yet)\n", sendErrs)
	}
	return s, nil
}
