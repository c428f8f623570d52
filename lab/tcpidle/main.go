// Command tcpidle shows what a TCP client idle on a floating IP sees when
// the IP moves: an idle database connection, a long poll, an SSH session.
//
//	tcpidle serve  -listen 192.0.2.50:7100 -name h1
//	tcpidle client -target 192.0.2.50:7100 [-idle 10s] [-send-after-idle] [-reconnect 10s] [-dial-timeout 3s]
//
// The server answers each line with its name, a space and the line. It binds
// with IP_FREEBIND, so it can listen on the floating IP before this host
// holds it.
//
// The client connects, sends one request to learn who answers, then blocks
// in read on the idle connection (at most -idle). With -send-after-idle, a
// read that timed out is followed by one more request on the same
// connection: what a client sees when it next talks to a moved IP. Then it
// reconnects until a request is answered (at most -reconnect; each attempt
// at most -dial-timeout, then a new one; 3 s lets the kernel retransmit a
// lost SYN once, after 1 s, as a plain client does). It prints one line per
// event, times in Unix milliseconds, so that a test or a benchmark can set
// them against the moment it moved the IP:
//
//	connected responder=h1 at_ms=...
//	read_ended kind=reset|aborted|eof|timeout|other at_ms=... err="..."
//	request_ended kind=... sent_ms=... at_ms=... err="..."   (-send-after-idle)
//	answered responder=h1 sent_ms=... at_ms=...              (-send-after-idle)
//	reconnected responder=h2 at_ms=... attempts=N
//	reconnect_failed at_ms=... attempts=N err="..."
//
// The client only talks to loopback and the documentation ranges
// 192.0.2.0/24, 198.51.100.0/24, 203.0.113.0/24 and 2001:db8::/32.
package main

import (
	"bufio"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"os/signal"
	"strings"
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
	case "-h", "-help", "--help", "help":
		usage(os.Stdout)
	default:
		usage(os.Stderr)
		os.Exit(2)
	}
}

func usage(w io.Writer) {
	fmt.Fprintln(w, "usage: tcpidle serve -listen ADDR:PORT [-name NAME]")
	fmt.Fprintln(w, "       tcpidle client -target ADDR:PORT [-idle 10s] [-send-after-idle] [-reconnect 10s] [-dial-timeout 3s]")
}

// ---------------------------------------------------------------- server

func serve(args []string) int {
	fs := flag.NewFlagSet("serve", flag.ContinueOnError)
	listen := fs.String("listen", "", "address:port to listen on (required)")
	host, _ := os.Hostname()
	name := fs.String("name", host, "name put in front of every answer")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	if *listen == "" || *name == "" || strings.ContainsAny(*name, " \n") {
		fmt.Fprintln(os.Stderr, "tcpidle serve: -listen is required and -name must be one word")
		return 2
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	lc := net.ListenConfig{Control: labnet.Freebind}
	ln, err := lc.Listen(ctx, tcpNetwork(*listen), *listen)
	if err != nil {
		fmt.Fprintf(os.Stderr, "tcpidle serve: %v\n", err)
		return 1
	}
	fmt.Fprintf(os.Stderr, "tcpidle: %s serving on %s\n", *name, ln.Addr())
	go func() {
		<-ctx.Done()
		ln.Close()
	}()
	for {
		c, err := ln.Accept()
		if err != nil {
			if ctx.Err() != nil {
				return 0
			}
			fmt.Fprintf(os.Stderr, "tcpidle: accept: %v\n", err)
			time.Sleep(10 * time.Millisecond)
			continue
		}
		go answer(c, *name)
	}
}

// answer echoes every line of c with the server's name in front, and says
// how the connection ended (an ECONNABORTED here is floatip's reset).
func answer(c net.Conn, name string) {
	defer c.Close()
	r := bufio.NewReader(c)
	for {
		line, err := r.ReadString('\n')
		if err != nil {
			fmt.Fprintf(os.Stderr, "tcpidle: connection from %s ended: %v\n", c.RemoteAddr(), err)
			return
		}
		if _, err := io.WriteString(c, name+" "+line); err != nil {
			fmt.Fprintf(os.Stderr, "tcpidle: connection from %s ended: %v\n", c.RemoteAddr(), err)
			return
		}
	}
}

// ---------------------------------------------------------------- client

func client(args []string) int {
	fs := flag.NewFlagSet("client", flag.ContinueOnError)
	target := fs.String("target", "", "address:port of the server (required)")
	idle := fs.Duration("idle", 10*time.Second, "longest time to block in read on the idle connection")
	reconnect := fs.Duration("reconnect", 10*time.Second, "longest time to try reconnecting after the read ended")
	sendAfterIdle := fs.Bool("send-after-idle", false, "after a read that timed out, send one more request on the same connection")
	dialTimeout := fs.Duration("dial-timeout", 3*time.Second, "longest time of one connection attempt and its request")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	ap, err := netip.ParseAddrPort(*target)
	if err != nil || !allowed(ap.Addr()) {
		fmt.Fprintln(os.Stderr, "tcpidle client: -target must be ADDR:PORT in loopback or a documentation range")
		return 2
	}
	if *idle <= 0 || *reconnect <= 0 || *dialTimeout <= 0 {
		fmt.Fprintln(os.Stderr, "tcpidle client: durations must be positive")
		return 2
	}

	conn, responder, err := request(*target, *dialTimeout)
	if err != nil {
		fmt.Fprintf(os.Stderr, "tcpidle client: first request: %v\n", err)
		return 1
	}
	fmt.Printf("connected responder=%s local=%s at_ms=%d\n", responder, conn.LocalAddr(), nowMS())

	// Idle: blocked in read, as a client waiting for its server.
	_ = conn.SetReadDeadline(time.Now().Add(*idle))
	_, err = conn.Read(make([]byte, 1))
	at := nowMS()
	if err == nil {
		err = errors.New("unexpected data from the server")
	}
	fmt.Printf("read_ended kind=%s at_ms=%d err=%q\n", kind(err), at, err.Error())
	if *sendAfterIdle && kind(err) == "timeout" {
		sendAgain(conn, *dialTimeout)
	}
	conn.Close()

	deadline := time.Now().Add(*reconnect)
	for attempts := 1; ; attempts++ {
		c, responder, err := request(*target, *dialTimeout)
		if err == nil {
			fmt.Printf("reconnected responder=%s at_ms=%d attempts=%d\n", responder, nowMS(), attempts)
			c.Close()
			return 0
		}
		if time.Now().After(deadline) {
			fmt.Printf("reconnect_failed at_ms=%d attempts=%d err=%q\n", nowMS(), attempts, err.Error())
			return 1
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// sendAgain sends one request on the idle connection and reports how it
// ended. A lost segment is retransmitted by the kernel (200 ms, then
// doubling) until an answer or an RST comes, or timeout.
func sendAgain(conn net.Conn, timeout time.Duration) {
	sent := nowMS()
	_ = conn.SetDeadline(time.Now().Add(timeout))
	_, err := io.WriteString(conn, "hello again\n")
	var line string
	if err == nil {
		line, err = bufio.NewReader(conn).ReadString('\n')
	}
	if err != nil {
		fmt.Printf("request_ended kind=%s sent_ms=%d at_ms=%d err=%q\n", kind(err), sent, nowMS(), err.Error())
		return
	}
	name, _, _ := strings.Cut(strings.TrimSpace(line), " ")
	fmt.Printf("answered responder=%s sent_ms=%d at_ms=%d\n", name, sent, nowMS())
}

// request connects, sends one line and returns the connection and the name
// of the server that answered.
func request(target string, timeout time.Duration) (net.Conn, string, error) {
	c, err := net.DialTimeout(tcpNetwork(target), target, timeout)
	if err != nil {
		return nil, "", err
	}
	_ = c.SetDeadline(time.Now().Add(timeout))
	if _, err := io.WriteString(c, "hello\n"); err != nil {
		c.Close()
		return nil, "", err
	}
	line, err := bufio.NewReader(c).ReadString('\n')
	if err != nil {
		c.Close()
		return nil, "", err
	}
	_ = c.SetDeadline(time.Time{})
	name, _, _ := strings.Cut(strings.TrimSpace(line), " ")
	return c, name, nil
}

// kind names how a read on the idle connection ended.
func kind(err error) string {
	var ne net.Error
	switch {
	case errors.Is(err, syscall.ECONNRESET):
		return "reset"
	case errors.Is(err, syscall.ECONNABORTED):
		return "aborted"
	case errors.Is(err, io.EOF):
		return "eof"
	case errors.As(err, &ne) && ne.Timeout():
		return "timeout"
	}
	return "other"
}

// tcpNetwork is tcp6 for an [IPv6]:port, else tcp4 (IP_FREEBIND works on
// both).
func tcpNetwork(addr string) string {
	if ap, err := netip.ParseAddrPort(addr); err == nil && ap.Addr().Unmap().Is6() {
		return "tcp6"
	}
	return "tcp4"
}

func nowMS() int64 { return time.Now().UnixMilli() }

func allowed(a netip.Addr) bool {
	if a.IsLoopback() {
		return true
	}
	for _, p := range []string{"192.0.2.0/24", "198.51.100.0/24", "203.0.113.0/24", "2001:db8::/32"} {
		if netip.MustParsePrefix(p).Contains(a) {
			return true
		}
	}
	return false
}
