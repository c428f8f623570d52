package engine

import (
	"bytes"
	"testing"

	"floatip/internal/fiptest"
	"floatip/internal/wire/frame"
)

func TestRank(t *testing.T) {
	a := fiptest.MustMAC("02:00:00:00:00:01")
	b := fiptest.MustMAC("02:00:00:00:00:02")
	cases := []struct {
		x, y rank
		want bool
	}{
		{rank{200, b}, rank{100, a}, true},  // higher priority wins
		{rank{100, a}, rank{200, b}, false}, //
		{rank{100, a}, rank{100, b}, true},  // tie: lower MAC wins
		{rank{100, b}, rank{100, a}, false}, //
		{rank{100, a}, rank{100, a}, false}, // nobody outranks itself
	}
	for _, tc := range cases {
		if got := tc.x.outranks(tc.y); got != tc.want {
			t.Errorf("%v outranks %v = %v, want %v", tc.x, tc.y, got, tc.want)
		}
	}
}

func TestResolveConflict(t *testing.T) {
	self := rank{100, fiptest.MustMAC("02:00:00:00:00:02")}
	cases := []struct {
		name    string
		other   rank
		floatip bool
		want    conflictAction
	}{
		{"better floatip node", rank{150, fiptest.MustMAC("02:00:00:00:00:09")}, true, yield},
		{"equal priority, lower MAC", rank{100, fiptest.MustMAC("02:00:00:00:00:01")}, true, yield},
		{"equal priority, higher MAC", rank{100, fiptest.MustMAC("02:00:00:00:00:03")}, true, defend},
		{"worse floatip node", rank{50, fiptest.MustMAC("02:00:00:00:00:01")}, true, defend},
		{"not floatip", rank{}, false, defend},
	}
	for _, tc := range cases {
		if got := resolveConflict(self, tc.other, tc.floatip); got != tc.want {
			t.Errorf("%s: %v, want %v", tc.name, got, tc.want)
		}
		// Both sides reach the same verdict without talking.
		if tc.floatip {
			if back := resolveConflict(tc.other, self, true); back == tc.want {
				t.Errorf("%s: both sides decided %v", tc.name, back)
			}
		}
	}
}

func TestBetterStandby(t *testing.T) {
	self := rank{100, fiptest.MustMAC("02:00:00:00:00:05")}
	peers := peerTable{}
	peers.observe(fiptest.MustMAC("02:00:00:00:00:01"), frame.Tag{Priority: 50}, fiptest.T0) // worse
	holder := fiptest.MustMAC("02:00:00:00:00:02")
	peers.observe(holder, frame.Tag{Priority: 200, Flags: frame.FlagHolder}, fiptest.T0) // the VIP's holder, not a standby
	if _, ok := peers.betterStandby(self, holder, fiptest.T0, ms(600)); ok {
		t.Fatal("found a better standby among a worse one and the VIP's holder")
	}
	if r, ok := peers.betterStandby(self, nil, fiptest.T0, ms(600)); !ok || !bytes.Equal(r.mac, holder) {
		t.Fatal("a node holding other VIPs is a standby for this one")
	}
	peers.observe(fiptest.MustMAC("02:00:00:00:00:03"), frame.Tag{Priority: 150}, fiptest.T0)
	if r, ok := peers.betterStandby(self, holder, fiptest.T0.Add(ms(600)), ms(600)); !ok || r.priority != 150 {
		t.Fatalf("better standby: %v %v", r, ok)
	}
	if _, ok := peers.betterStandby(self, holder, fiptest.T0.Add(ms(601)), ms(600)); ok {
		t.Error("a standby silent for longer than the window still counts")
	}
	peers.observe(fiptest.MustMAC("02:00:00:00:00:03"), frame.Tag{Priority: 150, Flags: frame.FlagReleasing}, fiptest.T0.Add(ms(100)))
	if _, ok := peers.betterStandby(self, holder, fiptest.T0.Add(ms(100)), ms(600)); ok {
		t.Error("a leaving node still counts as a standby")
	}
	peers.observe(fiptest.MustMAC("02:00:00:00:00:04"), frame.Tag{Priority: 250, Flags: frame.FlagStandAside}, fiptest.T0.Add(ms(100)))
	if _, ok := peers.betterStandby(self, holder, fiptest.T0.Add(ms(100)), ms(600)); ok {
		t.Error("an unhealthy node that stands aside still counts as a better standby")
	}
}
