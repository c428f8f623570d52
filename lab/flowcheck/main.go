// Command flowcheck shows, per client source address, which node answered
// each flow to a shared address (one address on several nodes at once, each
// answering only the flows whose source-hash bucket it owns).
//
//	flowcheck serve  -listen 192.0.2.80:7007 -name h1
//	flowcheck client -target 192.0.2.80:7007 -sources 192.0.2.130-192.0.2.193 [-every 100ms] [-duration 10s] [-timeout 300ms] [-long] [-udp-only] [-json]
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
	case "gaps":
		code = gaps(os.Args[2:], os.Stdin, os.Stdout)
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
	fmt.Fprintln(w, "       flowcheck client -target ADDR:PORT -sources A-B[,C...] [-every 100ms] [-duration 10s] [-timeout 300ms] [-long] [-udp-only] [-json]")
	fmt.Fprintln(w, "       flowcheck gaps -of NAME < REPORT.json")
}

// ---------------------------------------------------------------- server

// ---------------------------------------------------------------- client

type config struct {
	Target                   netip.AddrPort
	Sources                  []netip.Addr
	Every, Duration, Timeout time.Duration
	Long                     bool
	UDPOnly                  bool // no new TCP connection per tick: fine-grained gaps for the bench
}

// connTimeout bounds a TCP connect and the wait for a TCP answer.
func (c *config) connTimeout() time.Duration { return max(c.Timeout, time.Second) }

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
	udpOnly := fs.Bool("udp-only", false, "send UDP only, no new TCP connection per tick (for short -every)")
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
	if !labnet.AllowedTarget(ap.Addr()) {
		fmt.Fprintf(os.Stderr, "flowcheck client: refusing %s: only loopback and the documentation ranges are allowed\n", ap.Addr())
		return 2
	}
	srcs, err := parseSources(*sources, ap.Addr().Unmap().Is4())
	if err != nil {
		fmt.Fprintf(os.Stderr, "flowcheck client: -sources: %v\n", err)
		return 2
	}
	cfg := &config{Target: netip.AddrPortFrom(ap.Addr().Unmap(), ap.Port()), Sources: srcs,
		Every: *every, Duration: *duration, Timeout: *timeout, Long: *long, UDPOnly: *udpOnly}
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
		if !s.cfg.UDPOnly {
			s.tcp = append(s.tcp, request{sent: at})
		}
		s.mu.Unlock()
		_, _ = s.conn.Write(strconv.AppendInt(nil, int64(seq), 10))
		if !s.cfg.UDPOnly {
			wg.Add(1)
			go func() { defer wg.Done(); s.tcpFlow(ctx, seq) }()
		}
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
