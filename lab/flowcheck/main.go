// Command flowcheck shows, per client source address, which node answered
// each flow to a shared address (one address on several nodes at once, each
// answering only the flows whose source-hash bucket it owns).
//
//	flowcheck serve  -listen 192.0.2.80:7007 -name h1
//	flowcheck client -target 192.0.2.80:7007 -sources 192.0.2.130-192.0.2.193 [-every 100ms] [-duration 10s] [-timeout 300ms] [-long] [-json]
//
// The server answers each UDP datagram, and each line on a TCP connection to
// the same port, with its name, a space and the payload or line. It binds
// with IP_FREEBIND, so it can listen before this host holds the address, and
// runs until SIGINT or SIGTERM, then closes its connections.
//
// The client runs one goroutine per source (-sources: ranges A-B and single
// addresses, comma-separated, already on this host). Every -every, each
// source sends one UDP datagram (its sequence number) from a socket bound to
// the source, and opens one new TCP connection from it: one line, its
// answer, close. -long adds one TCP connection per source, opened at the
// start, with a line every -every; one that breaks is recorded, not reopened.
// A UDP request is answered when its first reply comes within -timeout;
// further replies are duplicates. TCP connects and answers may take
// max(-timeout, 1s) (retransmissions). Failures are named by kind: refused,
// reset (also EPIPE), aborted, unreachable, eof, timeout, other. A longest
// gap is the longest time between the send times of consecutive answered
// requests, the start and the end of sending counting as answered. The
// summary (-json: one JSON object) is printed at the end, also after SIGINT
// or SIGTERM. The client only talks to loopback and the documentation ranges
// 192.0.2.0/24, 198.51.100.0/24, 203.0.113.0/24 and 2001:db8::/32.
package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"maps"
	"net"
	"net/netip"
	"os"
	"os/signal"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

func main() {
	if len(os.Args) < 2 {
		usage(os.Stderr)
		os.Exit(2)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := 2
	switch os.Args[1] {
	case "serve":
		code = serve(ctx, os.Args[2:])
	case "client":
		code = client(ctx, os.Args[2:], os.Stdout)
	case "-h", "-help", "--help", "help":
		usage(os.Stdout)
		code = 0
	default:
		usage(os.Stderr)
	}
	stop()
	os.Exit(code)
}

func usage(w io.Writer) {
	fmt.Fprintln(w, "usage: flowcheck serve -listen ADDR:PORT [-name NAME]")
	fmt.Fprintln(w, "       flowcheck client -target ADDR:PORT -sources A-B[,C...] [-every 100ms] [-duration 10s] [-timeout 300ms] [-long] [-json]")
}

// ---------------------------------------------------------------- server

func serve(ctx context.Context, args []string) int {
	fs := flag.NewFlagSet("serve", flag.ContinueOnError)
	listen := fs.String("listen", "", "address:port to listen on, UDP and TCP (required)")
	host, _ := os.Hostname()
	name := fs.String("name", host, "name put in front of every answer")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	if *listen == "" || *name == "" || strings.ContainsAny(*name, " \n") {
		fmt.Fprintln(os.Stderr, "flowcheck serve: -listen is required and -name must be one word")
		return 2
	}
	ln, pc, err := listenBoth(ctx, *listen)
	if err != nil {
		fmt.Fprintf(os.Stderr, "flowcheck serve: %v\n", err)
		return 1
	}
	fmt.Fprintf(os.Stderr, "flowcheck: %s serving on %s (udp and tcp)\n", *name, ln.Addr())
	runServer(ctx, ln, pc, *name)
	return 0
}

func freebind(network, address string, c syscall.RawConn) error {
	var serr error
	if err := c.Control(func(fd uintptr) {
		serr = syscall.SetsockoptInt(int(fd), syscall.IPPROTO_IP, syscall.IP_FREEBIND, 1)
	}); err != nil {
		return err
	}
	return serr
}

// listenBoth binds TCP on addr, then UDP on the TCP listener's address (so
// port 0 picks one free port for both), both with IP_FREEBIND.
func listenBoth(ctx context.Context, addr string) (net.Listener, net.PacketConn, error) {
	ap, err := netip.ParseAddrPort(addr)
	if err != nil {
		return nil, nil, err
	}
	v := "4"
	if ap.Addr().Unmap().Is6() {
		v = "6"
	}
	lc := net.ListenConfig{Control: freebind}
	ln, err := lc.Listen(ctx, "tcp"+v, addr)
	if err != nil {
		return nil, nil, err
	}
	pc, err := lc.ListenPacket(ctx, "udp"+v, ln.Addr().String())
	if err != nil {
		ln.Close()
		return nil, nil, err
	}
	return ln, pc, nil
}

// runServer answers on ln and pc until ctx ends, then closes them and every
// connection, and returns when all are done.
func runServer(ctx context.Context, ln net.Listener, pc net.PacketConn, name string) {
	defer context.AfterFunc(ctx, func() { ln.Close(); pc.Close() })()
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		buf := make([]byte, 64*1024)
		for {
			n, from, err := pc.ReadFrom(buf)
			if err != nil {
				if ctx.Err() != nil || errors.Is(err, net.ErrClosed) {
					return
				}
				time.Sleep(time.Millisecond) // ICMP errors and the like
				continue
			}
			_, _ = pc.WriteTo(append([]byte(name+" "), buf[:n]...), from)
		}
	}()
	for {
		c, err := ln.Accept()
		if err != nil {
			if ctx.Err() != nil || errors.Is(err, net.ErrClosed) {
				break
			}
			time.Sleep(10 * time.Millisecond)
			continue
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer c.Close()
			defer context.AfterFunc(ctx, func() { c.Close() })()
			r := bufio.NewReader(c)
			for {
				line, err := r.ReadString('\n')
				if err != nil {
					return
				}
				if _, err := io.WriteString(c, name+" "+line); err != nil {
					return
				}
			}
		}()
	}
	ln.Close()
	pc.Close()
	wg.Wait()
}

// ---------------------------------------------------------------- client

type config struct {
	Target                   netip.AddrPort
	Sources                  []netip.Addr
	Every, Duration, Timeout time.Duration
	Long                     bool
}

// connTimeout bounds a TCP connect and the wait for a TCP answer.
func (c *config) connTimeout() time.Duration { return max(c.Timeout, time.Second) }

type report struct {
	Target     string `json:"target"`
	EveryMS    int64  `json:"every_ms"`
	DurationMS int64  `json:"duration_ms"`
	Sources    int    `json:"sources"`
	UDP        struct {
		Sent       int `json:"sent"`
		Answered   int `json:"answered"`
		Missing    int `json:"missing"`
		Duplicates int `json:"duplicates"`
	} `json:"udp"`
	TCP struct {
		Tried  int `json:"tried"`
		OK     int `json:"ok"`
		Failed int `json:"failed"`
	} `json:"tcp"`
	Long struct {
		Opened int `json:"opened"`
		Broken int `json:"broken"`
	} `json:"long"`
	BySource map[string]*sourceReport `json:"by_source"`
}

type sourceReport struct {
	UDPResponders        map[string]int `json:"udp_responders"`
	UDPMissing           int            `json:"udp_missing"`
	UDPDuplicates        int            `json:"udp_duplicates"`
	UDPDupResponders     map[string]int `json:"udp_duplicate_responders"`
	UDPLongestGapMS      int64          `json:"udp_longest_gap_ms"`
	UDPLongestGapStartMS int64          `json:"udp_longest_gap_start_ms"`
	TCPResponders        map[string]int `json:"tcp_responders"`
	TCPFailed            int            `json:"tcp_failed"`
	TCPFailures          map[string]int `json:"tcp_failures"` // by kind
	TCPLongestGapMS      int64          `json:"tcp_longest_gap_ms"`
	TCPLongestGapStartMS int64          `json:"tcp_longest_gap_start_ms"`
	LongOpened           bool           `json:"long_opened"`
	LongResponders       map[string]int `json:"long_responders"`
	LongChanges          int            `json:"long_changes"`
	LongError            string         `json:"long_error"` // kind; "" while the connection lived to the end
	LongErrorText        string         `json:"long_error_text,omitempty"`
	LongBrokenAtMS       int64          `json:"long_broken_at_ms"`
	LongLongestGapMS     int64          `json:"long_longest_gap_ms"`
}

// request is one UDP request or TCP flow (or, on the long connection, one
// answered line). Times are offsets from the run's start.
type request struct {
	sent, reply time.Duration
	responder   string // "" if not answered
	fail        string // TCP: the failure's kind
	done        bool   // TCP: finished, not cut short by the end of ctx
}

// source is the state of one source address (its own goroutines only).
type source struct {
	addr  netip.Addr
	cfg   *config
	start time.Time
	conn  *net.UDPConn

	mu                   sync.Mutex
	udp, tcp, long       []request
	dups                 map[string]int
	end                  time.Duration // when sending stopped
	longOpened           bool
	longErr, longErrText string
	longBrokenAt         time.Duration
}

func (s *source) since() time.Duration { return time.Since(s.start) }

func client(ctx context.Context, args []string, stdout io.Writer) int {
	fs := flag.NewFlagSet("client", flag.ContinueOnError)
	target := fs.String("target", "", "server address:port (required)")
	sources := fs.String("sources", "", "source addresses on this host: A-B ranges and addresses, comma-separated (required)")
	every := fs.Duration("every", 100*time.Millisecond, "interval between the requests of a source (>= 10ms)")
	duration := fs.Duration("duration", 10*time.Second, "how long to send (<= 1h)")
	timeout := fs.Duration("timeout", 300*time.Millisecond, "a UDP reply later than this is missing; TCP waits max(this, 1s)")
	long := fs.Bool("long", false, "also keep one long-lived TCP connection per source")
	asJSON := fs.Bool("json", false, "print the summary as one JSON object")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	if *every < 10*time.Millisecond || *duration <= 0 || *duration > time.Hour || *timeout <= 0 || *timeout > time.Minute {
		fmt.Fprintln(os.Stderr, "flowcheck client: need -every >= 10ms, 0 < -duration <= 1h, 0 < -timeout <= 1m")
		return 2
	}
	ap, err := netip.ParseAddrPort(*target)
	if err != nil {
		fmt.Fprintf(os.Stderr, "flowcheck client: -target: %v\n", err)
		return 2
	}
	if !allowedTarget(ap.Addr()) {
		fmt.Fprintf(os.Stderr, "flowcheck client: refusing %s: only loopback and the documentation ranges are allowed\n", ap.Addr())
		return 2
	}
	srcs, err := parseSources(*sources, ap.Addr().Unmap().Is4())
	if err != nil {
		fmt.Fprintf(os.Stderr, "flowcheck client: -sources: %v\n", err)
		return 2
	}
	cfg := &config{Target: netip.AddrPortFrom(ap.Addr().Unmap(), ap.Port()), Sources: srcs,
		Every: *every, Duration: *duration, Timeout: *timeout, Long: *long}
	rep, err := runClient(ctx, cfg)
	if err != nil {
		fmt.Fprintf(os.Stderr, "flowcheck client: %v\n", err)
		return 1
	}
	if *asJSON {
		if err := json.NewEncoder(stdout).Encode(rep); err != nil {
			return 1
		}
		return 0
	}
	fmt.Fprint(stdout, rep.text())
	return 0
}

var labRanges = []netip.Prefix{
	netip.MustParsePrefix("192.0.2.0/24"),
	netip.MustParsePrefix("198.51.100.0/24"),
	netip.MustParsePrefix("203.0.113.0/24"),
	netip.MustParsePrefix("2001:db8::/32"),
}

func allowedTarget(a netip.Addr) bool {
	a = a.Unmap()
	if a.IsLoopback() {
		return true
	}
	for _, p := range labRanges {
		if p.Contains(a) {
			return true
		}
	}
	return false
}

// parseSources parses "A-B,C,...": at most 1024 distinct addresses, all of
// the target's family.
func parseSources(spec string, v4 bool) ([]netip.Addr, error) {
	var out []netip.Addr
	seen := map[netip.Addr]bool{}
	for _, part := range strings.Split(spec, ",") {
		lo, hi, isRange := strings.Cut(strings.TrimSpace(part), "-")
		a, err := netip.ParseAddr(strings.TrimSpace(lo))
		if err != nil {
			return nil, err
		}
		b := a.Unmap()
		if isRange {
			if b, err = netip.ParseAddr(strings.TrimSpace(hi)); err != nil {
				return nil, err
			}
		}
		a, b = a.Unmap(), b.Unmap()
		if a.Is4() != v4 || b.Is4() != v4 || b.Less(a) {
			return nil, fmt.Errorf("%q: not an address or a range A-B of the target's family", part)
		}
		for x := a; ; x = x.Next() {
			if seen[x] {
				return nil, fmt.Errorf("%s given twice", x)
			}
			seen[x] = true
			if out = append(out, x); len(out) > 1024 {
				return nil, errors.New("more than 1024 sources")
			}
			if x == b {
				break
			}
		}
	}
	return out, nil
}

// runClient binds every source's UDP socket, runs all sources until
// cfg.Duration has passed or ctx ends, and returns the summary.
func runClient(ctx context.Context, cfg *config) (*report, error) {
	start := time.Now()
	srcs := make([]*source, 0, len(cfg.Sources))
	for _, a := range cfg.Sources {
		conn, err := net.DialUDP("udp", net.UDPAddrFromAddrPort(netip.AddrPortFrom(a, 0)), net.UDPAddrFromAddrPort(cfg.Target))
		if err != nil {
			for _, s := range srcs {
				s.conn.Close()
			}
			return nil, fmt.Errorf("source %s: %v", a, err)
		}
		srcs = append(srcs, &source{addr: a, cfg: cfg, start: start, conn: conn, dups: map[string]int{}})
	}
	var wg sync.WaitGroup
	for _, s := range srcs {
		wg.Add(1)
		go func() { defer wg.Done(); s.run(ctx) }()
	}
	wg.Wait()

	rep := &report{Target: cfg.Target.String(), EveryMS: cfg.Every.Milliseconds(), Sources: len(srcs), BySource: map[string]*sourceReport{}}
	for _, s := range srcs {
		rep.BySource[s.addr.String()] = s.summarize(rep)
		rep.DurationMS = max(rep.DurationMS, ms(s.end))
	}
	return rep, nil
}

// run sends this source's requests every cfg.Every, then waits for the
// last answers.
func (s *source) run(ctx context.Context) {
	var wg sync.WaitGroup
	if s.cfg.Long {
		wg.Add(1)
		go func() { defer wg.Done(); s.runLong(ctx) }()
	}
	recvDone := make(chan struct{})
	go func() {
		defer close(recvDone)
		buf := make([]byte, 2048)
		for {
			n, err := s.conn.Read(buf)
			at := s.since()
			if err != nil {
				if errors.Is(err, os.ErrDeadlineExceeded) || errors.Is(err, net.ErrClosed) {
					return
				}
				continue // ICMP errors (port unreachable while nobody serves)
			}
			s.udpReply(buf[:n], at)
		}
	}()
	tick := time.NewTicker(s.cfg.Every)
	for seq := 0; ; seq++ {
		at := s.since()
		if at >= s.cfg.Duration || ctx.Err() != nil {
			s.mu.Lock()
			s.end = at
			s.mu.Unlock()
			break
		}
		s.mu.Lock()
		s.udp = append(s.udp, request{sent: at})
		s.tcp = append(s.tcp, request{sent: at})
		s.mu.Unlock()
		_, _ = s.conn.Write(strconv.AppendInt(nil, int64(seq), 10))
		wg.Add(1)
		go func() { defer wg.Done(); s.tcpFlow(ctx, seq) }()
		select {
		case <-ctx.Done():
		case <-tick.C:
		}
	}
	tick.Stop()
	// The last UDP answers may take cfg.Timeout; after a signal, 200 ms at most.
	grace, stop := s.cfg.Timeout, ctx.Done()
	if ctx.Err() != nil {
		grace, stop = min(grace, 200*time.Millisecond), nil
	}
	timer := time.NewTimer(grace)
	select {
	case <-timer.C:
	case <-stop:
	}
	timer.Stop()
	wg.Wait()
	_ = s.conn.SetReadDeadline(time.Unix(1, 0))
	<-recvDone
	s.conn.Close()
}

// udpReply records the reply "NAME SEQ".
func (s *source) udpReply(msg []byte, at time.Duration) {
	name, seqText, ok := strings.Cut(string(msg), " ")
	seq, err := strconv.Atoi(seqText)
	if !ok || name == "" || err != nil {
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if seq < 0 || seq >= len(s.udp) {
		return
	}
	if r := &s.udp[seq]; r.responder == "" {
		r.responder, r.reply = name, at
	} else {
		s.dups[name]++
	}
}

func (s *source) dial(ctx context.Context) (net.Conn, error) {
	d := net.Dialer{LocalAddr: net.TCPAddrFromAddrPort(netip.AddrPortFrom(s.addr, 0)), Timeout: s.cfg.connTimeout()}
	return d.DialContext(ctx, "tcp", s.cfg.Target.String())
}

// tcpFlow is request seq's new connection: connect, one line, its answer, close.
func (s *source) tcpFlow(ctx context.Context, seq int) {
	name, err := func() (string, error) {
		c, err := s.dial(ctx)
		if err != nil {
			return "", err
		}
		defer c.Close()
		defer context.AfterFunc(ctx, func() { _ = c.SetDeadline(time.Unix(1, 0)) })()
		return ask(c, bufio.NewReader(c), seq, s.cfg.connTimeout())
	}()
	s.mu.Lock()
	defer s.mu.Unlock()
	r := &s.tcp[seq]
	r.responder, r.done = name, err == nil || ctx.Err() == nil
	if err != nil {
		r.fail = kind(err)
	}
}

// runLong keeps one connection for the whole run, one line every cfg.Every.
func (s *source) runLong(ctx context.Context) {
	broken := func(err error) {
		if ctx.Err() != nil {
			return // cut short by a signal: not a broken connection
		}
		s.mu.Lock()
		s.longErr, s.longErrText, s.longBrokenAt = kind(err), err.Error(), s.since()
		s.mu.Unlock()
	}
	c, err := s.dial(ctx)
	if err != nil {
		broken(err)
		return
	}
	defer c.Close()
	defer context.AfterFunc(ctx, func() { _ = c.SetDeadline(time.Unix(1, 0)) })()
	s.mu.Lock()
	s.longOpened = true
	s.mu.Unlock()
	r := bufio.NewReader(c)
	tick := time.NewTicker(s.cfg.Every)
	defer tick.Stop()
	for seq := 0; ; seq++ {
		at := s.since()
		if at >= s.cfg.Duration || ctx.Err() != nil {
			return
		}
		name, err := ask(c, r, seq, s.cfg.connTimeout())
		if err != nil {
			broken(err)
			return
		}
		s.mu.Lock()
		s.long = append(s.long, request{sent: at, responder: name})
		s.mu.Unlock()
		select {
		case <-ctx.Done():
		case <-tick.C:
		}
	}
}

// ask sends "SEQ\n" on c and reads the answer "NAME SEQ\n" within timeout.
func ask(c net.Conn, r *bufio.Reader, seq int, timeout time.Duration) (string, error) {
	_ = c.SetDeadline(time.Now().Add(timeout))
	if _, err := fmt.Fprintf(c, "%d\n", seq); err != nil {
		return "", err
	}
	line, err := r.ReadString('\n')
	if err != nil {
		return "", err
	}
	name, got, _ := strings.Cut(strings.TrimSuffix(line, "\n"), " ")
	if name == "" || got != strconv.Itoa(seq) {
		return "", fmt.Errorf("unexpected answer %q to %d", line, seq)
	}
	return name, nil
}

// kind names how a connection attempt or exchange failed.
func kind(err error) string {
	for _, k := range []struct {
		err  error
		name string
	}{{syscall.ECONNREFUSED, "refused"}, {syscall.ECONNRESET, "reset"}, {syscall.EPIPE, "reset"},
		{syscall.ECONNABORTED, "aborted"}, {syscall.EHOSTUNREACH, "unreachable"}, {syscall.ENETUNREACH, "unreachable"},
		{io.EOF, "eof"}, {io.ErrUnexpectedEOF, "eof"}, {os.ErrDeadlineExceeded, "timeout"}} {
		if errors.Is(err, k.err) {
			return k.name
		}
	}
	if ne, ok := errors.AsType[net.Error](err); ok && ne.Timeout() {
		return "timeout"
	}
	return "other"
}

// summarize adds this source's counts to rep and returns its own report.
func (s *source) summarize(rep *report) *sourceReport {
	s.mu.Lock()
	defer s.mu.Unlock()
	sr := &sourceReport{UDPResponders: map[string]int{}, UDPDupResponders: s.dups, TCPResponders: map[string]int{},
		TCPFailures: map[string]int{}, LongResponders: map[string]int{}, LongOpened: s.longOpened,
		LongError: s.longErr, LongErrorText: s.longErrText, LongBrokenAtMS: ms(s.longBrokenAt)}
	var udp, tcp, long []time.Duration // the send times of answered requests
	for _, r := range s.udp {
		if r.responder != "" && r.reply-r.sent <= s.cfg.Timeout {
			sr.UDPResponders[r.responder]++
			udp = append(udp, r.sent)
		}
	}
	for _, n := range s.dups {
		sr.UDPDuplicates += n
	}
	for _, r := range s.tcp {
		if r.done && r.fail != "" {
			sr.TCPFailures[r.fail]++
			sr.TCPFailed++
		} else if r.done {
			sr.TCPResponders[r.responder]++
			tcp = append(tcp, r.sent)
		}
	}
	for i, r := range s.long {
		sr.LongResponders[r.responder]++
		if i > 0 && r.responder != s.long[i-1].responder {
			sr.LongChanges++
		}
		long = append(long, r.sent)
	}
	sr.UDPMissing = len(s.udp) - len(udp)
	sr.UDPLongestGapMS, sr.UDPLongestGapStartMS = longestGap(udp, s.end)
	sr.TCPLongestGapMS, sr.TCPLongestGapStartMS = longestGap(tcp, s.end)
	if s.cfg.Long {
		sr.LongLongestGapMS, _ = longestGap(long, s.end)
	}
	rep.UDP.Sent += len(s.udp)
	rep.UDP.Answered += len(udp)
	rep.UDP.Missing += sr.UDPMissing
	rep.UDP.Duplicates += sr.UDPDuplicates
	rep.TCP.Tried += len(tcp) + sr.TCPFailed
	rep.TCP.OK += len(tcp)
	rep.TCP.Failed += sr.TCPFailed
	if s.longOpened {
		rep.Long.Opened++
		if s.longErr != "" {
			rep.Long.Broken++
		}
	}
	return sr
}

// longestGap is the longest time between consecutive answered send times,
// the start (0) and end counting as answered, and where it began (ms).
func longestGap(sends []time.Duration, end time.Duration) (gapMS, startMS int64) {
	sort.Slice(sends, func(i, j int) bool { return sends[i] < sends[j] })
	var prev, gap, from time.Duration
	for _, at := range append(sends, end) {
		if at-prev > gap {
			gap, from = at-prev, prev
		}
		prev = at
	}
	return ms(gap), ms(from)
}

func ms(d time.Duration) int64 { return d.Round(time.Millisecond).Milliseconds() }

func (r *report) text() string {
	var b strings.Builder
	fmt.Fprintf(&b, "flowcheck: %d sources to %s over %d ms\n  udp:  %d sent, %d answered, %d missing, %d duplicates\n",
		r.Sources, r.Target, r.DurationMS, r.UDP.Sent, r.UDP.Answered, r.UDP.Missing, r.UDP.Duplicates)
	fmt.Fprintf(&b, "  tcp:  %d tried, %d ok, %d failed\n  long: %d opened, %d broken\n",
		r.TCP.Tried, r.TCP.OK, r.TCP.Failed, r.Long.Opened, r.Long.Broken)
	for _, a := range slices.Sorted(maps.Keys(r.BySource)) {
		s := r.BySource[a]
		fmt.Fprintf(&b, "  %-15s udp %v miss %d dup %d gap %d ms | tcp %v fail %d gap %d ms | long %v %s\n", a,
			s.UDPResponders, s.UDPMissing, s.UDPDuplicates, s.UDPLongestGapMS,
			s.TCPResponders, s.TCPFailed, s.TCPLongestGapMS, s.LongResponders, s.LongError)
	}
	return b.String()
}
