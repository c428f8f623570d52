package status

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"net"
	"net/http"
	"net/http/httptest"
	"net/http/httptrace"
	"net/netip"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"floatip/internal/event"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
)

func TestMetricsExactOutput(t *testing.T) {
	m := NewMetrics("1.2.3", slog.New(slog.DiscardHandler))
	a, b := netip.MustParseAddr("192.0.2.50"), netip.MustParseAddr("192.0.2.9")
	// Initial state reports (From == To) count no transition.
	m.StateChanged(event.Change{VIP: a, Interface: "eth0", From: event.Standby, To: event.Standby})
	m.StateChanged(event.Change{VIP: b, Interface: "eth0", From: event.Active, To: event.Active})
	for range 3 {
		m.Counted(a, "probe")
	}
	m.Counted(a, "miss")
	m.Counted(a, "miss")
	m.StateChanged(event.Change{VIP: a, Interface: "eth0", From: event.Standby, To: event.Claiming})
	m.Counted(a, "probe")
	m.StateChanged(event.Change{VIP: a, Interface: "eth0", From: event.Claiming, To: event.Active})
	m.Counted(a, "announce")
	m.Counted(b, "conflict")
	m.Counted(b, "something new") // ignored

	var out bytes.Buffer
	if err := m.write(&out); err != nil {
		t.Fatal(err)
	}
	want := `# HELP floatip_build_info The floatip version as a label; the value is always 1.
# TYPE floatip_build_info gauge
floatip_build_info{version="1.2.3"} 1
# HELP floatip_state 1 for the VIP's current state, 0 for the other states.
# TYPE floatip_state gauge
floatip_state{vip="192.0.2.9",interface="eth0",state="standby"} 0
floatip_state{vip="192.0.2.9",interface="eth0",state="fencing"} 0
floatip_state{vip="192.0.2.9",interface="eth0",state="claiming"} 0
floatip_state{vip="192.0.2.9",interface="eth0",state="active"} 1
floatip_state{vip="192.0.2.9",interface="eth0",state="yielding"} 0
floatip_state{vip="192.0.2.9",interface="eth0",state="adopting"} 0
floatip_state{vip="192.0.2.50",interface="eth0",state="standby"} 0
floatip_state{vip="192.0.2.50",interface="eth0",state="fencing"} 0
floatip_state{vip="192.0.2.50",interface="eth0",state="claiming"} 0
floatip_state{vip="192.0.2.50",interface="eth0",state="active"} 1
floatip_state{vip="192.0.2.50",interface="eth0",state="yielding"} 0
floatip_state{vip="192.0.2.50",interface="eth0",state="adopting"} 0
# HELP floatip_transitions_total State changes of the VIP's state machine.
# TYPE floatip_transitions_total counter
floatip_transitions_total{vip="192.0.2.9",interface="eth0"} 0
floatip_transitions_total{vip="192.0.2.50",interface="eth0"} 2
# HELP floatip_probes_total ARP probes sent for the VIP.
# TYPE floatip_probes_total counter
floatip_probes_total{vip="192.0.2.9",interface="eth0"} 0
floatip_probes_total{vip="192.0.2.50",interface="eth0"} 4
# HELP floatip_misses_total Probes of the VIP that went unanswered.
# TYPE floatip_misses_total counter
floatip_misses_total{vip="192.0.2.9",interface="eth0"} 0
floatip_misses_total{vip="192.0.2.50",interface="eth0"} 2
# HELP floatip_conflicts_total Other holders of the VIP seen while this node held it.
# TYPE floatip_conflicts_total counter
floatip_conflicts_total{vip="192.0.2.9",interface="eth0"} 1
floatip_conflicts_total{vip="192.0.2.50",interface="eth0"} 0
# HELP floatip_announcements_total Unsolicited ARP announcements sent for the VIP.
# TYPE floatip_announcements_total counter
floatip_announcements_total{vip="192.0.2.9",interface="eth0"} 0
floatip_announcements_total{vip="192.0.2.50",interface="eth0"} 1
`
	if got := out.String(); got != want {
		t.Errorf("exposition differs:\n%s", lineDiff(got, want))
	}
}

// lineDiff shows the first differing line of two texts.
func lineDiff(got, want string) string {
	g, w := strings.Split(got, "\n"), strings.Split(want, "\n")
	for i := 0; i < len(g) || i < len(w); i++ {
		var gl, wl string
		if i < len(g) {
			gl = g[i]
		}
		if i < len(w) {
			wl = w[i]
		}
		if gl != wl {
			return "line " + strconv.Itoa(i+1) + ":\n got  " + gl + "\n want " + wl + "\nwhole output:\n" + got
		}
	}
	return ""
}

func TestMetricsEmptyRegistry(t *testing.T) {
	var out bytes.Buffer
	if err := NewMetrics("dev", slog.New(slog.DiscardHandler)).write(&out); err != nil {
		t.Fatal(err)
	}
	// Every family is declared, with no samples but the build info.
	if got := strings.Count(out.String(), "# TYPE "); got != 7 {
		t.Errorf("%d families, want 7:\n%s", got, out.String())
	}
	if got := strings.Count(out.String(), "\nfloatip_"); got != 1 {
		t.Errorf("%d samples, want only floatip_build_info:\n%s", got, out.String())
	}
}

func TestMetricsEscaping(t *testing.T) {
	cases := []struct{ in, label, help string }{
		{`plain`, `plain`, `plain`},
		{`a"b`, `a\"b`, `a"b`},
		{`a\b`, `a\\b`, `a\\b`},
		{"a\nb", `a\nb`, `a\nb`},
		{`\"` + "\n", `\\\"\n`, `\\"\n`},
	}
	for _, tc := range cases {
		if got := escapeLabel(tc.in); got != tc.label {
			t.Errorf("escapeLabel(%q) = %q, want %q", tc.in, got, tc.label)
		}
		if got := escapeHelp(tc.in); got != tc.help {
			t.Errorf("escapeHelp(%q) = %q, want %q", tc.in, got, tc.help)
		}
	}
	var out bytes.Buffer
	m := NewMetrics("v\"1\n", slog.New(slog.DiscardHandler))
	m.StateChanged(event.Change{VIP: netip.MustParseAddr("192.0.2.50"), Interface: `we\ird`, From: event.Standby, To: event.Active})
	if err := m.write(&out); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{`floatip_build_info{version="v\"1\n"} 1`, `floatip_transitions_total{vip="192.0.2.50",interface="we\\ird"} 1`} {
		if !strings.Contains(out.String(), want+"\n") {
			t.Errorf("output lacks %s:\n%s", want, out.String())
		}
	}
}

func TestMetricsServeAndShutdown(t *testing.T) {
	m := NewMetrics("dev", slog.New(slog.DiscardHandler))
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- m.Serve(ctx, ln) }()

	base := "http://" + ln.Addr().String()
	resp, err := http.Get(base + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || !strings.Contains(string(body), `floatip_build_info{version="dev"} 1`) {
		t.Errorf("GET /metrics: %d %q", resp.StatusCode, body)
	}
	if ct := resp.Header.Get("Content-Type"); ct != "text/plain; version=0.0.4; charset=utf-8" {
		t.Errorf("Content-Type %q", ct)
	}
	for _, tc := range []struct {
		method, path string
		code         int
		empty        bool
		allow        string
	}{
		{http.MethodHead, "/metrics", 200, true, ""},
		{http.MethodGet, "/metrics?x=1", 200, false, ""},
		{http.MethodPost, "/metrics", 405, false, "GET, HEAD"},
		{http.MethodGet, "/other", 404, false, ""},
	} {
		req, _ := http.NewRequest(tc.method, base+tc.path, nil)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Errorf("%s %s: %v", tc.method, tc.path, err)
			continue
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != tc.code || (len(b) == 0) != tc.empty {
			t.Errorf("%s %s: %d with %d bytes, want %d (empty %v)", tc.method, tc.path, resp.StatusCode, len(b), tc.code, tc.empty)
		}
		if got := resp.Header.Get("Allow"); got != tc.allow {
			t.Errorf("%s %s: Allow %q, want %q", tc.method, tc.path, got, tc.allow)
		}
		// HEAD tells the length a GET would have.
		if tc.method == http.MethodHead && resp.ContentLength != int64(len(body)) {
			t.Errorf("HEAD: Content-Length %d, want %d", resp.ContentLength, len(body))
		}
	}
	// A malformed request line gets a 400 and the connection closed.
	conn, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	_ = conn.SetDeadline(time.Now().Add(5 * time.Second))
	fmt.Fprintf(conn, "NONSENSE\r\n\r\n")
	reply, _ := io.ReadAll(conn)
	conn.Close()
	if !strings.HasPrefix(string(reply), "HTTP/1.1 400") {
		t.Errorf("malformed request: %q", reply)
	}

	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("serve returned %v after cancellation, want nil", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("serve did not return after cancellation")
	}
	http.DefaultClient.CloseIdleConnections()
	if _, err := http.Get(base + "/metrics"); err == nil {
		t.Error("still serving after shutdown")
	}
}

// TestMetricsKeepAlive: a scraper's second request reuses its connection.
func TestMetricsKeepAlive(t *testing.T) {
	srv := httptest.NewServer(NewMetrics("dev", slog.New(slog.DiscardHandler)).Handler())
	defer srv.Close()
	client := srv.Client()
	var reused []bool
	for range 3 {
		trace := &httptrace.ClientTrace{GotConn: func(i httptrace.GotConnInfo) { reused = append(reused, i.Reused) }}
		req, _ := http.NewRequestWithContext(httptrace.WithClientTrace(context.Background(), trace), http.MethodGet, srv.URL+"/metrics", nil)
		resp, err := client.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if resp.Close {
			t.Fatal("the server closes the connection after a scrape")
		}
	}
	if !slices.Equal(reused, []bool{false, true, true}) {
		t.Errorf("connection reused per request: %v, want [false true true]", reused)
	}
}

// TestMetricsServerTimeouts: no timeout of the endpoint is left at "never".
func TestMetricsServerTimeouts(t *testing.T) {
	srv := NewMetrics("dev", slog.New(slog.DiscardHandler)).server()
	for name, d := range map[string]time.Duration{
		"ReadHeaderTimeout": srv.ReadHeaderTimeout, "ReadTimeout": srv.ReadTimeout,
		"WriteTimeout": srv.WriteTimeout, "IdleTimeout": srv.IdleTimeout,
	} {
		if d <= 0 || d > time.Minute {
			t.Errorf("%s = %v, want set and at most a minute", name, d)
		}
	}
	if srv.MaxHeaderBytes <= 0 || srv.MaxHeaderBytes > 64<<10 {
		t.Errorf("MaxHeaderBytes = %d", srv.MaxHeaderBytes)
	}
}

// TestMetricsParseWithPrometheus reads a scrape with Prometheus' own text
// parser: the output is valid exposition format, every family has its
// type, and values and escaped labels come back as written.
func TestMetricsParseWithPrometheus(t *testing.T) {
	m := NewMetrics("v\"1\\x\n", slog.New(slog.DiscardHandler))
	a, b := netip.MustParseAddr("192.0.2.50"), netip.MustParseAddr("192.0.2.9")
	m.StateChanged(event.Change{VIP: a, Interface: "eth0", From: event.Standby, To: event.Standby})
	m.StateChanged(event.Change{VIP: a, Interface: "eth0", From: event.Standby, To: event.Active})
	m.StateChanged(event.Change{VIP: b, Interface: `we"ird\`, From: event.Standby, To: event.Yielding})
	for range 4 {
		m.Counted(a, "probe")
	}
	m.Counted(b, "conflict")
	m.Counted(b, "announce")
	srv := httptest.NewServer(m.Handler())
	defer srv.Close()
	resp, err := srv.Client().Get(srv.URL + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if f := expfmt.ResponseFormat(resp.Header); f.FormatType() != expfmt.TypeTextPlain {
		t.Fatalf("Prometheus reads Content-Type %q as %q, want the text format", resp.Header.Get("Content-Type"), f)
	}
	parser := expfmt.NewTextParser(model.LegacyValidation)
	families, err := parser.TextToMetricFamilies(resp.Body)
	if err != nil {
		t.Fatalf("Prometheus' parser rejects the scrape: %v", err)
	}

	wantTypes := map[string]dto.MetricType{"floatip_build_info": dto.MetricType_GAUGE, "floatip_state": dto.MetricType_GAUGE}
	for _, f := range counterFamilies {
		wantTypes[f.name] = dto.MetricType_COUNTER
	}
	if len(families) != len(wantTypes) {
		t.Errorf("%d families, want %d", len(families), len(wantTypes))
	}
	for name, typ := range wantTypes {
		f := families[name]
		if f == nil {
			t.Errorf("family %s missing", name)
			continue
		}
		if f.GetType() != typ || f.GetHelp() == "" {
			t.Errorf("%s: type %v help %q, want %v with help", name, f.GetType(), f.GetHelp(), typ)
		}
	}
	// value finds one sample by its labels.
	value := func(family string, labels map[string]string) (float64, bool) {
		for _, mt := range families[family].GetMetric() {
			got := map[string]string{}
			for _, lp := range mt.GetLabel() {
				got[lp.GetName()] = lp.GetValue()
			}
			if maps.Equal(got, labels) {
				if c := mt.GetCounter(); c != nil {
					return c.GetValue(), true
				}
				return mt.GetGauge().GetValue(), true
			}
		}
		return 0, false
	}
	for _, tc := range []struct {
		family string
		labels map[string]string
		want   float64
	}{
		{"floatip_build_info", map[string]string{"version": "v\"1\\x\n"}, 1},
		{"floatip_state", map[string]string{"vip": "192.0.2.50", "interface": "eth0", "state": "active"}, 1},
		{"floatip_state", map[string]string{"vip": "192.0.2.50", "interface": "eth0", "state": "standby"}, 0},
		{"floatip_state", map[string]string{"vip": "192.0.2.9", "interface": `we"ird\`, "state": "yielding"}, 1},
		{"floatip_transitions_total", map[string]string{"vip": "192.0.2.50", "interface": "eth0"}, 1},
		{"floatip_probes_total", map[string]string{"vip": "192.0.2.50", "interface": "eth0"}, 4},
		{"floatip_conflicts_total", map[string]string{"vip": "192.0.2.9", "interface": `we"ird\`}, 1},
		{"floatip_announcements_total", map[string]string{"vip": "192.0.2.9", "interface": `we"ird\`}, 1},
	} {
		if got, ok := value(tc.family, tc.labels); !ok || got != tc.want {
			t.Errorf("%s%v = %v (found %v), want %v", tc.family, tc.labels, got, ok, tc.want)
		}
	}
	if n := len(families["floatip_state"].GetMetric()); n != 2*len(metricStates) {
		t.Errorf("floatip_state has %d samples, want %d", n, 2*len(metricStates))
	}
}

// TestMetricsConcurrentUse is for -race: observers are called from every
// machine's goroutine while scrapes run.
func TestMetricsConcurrentUse(t *testing.T) {
	m := NewMetrics("dev", slog.New(slog.DiscardHandler))
	var wg sync.WaitGroup
	for i := range 4 {
		vip := netip.AddrFrom4([4]byte{192, 0, 2, byte(i)})
		wg.Add(1)
		go func() {
			defer wg.Done()
			for j := range 200 {
				m.Counted(vip, "probe")
				if j%50 == 0 {
					m.StateChanged(event.Change{VIP: vip, Interface: "eth0", From: event.Standby, To: event.Active})
				}
			}
		}()
	}
	wg.Add(1)
	go func() {
		defer wg.Done()
		for range 50 {
			_ = m.write(io.Discard)
		}
	}()
	wg.Wait()
	var out bytes.Buffer
	_ = m.write(&out)
	if got := strings.Count(out.String(), "} 200\n"); got != 4 {
		t.Errorf("%d VIPs with 200 probes, want 4:\n%s", got, out.String())
	}
}

// TestMetricsCoverEveryState: a state added to the machine must appear in
// floatip_state, or dashboards would miss it.
func TestMetricsCoverEveryState(t *testing.T) {
	for s := event.State(0); !strings.HasPrefix(s.String(), "vipState("); s++ {
		if !slices.Contains(metricStates, s) {
			t.Errorf("state %s is not in metricStates", s)
		}
	}
}
