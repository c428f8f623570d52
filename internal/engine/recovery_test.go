package engine

import (
	"bytes"
	"io"
	"log/slog"
	"testing"
	"time"

	"floatip/internal/fiptest"
	"floatip/internal/wire/frame"

	"floatip/internal/event"

	"github.com/mdlayher/arp"
)

func TestAdoptionVerdict(t *testing.T) {
	// Misses 3, dead time 600ms: the same bar as a standby's "holder dead".
	cases := []struct {
		name        string
		otherHolder bool
		unanswered  int
		elapsed     time.Duration
		want        adoptVerdict
	}{
		{"first probe out", false, 0, 0, adoptWait},
		{"misses reached, dead time not", false, 5, ms(599), adoptWait},
		{"dead time reached, misses not", false, 2, ms(900), adoptWait},
		{"both reached", false, 3, ms(600), adoptKeep},
		{"another holder answered at once", true, 0, 0, adoptDrop},
		{"another holder answered late", true, 7, ms(599), adoptDrop},
		// A late sign of another holder wins over silence that "would" have
		// been enough: the check only ends by one of the two.
		{"another holder after the bar", true, 9, time.Second, adoptDrop},
	}
	for _, tc := range cases {
		if got := adoptionVerdict(tc.otherHolder, tc.unanswered, tc.elapsed, 3, ms(600)); got != tc.want {
			t.Errorf("%s: %v, want %v", tc.name, got, tc.want)
		}
	}
}

// newAdoptingMachine is a machine started with the VIP already on the
// interface (left by an earlier run); the link is not up yet.
func newAdoptingMachine(t *testing.T, priority uint8, own string) (*Machine, *fakeLAN) {
	t.Helper()
	lan := &fakeLAN{own: fiptest.MustMAC(own), configured: true}
	cfg := Config{Priority: priority, Interval: ms(200), Misses: 3, AnnounceCount: 3,
		AnnounceSpacing: ms(1100), AnnounceForm: frame.FormRequest, Refresh: 100 * time.Second}
	deps := Deps{Interface: "eth0", Log: slog.New(slog.NewTextHandler(io.Discard, nil)), ARP: lan, Address: lan}
	return NewMachine(testVIP, cfg, deps, StartAdopting, fiptest.T0), lan
}

func TestMachineAdoptsAVIPNobodyElseHolds(t *testing.T) {
	m, lan := newAdoptingMachine(t, 100, "02:00:00:00:00:09")
	if m.state != event.Adopting {
		t.Fatalf("state %v at start with the VIP configured", m.state)
	}
	// Link still down: nothing is sent, nothing changes.
	if wake := m.nextWake(); wake.Before(time.Now().Add(time.Minute)) {
		t.Errorf("wakes at %v with the link down", wake)
	}
	start := fiptest.T0.Add(5 * time.Second)
	m.onEvent(EvLinkUp, start)
	// A standby probing meanwhile (no holder flag) is no sign of a holder.
	standby := arpFrame(arp.OperationRequest, "02:00:00:00:00:05", frame.ZeroIPv4, frame.Tag{Priority: 200}.HardwareAddr().String(), testVIP)
	now := advance(m, start, start.Add(ms(599)), func(time.Time) *frame.Frame { return standby })
	if m.state != event.Adopting || lan.announces != 0 || lan.removes != 0 || !lan.configured {
		t.Fatalf("before the dead time: state %v, announces %d, removes %d, configured %v (want: kept, silent)",
			m.state, lan.announces, lan.removes, lan.configured)
	}
	for i, tag := range lan.probes {
		if tag.Flags != frame.FlagStandAside || lan.probeDsts[i] != "ff:ff:ff:ff:ff:ff" {
			t.Errorf("probe %d: flags %#x to %s, want stand-aside, broadcast", i, tag.Flags, lan.probeDsts[i])
		}
	}
	if len(lan.probes) < 3 {
		t.Errorf("%d probes before adopting, want at least --misses", len(lan.probes))
	}
	advance(m, now, start.Add(ms(700)), nil)
	if m.state != event.Active || lan.announces != 1 || lan.removes != 0 || !lan.configured {
		t.Fatalf("after the check: state %v, announces %d, removes %d, configured %v", m.state, lan.announces, lan.removes, lan.configured)
	}
	// Adopted means held: SIGTERM removes it and says so.
	m.Shutdown(start.Add(time.Second))
	if lan.configured || lan.probes[len(lan.probes)-1].Flags != frame.FlagReleasing {
		t.Errorf("shutdown after adopting: configured %v, last probe %+v", lan.configured, lan.probes[len(lan.probes)-1])
	}
}

func TestMachineDropsAStaleCopy(t *testing.T) {
	other := "02:00:00:00:00:01"
	signs := map[string]*frame.Frame{
		"its kernel answers":    holderReply(other),
		"its self-check":        arpFrame(arp.OperationRequest, other, frame.ZeroIPv4, frame.Tag{Priority: 50, Flags: frame.FlagHolder}.HardwareAddr().String(), testVIP),
		"its announcement":      arpFrame(arp.OperationRequest, other, testVIP, "ff:ff:ff:ff:ff:ff", testVIP),
		"a host not running it": holderReply("02:00:00:00:00:77"),
	}
	for name, sign := range signs {
		t.Run(name, func(t *testing.T) {
			// Priority 200: outranking the other holder changes nothing, the
			// VIP is not ours to take back.
			m, lan := newAdoptingMachine(t, 200, "02:00:00:00:00:09")
			m.onEvent(EvLinkUp, fiptest.T0)
			m.onFrame(*sign, fiptest.T0.Add(ms(1)))
			if m.state != event.Standby || lan.configured || lan.removes != 1 || lan.announces != 0 {
				t.Fatalf("state %v, configured %v, removes %d, announces %d (want: removed at once, standby, silent)",
					m.state, lan.configured, lan.removes, lan.announces)
			}
			for _, tag := range lan.probes {
				if tag.Flags&frame.FlagReleasing != 0 {
					t.Errorf("sent a release notice for a VIP that another node holds")
				}
			}
			if !bytes.Equal(m.holder, sign.Packet.SenderHardwareAddr) {
				t.Errorf("holder %v, want %v", m.holder, sign.Packet.SenderHardwareAddr)
			}
			// As a standby it stays one while the holder answers.
			advance(m, fiptest.T0.Add(ms(1)), fiptest.T0.Add(10*time.Second), func(time.Time) *frame.Frame { return holderReply(sign.Packet.SenderHardwareAddr.String()) })
			if lan.adds != 0 || m.state != event.Standby {
				t.Errorf("after 10 s: adds %d, state %v", lan.adds, m.state)
			}
		})
	}
}

func TestMachineAdoptingLinkDownOrRemoved(t *testing.T) {
	m, lan := newAdoptingMachine(t, 100, "02:00:00:00:00:09")
	m.onEvent(EvLinkUp, fiptest.T0)
	m.onEvent(EvLinkDown, fiptest.T0.Add(ms(100)))
	if lan.configured || m.state != event.Standby {
		t.Errorf("link down while adopting: configured %v, state %v (a holder without carrier gives the VIP up)", lan.configured, m.state)
	}

	m, lan = newAdoptingMachine(t, 100, "02:00:00:00:00:09")
	m.onEvent(EvLinkUp, fiptest.T0)
	lan.configured = false // `ip addr del` by someone
	m.onEvent(EvAddrRemoved, fiptest.T0.Add(ms(100)))
	if m.state != event.Standby || lan.adds != 0 {
		t.Errorf("VIP removed while adopting: state %v, adds %d (want a plain standby, no re-add)", m.state, lan.adds)
	}
	m.Shutdown(fiptest.T0.Add(ms(200)))
	if lan.removes != 0 {
		t.Errorf("removed %d times an address it no longer had", lan.removes)
	}
}
