package main

import (
	"io"
	"log/slog"
	"net/netip"
	"os"
	"testing"

	"floatip/internal/engine"
)

// Held before the reload and still on the interface: kept at once; on the
// interface otherwise: checked as after a crash; else a standby.
func TestStartsOf(t *testing.T) {
	a, b, c, d := netip.MustParseAddr("192.0.2.50"), netip.MustParseAddr("192.0.2.51"),
		netip.MustParseAddr("192.0.2.52"), netip.MustParseAddr("2001:db8::50")
	vips := []netip.Addr{a, b, c, d}
	onInterface := map[netip.Addr]bool{a: true, b: true, d: true}
	h := &handOver{Held: []netip.Addr{a, c, d}, Healthy: true}
	got := startsOf(vips, onInterface, h)
	want := map[netip.Addr]engine.Start{a: engine.StartHeld, b: engine.StartAdopting, c: engine.StartStandby, d: engine.StartHeld}
	for _, vip := range vips {
		if got[vip] != want[vip] {
			t.Errorf("%s: start %v, want %v", vip, got[vip], want[vip])
		}
	}
	if s := startsOf(vips, onInterface, nil); s[a] != engine.StartAdopting || s[c] != engine.StartStandby {
		t.Errorf("without a hand-over: %v", s)
	}
}

// The hand-over is read once and removed from the environment (no hook or
// check inherits it); one that cannot be read is ignored.
func TestTakeHandOver(t *testing.T) {
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	t.Setenv(handOverEnv, `{"held":["192.0.2.50","2001:db8::50"],"healthy":true}`)
	h := takeHandOver(log)
	if h == nil || len(h.Held) != 2 || h.Held[1] != netip.MustParseAddr("2001:db8::50") || !h.Healthy {
		t.Fatalf("hand-over %+v", h)
	}
	if _, set := os.LookupEnv(handOverEnv); set {
		t.Error("the hand-over is still in the environment")
	}
	if takeHandOver(log) != nil {
		t.Error("a second read found a hand-over")
	}
	t.Setenv(handOverEnv, "not json")
	if h := takeHandOver(log); h != nil {
		t.Errorf("a garbled hand-over was taken: %+v", h)
	}
}
