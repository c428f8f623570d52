package status

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"floatip/internal/event"
)

// Metrics serves Prometheus' text exposition format (version 0.0.4) from
// the standard library alone (net/http): a handful of per-VIP counters does
// not earn a client library in a static binary. It is an observer.
type Metrics struct {
	version string
	log     *slog.Logger

	mu     sync.Mutex
	vips   map[netip.Addr]*vipMetrics
	shared func() (SharedStats, error) // --share; nil otherwise (sharedmetrics.go)
}

type vipMetrics struct {
	iface                                            string
	state                                            event.State
	stateKnown                                       bool
	transitions, probes, misses, conflicts, announce uint64
	holder                                           string // another node seen holding it
	assignee                                         string // --spread: who should hold it
	pooled, assignedHere                             bool
}

// metricStates are the values of floatip_state's state label, in output order.
var metricStates = []event.State{event.Standby, event.Fencing, event.Claiming, event.Active, event.Yielding, event.Adopting}

// NewMetrics makes the registry; version is floatip_build_info's label.
func NewMetrics(version string, log *slog.Logger) *Metrics {
	return &Metrics{version: version, log: log, vips: map[netip.Addr]*vipMetrics{}}
}

func (m *Metrics) entry(vip netip.Addr) *vipMetrics {
	e := m.vips[vip]
	if e == nil {
		e = &vipMetrics{}
		m.vips[vip] = e
	}
	return e
}

// StateChanged implements observer. From == To reports the state without
// counting a transition (the initial state).
func (m *Metrics) StateChanged(c event.Change) {
	m.mu.Lock()
	defer m.mu.Unlock()
	e := m.entry(c.VIP)
	e.iface = c.Interface
	if c.From != c.To {
		e.transitions++
	}
	e.state, e.stateKnown = c.To, true
	e.holder = ""
	if c.Holder != nil {
		e.holder = c.Holder.String()
	}
}

// Counted implements observer; unknown kinds are ignored.
func (m *Metrics) Counted(vip netip.Addr, what string) {
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
func (m *Metrics) write(w io.Writer) error {
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
	m.writePool(&b, vips)
	shared := m.shared
	m.mu.Unlock()
	// The kernel's counters are read without the lock too.
	m.writeShared(&b, shared)
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

// The endpoint's timeouts: a stalled or slow client never pins a
// connection (or delays the exit) for long. A scrape is one small page.
const (
	scrapeHeaderTimeout = 5 * time.Second  // request line and headers
	scrapeReadTimeout   = 10 * time.Second // the whole request
	scrapeWriteTimeout  = 10 * time.Second // from the headers' end to the response's
	scrapeIdleTimeout   = 60 * time.Second // a keep-alive connection between scrapes
	shutdownTimeout     = 5 * time.Second  // scrapes in flight when the daemon stops
)

// Handler routes /metrics; net/http answers HEAD (a GET pattern matches it),
// 405 with Allow for other methods, 404 elsewhere, and keep-alive.
func (m *Metrics) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /metrics", func(w http.ResponseWriter, _ *http.Request) {
		var body bytes.Buffer
		_ = m.write(&body) // a bytes.Buffer does not fail
		w.Header().Set("Content-Type", "text/plain; version=0.0.4; charset=utf-8")
		w.Header().Set("Content-Length", strconv.Itoa(body.Len()))
		_, _ = w.Write(body.Bytes()) // dropped by net/http for HEAD
	})
	return mux
}

// server is the endpoint's http.Server, every timeout set.
func (m *Metrics) server() *http.Server { return NewHTTPServer(m.Handler(), m.log) }

// Serve answers scrapes on ln until ctx ends (see ServeHTTP).
func (m *Metrics) Serve(ctx context.Context, ln net.Listener) error {
	return ServeHTTP(ctx, m.server(), ln, "metrics")
}

// NewHTTPServer is an http.Server for one of the daemon's endpoints (the
// metrics, the control socket), every timeout set.
func NewHTTPServer(h http.Handler, log *slog.Logger) *http.Server {
	return &http.Server{
		Handler:           h,
		ReadHeaderTimeout: scrapeHeaderTimeout,
		ReadTimeout:       scrapeReadTimeout,
		WriteTimeout:      scrapeWriteTimeout,
		IdleTimeout:       scrapeIdleTimeout,
		MaxHeaderBytes:    16 << 10,
		// net/http's own complaints (a TLS handshake on the port, a bad
		// request) are debug noise, not the operator's business.
		ErrorLog: slog.NewLogLogger(log.Handler(), slog.LevelDebug),
	}
}

// ServeHTTP answers requests on ln until ctx ends, then shuts the server
// down (requests in flight get shutdownTimeout to finish) and returns nil.
func ServeHTTP(ctx context.Context, srv *http.Server, ln net.Listener, what string) error {
	served := make(chan error, 1)
	go func() { served <- srv.Serve(ln) }()
	select {
	case err := <-served:
		return fmt.Errorf("%s: serve on %s: %w", what, ln.Addr(), err)
	case <-ctx.Done():
	}
	shutdownCtx, cancel := context.WithTimeout(context.Background(), shutdownTimeout)
	defer cancel()
	if err := srv.Shutdown(shutdownCtx); err != nil {
		_ = srv.Close() // a request that would not finish
	}
	if err := <-served; !errors.Is(err, http.ErrServerClosed) {
		return fmt.Errorf("%s: serve on %s: %w", what, ln.Addr(), err)
	}
	return nil
}
