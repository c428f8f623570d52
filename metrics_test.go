package main

import (
	"bytes"
	"context"
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
	"testing"
	"time"
)

func TestMetricsExactOutput(t *testing.T) {
	m := newMetrics("1.2.3", slog.New(slog.DiscardHandler))
	a, b := netip.MustParseAddr("192.0.2.50"), netip.MustParseAddr("192.0.2.9")
	// Initial state reports (From == To) count no transition.
	m.stateChanged(stateChange{VIP: a, Interface: "eth0", From: stateStandby, To: stateStandby})
	m.stateChanged(stateChange{VIP: b, Interface: "eth0", From: stateActive, To: stateActive})
	for range 3 {
		m.counted(a, "probe")
	}
	m.counted(a, "miss")
	m.counted(a, "miss")
	m.stateChanged(stateChange{VIP: a, Interface: "eth0", From: stateStandby, To: stateClaiming})
	m.counted(a, "probe")
	m.stateChanged(stateChange{VIP: a, Interface: "eth0", From: stateClaiming, To: stateActive})
	m.counted(a, "announce")
	m.counted(b, "conflict")
	m.counted(b, "something new") // ignored

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
	if err := newMetrics("dev", slog.New(slog.DiscardHandler)).write(&out); err != nil {
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
	m := newMetrics("v\"1\n", slog.New(slog.DiscardHandler))
	m.stateChanged(stateChange{VIP: netip.MustParseAddr("192.0.2.50"), Interface: `we\ird`, From: stateStandby, To: stateActive})
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
	m := newMetrics("dev", slog.New(slog.DiscardHandler))
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- m.serve(ctx, ln) }()

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
	}{
		{http.MethodHead, "/metrics", 200, true},
		{http.MethodGet, "/metrics?x=1", 200, false},
		{http.MethodPost, "/metrics", 405, false},
		{http.MethodGet, "/other", 404, false},
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
	}
	// A client that says nothing is cut off after the deadline, not served forever;
	// a malformed request line gets a 400.
	conn, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
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
	if _, err := http.Get(base + "/metrics"); err == nil {
		t.Error("still serving after shutdown")
	}
}

// TestMetricsConcurrentUse is for -race: observers are called from every
// machine's goroutine while scrapes run.
func TestMetricsConcurrentUse(t *testing.T) {
	m := newMetrics("dev", slog.New(slog.DiscardHandler))
	var wg sync.WaitGroup
	for i := range 4 {
		vip := netip.AddrFrom4([4]byte{192, 0, 2, byte(i)})
		wg.Add(1)
		go func() {
			defer wg.Done()
			for j := range 200 {
				m.counted(vip, "probe")
				if j%50 == 0 {
					m.stateChanged(stateChange{VIP: vip, Interface: "eth0", From: stateStandby, To: stateActive})
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
	for s := vipState(0); !strings.HasPrefix(s.String(), "vipState("); s++ {
		if !slices.Contains(metricStates, s) {
			t.Errorf("state %s is not in metricStates", s)
		}
	}
}
