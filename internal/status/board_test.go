package status

import (
	"net"
	"net/netip"
	"reflect"
	"strings"
	"testing"
	"time"

	"floatip/internal/fiptest"

	"floatip/internal/event"
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
		{vipStatus{"eth0", event.Active, nil, since}, now, true, "192.0.2.50 on eth0: active since 12:03:04 (3m2s)"},
		{vipStatus{"eth0", event.Active, nil, since}, now, false, "192.0.2.50 on eth0: active since 12:03:04"},
		{vipStatus{"eth0", event.Standby, mac, since}, now, true, "192.0.2.50 on eth0: standby since 12:03:04 (3m2s), held by 02:00:00:00:00:01"},
		{vipStatus{"eth0", event.Standby, nil, since}, now, true, "192.0.2.50 on eth0: standby since 12:03:04 (3m2s), no holder seen"},
		{vipStatus{"eth0", event.Claiming, mac, since}, now, false, "192.0.2.50 on eth0: claiming since 12:03:04, previous holder 02:00:00:00:00:01"},
		{vipStatus{"eth0", event.Fencing, mac, since}, now, false, "192.0.2.50 on eth0: fencing since 12:03:04, silent holder 02:00:00:00:00:01"},
		{vipStatus{"eth0", event.Yielding, mac, since}, now, false, "192.0.2.50 on eth0: yielding since 12:03:04, yielding to 02:00:00:00:00:01"},
		{vipStatus{"eth0", event.Active, mac, since}, now, false, "192.0.2.50 on eth0: active since 12:03:04, previous holder 02:00:00:00:00:01"},
		{vipStatus{"", event.Active, nil, since}, now, false, "192.0.2.50: active since 12:03:04"},
		// Another day: the date is shown.
		{vipStatus{"eth0", event.Active, nil, since}, since.Add(50 * time.Hour), true, "192.0.2.50 on eth0: active since 2026-01-01 12:03:04 (50h0m0s)"},
		// A clock that went back never shows a negative age.
		{vipStatus{"eth0", event.Active, nil, since}, since.Add(-time.Second), true, "192.0.2.50 on eth0: active since 12:03:04 (0s)"},
	}
	for _, tc := range cases {
		if got := statusLine(vip, tc.s, tc.now, tc.withAge); got != tc.want {
			t.Errorf("got  %q\nwant %q", got, tc.want)
		}
	}
}

func TestStatusBoard(t *testing.T) {
	var summaries []string
	b := NewBoard(func(s string) { summaries = append(summaries, s) })
	clock := fiptest.T0
	b.now = func() time.Time { return clock }
	if got := b.summary(); got != "starting" {
		t.Errorf("empty board summary %q", got)
	}
	a, z := netip.MustParseAddr("192.0.2.50"), netip.MustParseAddr("192.0.2.9")
	mac := net.HardwareAddr{2, 0, 0, 0, 0, 1}
	at := func(s int) time.Time { return fiptest.T0.Add(time.Duration(s) * time.Second) }

	// Initial facts, then a holder update that keeps the clock, then a
	// transition that restarts it.
	b.StateChanged(event.Change{VIP: a, Interface: "eth0", From: event.Standby, To: event.Standby, At: at(0)})
	b.StateChanged(event.Change{VIP: z, Interface: "eth0", From: event.Standby, To: event.Standby, At: at(0)})
	b.StateChanged(event.Change{VIP: a, Interface: "eth0", From: event.Standby, To: event.Standby, Holder: mac, At: at(5)})
	mac[5] = 9 // the board keeps its own copy
	b.StateChanged(event.Change{VIP: z, Interface: "eth0", From: event.Standby, To: event.Claiming, At: at(10)})
	b.StateChanged(event.Change{VIP: z, Interface: "eth0", From: event.Claiming, To: event.Active, At: at(11)})

	want := []string{
		"192.0.2.9 on eth0: active since 00:00:11 (49s)",
		"192.0.2.50 on eth0: standby since 00:00:00 (1m0s), held by 02:00:00:00:00:01",
	}
	clock = at(60)
	if got := b.Lines(); !reflect.DeepEqual(got, want) {
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

func (r *recorder) StateChanged(c event.Change) {
	r.events = append(r.events, c.VIP.String()+" "+c.From.String()+"→"+c.To.String())
}

func (r *recorder) Counted(vip netip.Addr, what string) {
	r.events = append(r.events, vip.String()+" "+what)
}

func TestFanout(t *testing.T) {
	first, second := &recorder{}, &recorder{}
	var o event.Observer = event.Observers{first, event.NoObserver{}, second}
	vip := netip.MustParseAddr("192.0.2.50")
	o.StateChanged(event.Change{VIP: vip, From: event.Standby, To: event.Claiming})
	o.Counted(vip, "probe")
	want := []string{"192.0.2.50 standby→claiming", "192.0.2.50 probe"}
	for _, r := range []*recorder{first, second} {
		if !reflect.DeepEqual(r.events, want) {
			t.Errorf("observer got %q, want %q", r.events, want)
		}
	}
	event.Observers(nil).StateChanged(event.Change{}) // an empty fan-out is fine
}
