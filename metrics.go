package main

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"net/textproto"
	"slices"
	"strings"
	"sync"
	"time"
)

// metrics serves Prometheus' text exposition format (version 0.0.4) from
// the standard library alone: a handful of per-VIP counters does not earn
// a client library in a static binary. It is an observer.
type metrics struct {
	version string
	log     *slog.Logger

	mu   sync.Mutex
	vips map[netip.Addr]*vipMetrics
}

type vipMetrics struct {
	iface                                            string
	state                                            vipState
	stateKnown                                       bool
	transitions, probes, misses, conflicts, announce uint64
}

// metricStates are the values of floatip_state's state label, in output order.
var metricStates = []vipState{stateStandby, stateFencing, stateClaiming, stateActive, stateYielding, stateAdopting}

// newMetrics makes the registry; version is floatip_build_info's label.
func newMetrics(version string, log *slog.Logger) *metrics {
	return &metrics{version: version, log: log, vips: map[netip.Addr]*vipMetrics{}}
}

func (m *metrics) entry(vip netip.Addr) *vipMetrics {
	e := m.vips[vip]
	if e == nil {
		e = &vipMetrics{}
		m.vips[vip] = e
	}
	return e
}

// stateChanged implements observer. From == To reports the state without
// counting a transition (the initial state).
func (m *metrics) stateChanged(c stateChange) {
	m.mu.Lock()
	defer m.mu.Unlock()
	e := m.entry(c.VIP)
	e.iface = c.Interface
	if c.From != c.To {
		e.transitions++
	}
	e.state, e.stateKnown = c.To, true
}

// counted implements observer; unknown kinds are ignored.
func (m *metrics) counted(vip netip.Addr, what string) {
	m.mu.Lock()
	defer m.mu.Unlock()
	e := m.entry(vip)
	switch what {
	case "probe":
		e.probes++
	case "miss":
		e.misses++
	case "conflict":
		e.conflicts++
	case "announce":
		e.announce++
	}
}

// counterFamilies are the per-VIP counters, in output order.
var counterFamilies = []struct {
	name, help string
	value      func(*vipMetrics) uint64
}{
	{"floatip_transitions_total", "State changes of the VIP's state machine.", func(e *vipMetrics) uint64 { return e.transitions }},
	{"floatip_probes_total", "ARP probes sent for the VIP.", func(e *vipMetrics) uint64 { return e.probes }},
	{"floatip_misses_total", "Probes of the VIP that went unanswered.", func(e *vipMetrics) uint64 { return e.misses }},
	{"floatip_conflicts_total", "Other holders of the VIP seen while this node held it.", func(e *vipMetrics) uint64 { return e.conflicts }},
	{"floatip_announcements_total", "Unsolicited ARP announcements sent for the VIP.", func(e *vipMetrics) uint64 { return e.announce }},
}

// write renders every metric; VIPs in address order, so the output is
// stable for people and tests.
func (m *metrics) write(w io.Writer) error {
	var b bytes.Buffer
	m.mu.Lock()
	vips := make([]netip.Addr, 0, len(m.vips))
	for vip := range m.vips {
		vips = append(vips, vip)
	}
	slices.SortFunc(vips, netip.Addr.Compare)

	metricFamily(&b, "floatip_build_info", "gauge", "The floatip version as a label; the value is always 1.")
	fmt.Fprintf(&b, "floatip_build_info{version=\"%s\"} 1\n", escapeLabel(m.version))

	metricFamily(&b, "floatip_state", "gauge", "1 for the VIP's current state, 0 for the other states.")
	for _, vip := range vips {
		e := m.vips[vip]
		if !e.stateKnown {
			continue
		}
		for _, s := range metricStates {
			v := 0
			if s == e.state {
				v = 1
			}
			fmt.Fprintf(&b, "floatip_state{%s,state=\"%s\"} %d\n", vipLabels(vip, e), s, v)
		}
	}
	for _, f := range counterFamilies {
		metricFamily(&b, f.name, "counter", f.help)
		for _, vip := range vips {
			fmt.Fprintf(&b, "%s{%s} %d\n", f.name, vipLabels(vip, m.vips[vip]), f.value(m.vips[vip]))
		}
	}
	m.mu.Unlock()
	// Written after the lock: a slow scraper must not hold the machines.
	_, err := w.Write(b.Bytes())
	return err
}

func metricFamily(b *bytes.Buffer, name, typ, help string) {
	fmt.Fprintf(b, "# HELP %s %s\n# TYPE %s %s\n", name, escapeHelp(help), name, typ)
}

func vipLabels(vip netip.Addr, e *vipMetrics) string {
	return fmt.Sprintf("vip=\"%s\",interface=\"%s\"", escapeLabel(vip.String()), escapeLabel(e.iface))
}

// escapeLabel escapes a label value as the exposition format requires.
func escapeLabel(s string) string {
	return strings.NewReplacer(`\`, `\\`, `"`, `\"`, "\n", `\n`).Replace(s)
}

// escapeHelp escapes HELP text, where quotes stay as they are.
func escapeHelp(s string) string {
	return strings.NewReplacer(`\`, `\\`, "\n", `\n`).Replace(s)
}

// scrapeDeadline bounds one scrape, so a stalled client never pins a
// connection (or delays the exit) for long.
const scrapeDeadline = 5 * time.Second

// serve answers scrapes on ln until ctx ends. It is a deliberately small
// HTTP/1.x responder: one request per connection, GET or HEAD of /metrics,
// parsed by net/textproto. net/http would add 1.8 MB to a 4.9 MB static
// binary for one fixed page, and the size target is 5 MB.
func (m *metrics) serve(ctx context.Context, ln net.Listener) error {
	var scrapes sync.WaitGroup
	defer scrapes.Wait()
	stop := context.AfterFunc(ctx, func() { _ = ln.Close() })
	defer stop()
	for {
		conn, err := ln.Accept()
		if ctx.Err() != nil {
			if err == nil {
				_ = conn.Close()
			}
			return nil
		}
		if err != nil {
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				continue
			}
			return fmt.Errorf("metrics: accept on %s: %w", ln.Addr(), err)
		}
		scrapes.Go(func() { m.answer(conn) })
	}
}

// answer reads one request from conn and writes one response.
func (m *metrics) answer(conn net.Conn) {
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(scrapeDeadline))
	r := textproto.NewReader(bufio.NewReader(io.LimitReader(conn, 16<<10)))
	line, err := r.ReadLine()
	if err != nil {
		return
	}
	if _, err := r.ReadMIMEHeader(); err != nil { // read, and not needed
		return
	}
	method, rest, ok := strings.Cut(line, " ")
	target, proto, ok2 := strings.Cut(rest, " ")
	path, _, _ := strings.Cut(target, "?")
	var body bytes.Buffer
	switch {
	case !ok || !ok2 || !strings.HasPrefix(proto, "HTTP/1."):
		writeResponse(conn, "400 Bad Request", "", []byte("bad request\n"), false)
	case path != "/metrics":
		writeResponse(conn, "404 Not Found", "", []byte("not found: try /metrics\n"), false)
	case method != "GET" && method != "HEAD":
		writeResponse(conn, "405 Method Not Allowed", "Allow: GET, HEAD\r\n", []byte("method not allowed\n"), false)
	default:
		_ = m.write(&body)
		writeResponse(conn, "200 OK", "", body.Bytes(), method == "HEAD")
	}
}

func writeResponse(w io.Writer, status, extraHeaders string, body []byte, headOnly bool) {
	contentType := "text/plain; charset=utf-8"
	if strings.HasPrefix(status, "200") {
		contentType = "text/plain; version=0.0.4; charset=utf-8"
	}
	header := fmt.Sprintf("HTTP/1.1 %s\r\nContent-Type: %s\r\nContent-Length: %d\r\nConnection: close\r\n%s\r\n",
		status, contentType, len(body), extraHeaders)
	if headOnly {
		body = nil
	}
	_, _ = w.Write(append([]byte(header), body...))
}
