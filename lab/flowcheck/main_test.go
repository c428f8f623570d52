package main

import (
	"bytes"
	"context"
	"encoding/json"
	"net/netip"
	"reflect"
	"strings"
	"testing"
	"time"
)

// startServer serves as name on 127.0.0.1 (a free port, UDP and TCP) until
// the returned stop is called; stop returns when the server is done.
func startServer(t *testing.T, name string) (addr string, stop func()) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	ln, pc, err := listenBoth(ctx, "127.0.0.1:0")
	if err != nil {
		cancel()
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() { defer close(done); runServer(ctx, ln, pc, name) }()
	stop = func() { cancel(); <-done }
	t.Cleanup(stop)
	return ln.Addr().String(), stop
}

// runJSON runs the client with args and -json and decodes its output, both
// into a report and into a map (to check the field names).
func runJSON(t *testing.T, args ...string) (*report, map[string]any) {
	t.Helper()
	var out bytes.Buffer
	if code := client(context.Background(), append(args, "-json"), &out); code != 0 {
		t.Fatalf("client %v: exit %d", args, code)
	}
	var rep report
	var raw map[string]any
	if err := json.Unmarshal(out.Bytes(), &rep); err != nil {
		t.Fatalf("%v: %s", err, out.Bytes())
	}
	if err := json.Unmarshal(out.Bytes(), &raw); err != nil {
		t.Fatal(err)
	}
	t.Logf("%s", out.Bytes())
	return &rep, raw
}

var sources = []string{"127.0.0.1", "127.0.0.2", "127.0.0.3"}

func TestSteady(t *testing.T) {
	addr, _ := startServer(t, "h1")
	rep, raw := runJSON(t, "-target", addr, "-sources", "127.0.0.1-127.0.0.3", "-every", "50ms", "-duration", "1s", "-long")

	for _, k := range []string{"duration_ms", "sources", "udp", "tcp", "long", "by_source"} {
		if _, ok := raw[k]; !ok {
			t.Errorf("JSON has no %q", k)
		}
	}
	src := raw["by_source"].(map[string]any)["127.0.0.2"].(map[string]any)
	for _, k := range []string{"udp_responders", "udp_missing", "udp_duplicates", "udp_longest_gap_ms", "udp_longest_gap_start_ms",
		"tcp_responders", "tcp_failed", "tcp_longest_gap_ms", "long_responders", "long_error", "long_broken_at_ms"} {
		if _, ok := src[k]; !ok {
			t.Errorf("by_source entry has no %q", k)
		}
	}

	if rep.Sources != 3 || len(rep.BySource) != 3 {
		t.Fatalf("sources: %d, by_source %d", rep.Sources, len(rep.BySource))
	}
	if rep.UDP.Sent < 3*15 || rep.UDP.Answered != rep.UDP.Sent || rep.UDP.Missing != 0 || rep.UDP.Duplicates != 0 {
		t.Errorf("udp: %+v", rep.UDP)
	}
	if rep.TCP.Tried < 3*15 || rep.TCP.OK != rep.TCP.Tried || rep.TCP.Failed != 0 {
		t.Errorf("tcp: %+v", rep.TCP)
	}
	if rep.Long.Opened != 3 || rep.Long.Broken != 0 {
		t.Errorf("long: %+v", rep.Long)
	}
	for _, a := range sources {
		s := rep.BySource[a]
		if s == nil {
			t.Fatalf("no report for %s", a)
		}
		if len(s.UDPResponders) != 1 || s.UDPResponders["h1"] == 0 || len(s.TCPResponders) != 1 || s.TCPResponders["h1"] == 0 ||
			len(s.LongResponders) != 1 || s.LongResponders["h1"] == 0 {
			t.Errorf("%s: responders udp %v tcp %v long %v", a, s.UDPResponders, s.TCPResponders, s.LongResponders)
		}
		if s.LongError != "" || s.LongChanges != 0 || !s.LongOpened {
			t.Errorf("%s: long connection %q changes %d opened %v", a, s.LongError, s.LongChanges, s.LongOpened)
		}
		// No loss: gaps are about -every (generous for a loaded machine).
		if s.UDPLongestGapMS < 30 || s.UDPLongestGapMS > 400 || s.TCPLongestGapMS > 400 || s.LongLongestGapMS > 400 {
			t.Errorf("%s: gaps udp %d tcp %d long %d ms", a, s.UDPLongestGapMS, s.TCPLongestGapMS, s.LongLongestGapMS)
		}
	}
}

func TestServerStops(t *testing.T) {
	addr, stop := startServer(t, "h1")
	time.AfterFunc(400*time.Millisecond, stop)
	rep, _ := runJSON(t, "-target", addr, "-sources", "127.0.0.1,127.0.0.2-127.0.0.3", "-every", "50ms", "-duration", "1200ms",
		"-timeout", "200ms", "-long")

	if rep.Long.Opened != 3 || rep.Long.Broken != 3 {
		t.Errorf("long: %+v, want 3 opened and broken", rep.Long)
	}
	if rep.UDP.Missing == 0 || rep.UDP.Answered == 0 {
		t.Errorf("udp: %+v, want answers and then misses", rep.UDP)
	}
	if rep.TCP.Failed == 0 || rep.TCP.OK == 0 {
		t.Errorf("tcp: %+v, want successes and then failures", rep.TCP)
	}
	for _, a := range sources {
		s := rep.BySource[a]
		if s.LongError == "" || s.LongBrokenAtMS < 300 || s.LongBrokenAtMS > 1200 {
			t.Errorf("%s: long error %q at %d ms", a, s.LongError, s.LongBrokenAtMS)
		}
		if s.TCPFailures["refused"] == 0 {
			t.Errorf("%s: tcp failures %v, want refused ones", a, s.TCPFailures)
		}
		// Dark from ~400 ms to the end (1200 ms).
		if s.UDPLongestGapMS < 600 || s.UDPLongestGapStartMS < 250 || s.TCPLongestGapMS < 600 {
			t.Errorf("%s: gaps udp %d from %d, tcp %d ms", a, s.UDPLongestGapMS, s.UDPLongestGapStartMS, s.TCPLongestGapMS)
		}
	}
}

func TestClientRefuses(t *testing.T) {
	for _, args := range [][]string{
		{"-target", "8.8.8.8:7007", "-sources", "127.0.0.1"},
		{"-target", "127.0.0.1:7007", "-sources", "127.0.0.3-127.0.0.1"},
		{"-target", "127.0.0.1:7007", "-sources", "::1"},
		{"-target", "127.0.0.1:7007"},
		{"-target", "127.0.0.1:7007", "-sources", "127.0.0.1", "-every", "1ms"},
	} {
		if code := client(context.Background(), args, &bytes.Buffer{}); code != 2 {
			t.Errorf("client %v: exit %d, want 2", args, code)
		}
	}
}

func TestParseSources(t *testing.T) {
	got, err := parseSources("192.0.2.254-192.0.2.255, 192.0.2.1", true)
	want := []netip.Addr{netip.MustParseAddr("192.0.2.254"), netip.MustParseAddr("192.0.2.255"), netip.MustParseAddr("192.0.2.1")}
	if err != nil || !reflect.DeepEqual(got, want) {
		t.Fatalf("got %v, %v", got, err)
	}
	if _, err := parseSources("192.0.2.1,192.0.2.0-192.0.2.3", true); err == nil {
		t.Error("duplicate accepted")
	}
	if _, err := parseSources("10.0.0.0-10.0.255.255", true); err == nil || !strings.Contains(err.Error(), "1024") {
		t.Errorf("too many: %v", err)
	}
}

func TestLongestGap(t *testing.T) {
	ms := func(v ...int) []time.Duration {
		var d []time.Duration
		for _, x := range v {
			d = append(d, time.Duration(x)*time.Millisecond)
		}
		return d
	}
	for _, c := range []struct {
		sends      []time.Duration
		end        int
		gap, start int64
	}{
		{ms(0, 100, 200, 300), 400, 100, 0},
		{ms(300, 0, 100), 1000, 700, 300}, // dark at the end
		{ms(500, 600), 700, 500, 0},       // dark at the start
		{nil, 700, 700, 0},                // never answered
	} {
		g, s := longestGap(c.sends, time.Duration(c.end)*time.Millisecond)
		if g != c.gap || s != c.start {
			t.Errorf("longestGap(%v, %d) = %d from %d, want %d from %d", c.sends, c.end, g, s, c.gap, c.start)
		}
	}
}
