package main

import (
	"net"
	"net/netip"
	"reflect"
	"strings"
	"testing"
	"time"
)

func TestStatusLine(t *testing.T) {
	vip := netip.MustParseAddr("192.0.2.50")
	mac := net.HardwareAddr{2, 0, 0, 0, 0, 1}
	since := time.Date(2026, 1, 1, 12, 3, 4, 0, time.UTC)
	now := since.Add(3*time.Minute + 2*time.Second + 400*time.Millisecond)
	cases := []struct {
		s       vipStatus
		now     time.Time
		withAge bool
		want    string
	}{
		{vipStatus{"eth0", stateActive, nil, since}, now, true, "192.0.2.50 on eth0: active since 12:03:04 (3m2s)"},
		{vipStatus{"eth0", stateActive, nil, since}, now, false, "192.0.2.50 on eth0: active since 12:03:04"},
		{vipStatus{"eth0", stateStandby, mac, since}, now, true, "192.0.2.50 on eth0: standby since 12:03:04 (3m2s), held by 02:00:00:00:00:01"},
		{vipStatus{"eth0", stateStandby, nil, since}, now, true, "192.0.2.50 on eth0: standby since 12:03:04 (3m2s), no holder seen"},
		{vipStatus{"eth0", stateClaiming, mac, since}, now, false, "192.0.2.50 on eth0: claiming since 12:03:04, previous holder 02:00:00:00:00:01"},
		{vipStatus{"eth0", stateFencing, mac, since}, now, false, "192.0.2.50 on eth0: fencing since 12:03:04, silent holder 02:00:00:00:00:01"},
		{vipStatus{"eth0", stateYielding, mac, since}, now, false, "192.0.2.50 on eth0: yielding since 12:03:04, yielding to 02:00:00:00:00:01"},
		{vipStatus{"eth0", stateActive, mac, since}, now, false, "192.0.2.50 on eth0: active since 12:03:04, previous holder 02:00:00:00:00:01"},
		{vipStatus{"", stateActive, nil, since}, now, false, "192.0.2.50: active since 12:03:04"},
		// Another day: the date is shown.
		{vipStatus{"eth0", stateActive, nil, since}, since.Add(50 * time.Hour), true, "192.0.2.50 on eth0: active since 2026-01-01 12:03:04 (50h0m0s)"},
		// A clock that went back never shows a negative age.
		{vipStatus{"eth0", stateActive, nil, since}, since.Add(-time.Second), true, "192.0.2.50 on eth0: active since 12:03:04 (0s)"},
	}
	for _, tc := range cases {
		if got := statusLine(vip, tc.s, tc.now, tc.withAge); got != tc.want {
			t.Errorf("got  %q\nwant %q", got, tc.want)
		}
	}
}

func TestStatusBoard(t *testing.T) {
	var summaries []string
	b := newStatusBoard(func(s string) { summaries = append(summaries, s) })
	clock := t0
	b.now = func() time.Time { return clock }
	if got := b.summary(); got != "starting" {
		t.Errorf("empty board summary %q", got)
	}
	a, z := netip.MustParseAddr("192.0.2.50"), netip.MustParseAddr("192.0.2.9")
	mac := net.HardwareAddr{2, 0, 0, 0, 0, 1}
	at := func(s int) time.Time { return t0.Add(time.Duration(s) * time.Second) }

	// Initial facts, then a holder update that keeps the clock, then a
	// transition that restarts it.
	b.stateChanged(stateChange{VIP: a, Interface: "eth0", From: stateStandby, To: stateStandby, At: at(0)})
	b.stateChanged(stateChange{VIP: z, Interface: "eth0", From: stateStandby, To: stateStandby, At: at(0)})
	b.stateChanged(stateChange{VIP: a, Interface: "eth0", From: stateStandby, To: stateStandby, Holder: mac, At: at(5)})
	mac[5] = 9 // the board keeps its own copy
	b.stateChanged(stateChange{VIP: z, Interface: "eth0", From: stateStandby, To: stateClaiming, At: at(10)})
	b.stateChanged(stateChange{VIP: z, Interface: "eth0", From: stateClaiming, To: stateActive, At: at(11)})

	want := []string{
		"192.0.2.9 on eth0: active since 00:00:11 (49s)",
		"192.0.2.50 on eth0: standby since 00:00:00 (1m0s), held by 02:00:00:00:00:01",
	}
	clock = at(60)
	if got := b.lines(); !reflect.DeepEqual(got, want) {
		t.Errorf("lines:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	if len(summaries) != 5 {
		t.Fatalf("%d updates, want one per change", len(summaries))
	}
	if got, want := summaries[4], "192.0.2.9 on eth0: active since 00:00:11; 192.0.2.50 on eth0: standby since 00:00:00, held by 02:00:00:00:00:01"; got != want {
		t.Errorf("summary %q\nwant    %q", got, want)
	}
	if b.summary() != summaries[4] {
		t.Errorf("summary() %q differs from the last update", b.summary())
	}
}

// recorder is an observer that remembers what it was told.
type recorder struct{ events []string }

func (r *recorder) stateChanged(c stateChange) {
	r.events = append(r.events, c.VIP.String()+" "+c.From.String()+"→"+c.To.String())
}

func (r *recorder) counted(vip netip.Addr, what string) {
	r.events = append(r.events, vip.String()+" "+what)
}

func TestFanout(t *testing.T) {
	first, second := &recorder{}, &recorder{}
	var o observer = observers{first, noObserver{}, second}
	vip := netip.MustParseAddr("192.0.2.50")
	o.stateChanged(stateChange{VIP: vip, From: stateStandby, To: stateClaiming})
	o.counted(vip, "probe")
	want := []string{"192.0.2.50 standby→claiming", "192.0.2.50 probe"}
	for _, r := range []*recorder{first, second} {
		if !reflect.DeepEqual(r.events, want) {
			t.Errorf("observer got %q, want %q", r.events, want)
		}
	}
	observers(nil).stateChanged(stateChange{}) // an empty fan-out is fine
}
