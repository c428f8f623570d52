package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"net"
	"net/netip"
	"reflect"
	"testing"
	"time"
)

func TestGapTracker(t *testing.T) {
	t0 := time.UnixMilli(1_000_000)
	at := func(i int) time.Time { return t0.Add(time.Duration(i) * tick) }
	g := newGapTracker("192.0.2.50:7007", 50*time.Millisecond, time.Second)
	for i := 0; i < 100; i++ {
		g.sent(at(i))
	}
	var got []watchEvent
	answer := func(seq int, name string, delay time.Duration) {
		got = append(got, g.answer(seq, name, at(seq).Add(delay))...)
	}
	for i := 0; i < 10; i++ {
		answer(i, "h1", time.Millisecond)
	}
	answer(5, "h1", time.Millisecond)      // older than the latest: ignored
	answer(11, "h1", 2*time.Second)        // late: ignored
	answer(12, "h1", time.Millisecond)     // 30 ms after seq 9: no event
	answer(20, "h2", time.Millisecond)     // 80 ms after seq 12: gap h1 -> h2
	answer(21, "h1", time.Millisecond)     // change without a gap
	answer(22, "h1", time.Millisecond)     // nothing
	answer(500, "h1", time.Millisecond)    // unknown seq: ignored
	answer(-1, "h1", time.Millisecond)     // unknown seq: ignored
	answer(90, "h1", 900*time.Millisecond) // 680 ms gap, just in time
	got = append(got, g.finish()...)       // seq 91..99 unanswered: 90 ms open gap
	ms := func(i int) int64 { return at(i).UnixMilli() }
	want := []watchEvent{
		{Event: "gap", Target: g.target, StartMS: ms(12), EndMS: ms(20), GapMS: 80, Lost: 7, FirstMS: ms(13), From: "h1", To: "h2"},
		{Event: "change", Target: g.target, EndMS: ms(21), From: "h2", To: "h1"},
		{Event: "gap", Target: g.target, StartMS: ms(22), EndMS: ms(90), GapMS: 680, Lost: 67, FirstMS: ms(23), From: "h1", To: "h1"},
		{Event: "gap", Target: g.target, StartMS: ms(90), EndMS: ms(99), GapMS: 90, Lost: 9, FirstMS: ms(91), From: "h1", Open: true},
		{Event: "end", Target: g.target, Sent: 100, Answered: 15},
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("events:\n got %+v\nwant %+v", got, want)
	}

	// A target that never answers: one open gap over the whole run.
	g = newGapTracker("x", 50*time.Millisecond, time.Second)
	for i := 0; i < 10; i++ {
		g.sent(at(i))
	}
	want = []watchEvent{{Event: "gap", Target: "x", StartMS: ms(0), EndMS: ms(9), GapMS: 90, Lost: 10, FirstMS: ms(0), Open: true}, {Event: "end", Target: "x", Sent: 10}}
	if got := g.finish(); !reflect.DeepEqual(got, want) {
		t.Fatalf("silent target:\n got %+v\nwant %+v", got, want)
	}
}

// TestGapTrackerDuplicates: a request answered by two names is a
// duplicate; duplicates close together are one episode, reported when it
// ends (a later one, or the end of the run).
func TestGapTrackerDuplicates(t *testing.T) {
	t0 := time.UnixMilli(1_000_000)
	at := func(i int) time.Time { return t0.Add(time.Duration(i) * tick) }
	g := newGapTracker("x", 50*time.Millisecond, time.Second)
	for i := 0; i < 100; i++ {
		g.sent(at(i))
	}
	var got []watchEvent
	for i := 0; i < 100; i++ {
		got = append(got, g.answer(i, "h1", at(i).Add(time.Millisecond))...)
		if (i >= 10 && i < 15) || i == 30 || i == 70 {
			got = append(got, g.answer(i, "h2", at(i).Add(2*time.Millisecond))...)
		}
		got = append(got, g.answer(i, "h1", at(i).Add(3*time.Millisecond))...) // the same name again: nothing
	}
	got = append(got, g.finish()...)
	ms := func(i int) int64 { return at(i).UnixMilli() }
	want := []watchEvent{
		{Event: "duplicates", Target: "x", StartMS: ms(10), EndMS: ms(30), Dups: 6, From: "h1", To: "h2"},
		{Event: "duplicates", Target: "x", StartMS: ms(70), EndMS: ms(70), Dups: 1, From: "h1", To: "h2"},
		{Event: "end", Target: "x", Sent: 100, Answered: 100},
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("events:\n got %+v\nwant %+v", got, want)
	}
}

func TestParseTargets(t *testing.T) {
	aps, err := parseTargets("192.0.2.50:7007, 192.0.2.51:7007,192.0.2.80:7007@192.0.2.130")
	if err != nil || len(aps) != 3 || aps[1].ap != netip.MustParseAddrPort("192.0.2.51:7007") || aps[1].src.IsValid() ||
		aps[2].src != netip.MustParseAddr("192.0.2.130") || aps[2].String() != "192.0.2.80:7007@192.0.2.130" {
		t.Fatalf("got %v, %v", aps, err)
	}
	for _, bad := range []string{"", "10.0.0.1:7", "192.0.2.50", "192.0.2.50:7007,8.8.8.8:53", "192.0.2.80:7007@x"} {
		if _, err := parseTargets(bad); err == nil {
			t.Errorf("parseTargets(%q) accepted", bad)
		}
	}
	if code := watch([]string{"-targets", "10.1.2.3:7", "-duration", "10ms"}); code != 2 {
		t.Fatalf("watch to 10.1.2.3 exited %d, want 2", code)
	}
}

// TestWatchLoopback: two servers on loopback, one of which stops half way:
// its target gets an open gap, the other none.
func TestWatchLoopback(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	var addrs []watchTarget
	var stops []context.CancelFunc
	for _, name := range []string{"h1", "h2"} {
		conn, err := listenFreebind(ctx, "127.0.0.1:0", time.Second)
		if err != nil {
			t.Fatal(err)
		}
		// the second from a source address of its own
		w := watchTarget{ap: conn.LocalAddr().(*net.UDPAddr).AddrPort()}
		if name == "h2" {
			w.src = netip.MustParseAddr("127.0.0.1")
		}
		addrs = append(addrs, w)
		sctx, stop := context.WithCancel(ctx)
		stops = append(stops, stop)
		go serveConn(sctx, conn, name)
	}
	defer stops[0]()
	go func() { time.Sleep(150 * time.Millisecond); stops[1]() }()
	wctx, wcancel := context.WithTimeout(ctx, 400*time.Millisecond)
	defer wcancel()
	var out bytes.Buffer
	if err := runWatch(wctx, addrs, 5*time.Millisecond, 50*time.Millisecond, 200*time.Millisecond, &out); err != nil {
		t.Fatal(err)
	}
	t.Logf("events:\n%s", out.String())
	byTarget := map[string][]watchEvent{}
	sc := bufio.NewScanner(&out)
	for sc.Scan() {
		var ev watchEvent
		if err := json.Unmarshal(sc.Bytes(), &ev); err != nil {
			t.Fatalf("line %q: %v", sc.Text(), err)
		}
		byTarget[ev.Target] = append(byTarget[ev.Target], ev)
	}
	a, b := byTarget[addrs[0].String()], byTarget[addrs[1].String()]
	if len(a) != 1 || a[0].Event != "end" || a[0].Sent < 40 || a[0].Answered < a[0].Sent*9/10 {
		t.Errorf("steady target: %+v", a)
	}
	if addrs[1].String() != addrs[1].ap.String()+"@127.0.0.1" {
		t.Errorf("target name %q", addrs[1])
	}
	if len(b) != 2 || b[0].Event != "gap" || !b[0].Open || b[0].GapMS < 150 || b[0].From != "h2" {
		t.Errorf("stopped target: want one open gap from h2, then end: %+v", b)
	}
}
