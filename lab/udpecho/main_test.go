package main

import (
	"bytes"
	"context"
	"encoding/json"
	"net"
	"reflect"
	"strings"
	"testing"
	"time"
)

const tick = 10 * time.Millisecond

// mkProbes builds probes 0..n-1 sent every 10 ms, answered 1 ms later by who(i)
// ("" = no answer).
func mkProbes(n int, who func(i int) string) []probe {
	ps := make([]probe, n)
	for i := range ps {
		ps[i] = probe{Seq: i, Sent: time.Duration(i) * tick}
		if r := who(i); r != "" {
			ps[i].Responder = r
			ps[i].Reply = ps[i].Sent + time.Millisecond
		}
	}
	return ps
}

func TestSummarizeEmpty(t *testing.T) {
	s := summarize(nil, time.Second)
	if s.Sent != 0 || s.Answered != 0 || s.LongestGapMS != 0 || s.ByResponder == nil || s.Changes == nil {
		t.Fatalf("empty run: %+v", s)
	}
	b, _ := json.Marshal(s)
	if !strings.Contains(string(b), `"by_responder":{}`) || !strings.Contains(string(b), `"changes":[]`) {
		t.Fatalf("empty run JSON should have {} and []: %s", b)
	}
}

func TestSummarizeSteady(t *testing.T) {
	s := summarize(mkProbes(100, func(int) string { return "h1" }), time.Second)
	want := summary{Sent: 100, Answered: 100, DurationMS: 990, ByResponder: map[string]int{"h1": 100},
		FirstResponder: "h1", LastResponder: "h1", Changes: []change{}, LongestGapMS: 10, LongestGapStartMS: 0}
	if !reflect.DeepEqual(s, want) {
		t.Fatalf("got %+v\nwant %+v", s, want)
	}
}

func TestSummarizeFailover(t *testing.T) {
	// h1 answers 0..99, nobody 100..249, h2 answers 250..499.
	s := summarize(mkProbes(500, func(i int) string {
		switch {
		case i < 100:
			return "h1"
		case i < 250:
			return ""
		}
		return "h2"
	}), time.Second)
	if s.Sent != 500 || s.Answered != 350 || s.ByResponder["h1"] != 100 || s.ByResponder["h2"] != 250 {
		t.Fatalf("counts: %+v", s)
	}
	if s.LongestGapMS != 1510 || s.LongestGapStartMS != 990 {
		t.Fatalf("gap = %d ms from %d, want 1510 from 990", s.LongestGapMS, s.LongestGapStartMS)
	}
	want := []change{{AtMS: 2500, From: "h1", To: "h2", GapMS: 1510}}
	if !reflect.DeepEqual(s.Changes, want) || s.FirstResponder != "h1" || s.LastResponder != "h2" {
		t.Fatalf("changes %+v first %q last %q", s.Changes, s.FirstResponder, s.LastResponder)
	}
}

func TestSummarizeOutageAtEndAndStart(t *testing.T) {
	// Answers stop after seq 9: the run's last send bounds the gap.
	s := summarize(mkProbes(100, func(i int) string {
		if i < 10 {
			return "h1"
		}
		return ""
	}), time.Second)
	if s.LongestGapMS != 900 || s.LongestGapStartMS != 90 {
		t.Fatalf("trailing outage: gap %d from %d, want 900 from 90", s.LongestGapMS, s.LongestGapStartMS)
	}
	// Answers start at seq 30: the first send bounds the gap.
	s = summarize(mkProbes(100, func(i int) string {
		if i >= 30 {
			return "h2"
		}
		return ""
	}), time.Second)
	if s.LongestGapMS != 300 || s.LongestGapStartMS != 0 || len(s.Changes) != 0 || s.FirstResponder != "h2" {
		t.Fatalf("leading outage: %+v", s)
	}
	// Nothing answered at all.
	s = summarize(mkProbes(50, func(int) string { return "" }), time.Second)
	if s.Answered != 0 || s.LongestGapMS != 490 || s.LongestGapStartMS != 0 || s.FirstResponder != "" {
		t.Fatalf("no answers: %+v", s)
	}
}

func TestSummarizeFlapUnsortedAndLate(t *testing.T) {
	ps := mkProbes(30, func(i int) string {
		switch {
		case i < 10:
			return "h1"
		case i < 20:
			return "h2"
		}
		return "h1"
	})
	// Replies for 12 and 13 came 2 s late: late, not answered.
	ps[12].Reply = ps[12].Sent + 2*time.Second
	ps[13].Reply = ps[13].Sent + 2*time.Second
	// Order must not matter.
	for i, j := 0, len(ps)-1; i < j; i, j = i+1, j-1 {
		ps[i], ps[j] = ps[j], ps[i]
	}
	s := summarize(ps, time.Second)
	want := []change{{AtMS: 100, From: "h1", To: "h2", GapMS: 10}, {AtMS: 200, From: "h2", To: "h1", GapMS: 10}}
	if !reflect.DeepEqual(s.Changes, want) {
		t.Fatalf("changes %+v, want %+v", s.Changes, want)
	}
	if s.Late != 2 || s.Answered != 28 || s.ByResponder["h2"] != 8 {
		t.Fatalf("late/answered: %+v", s)
	}
	if s.LongestGapMS != 30 || s.LongestGapStartMS != 110 {
		t.Fatalf("gap %d from %d, want 30 from 110", s.LongestGapMS, s.LongestGapStartMS)
	}
	// Without a timeout nothing is late.
	if s := summarize(ps, 0); s.Late != 0 || s.Answered != 30 {
		t.Fatalf("timeout 0: %+v", s)
	}
}

func TestSummaryJSONFields(t *testing.T) {
	s := summarize(mkProbes(3, func(int) string { return "h1" }), time.Second)
	b, err := json.Marshal(s)
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]any
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatal(err)
	}
	for _, k := range []string{"sent", "answered", "by_responder", "changes", "longest_gap_ms", "longest_gap_start_ms"} {
		if _, ok := m[k]; !ok {
			t.Errorf("JSON summary lacks %q: %s", k, b)
		}
	}
}

// TestLoopbackRun runs a real server and client on loopback, switching the
// server's name half way through.
func TestLoopbackRun(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	conn, err := listenFreebind(ctx, "127.0.0.1:0", time.Second)
	if err != nil {
		t.Fatal(err)
	}
	addr := conn.LocalAddr().(*net.UDPAddr).AddrPort()
	sctx, stopServer := context.WithCancel(ctx)
	served := make(chan struct{})
	go func() { serveConn(sctx, conn, "h1"); close(served) }()
	// After 150 ms the h1 server stops and h2 takes its port.
	h2done := make(chan struct{})
	defer func() { cancel(); <-h2done }()
	go func() {
		defer close(h2done)
		time.Sleep(150 * time.Millisecond)
		stopServer()
		<-served
		c2, err := listenFreebind(ctx, addr.String(), time.Second)
		if err != nil {
			t.Error(err)
			return
		}
		serveConn(ctx, c2, "h2")
	}()

	var live bytes.Buffer
	s, err := runClient(ctx, clientConfig{Target: addr, Every: 5 * time.Millisecond,
		Duration: 400 * time.Millisecond, Timeout: 200 * time.Millisecond, Live: &live})
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("summary: %+v\nlive:\n%s", s, live.String())
	if s.Sent < 40 || s.Answered < s.Sent/2 {
		t.Fatalf("too few answers: %+v", s)
	}
	if s.FirstResponder != "h1" || s.LastResponder != "h2" || len(s.Changes) != 1 {
		t.Fatalf("expected one change h1 -> h2: %+v", s)
	}
	if !strings.Contains(live.String(), "responder changed: h1 -> h2") {
		t.Fatalf("live output lacks the change:\n%s", live.String())
	}
}

func TestClientRefusesOutsideTargets(t *testing.T) {
	if code := client([]string{"-target", "10.1.2.3:7", "-duration", "10ms"}); code != 2 {
		t.Fatalf("client to 10.1.2.3 exited %d, want 2", code)
	}
}
