package engine

import (
	"testing"
	"time"

	"floatip/internal/fiptest"
	"floatip/internal/wire/frame"

	"floatip/internal/event"

	"github.com/mdlayher/arp"
)

func TestMachineClaimsAnEmptyNetwork(t *testing.T) {
	m, lan := newTestMachine(t, 100, "02:00:00:00:00:09")
	now := advance(m, fiptest.T0, fiptest.T0.Add(ms(599)), nil)
	if m.state != event.Standby || lan.configured {
		t.Fatalf("claimed before a dead time: state %v", m.state)
	}
	advance(m, now, fiptest.T0.Add(ms(800)), nil)
	if m.state != event.Active || !lan.configured || lan.announces != 1 {
		t.Fatalf("after 800ms of silence: state %v, configured %v, announces %d", m.state, lan.configured, lan.announces)
	}
	// The announcement repeats count-1 more times, 1.1 s apart.
	advance(m, fiptest.T0.Add(ms(800)), fiptest.T0.Add(ms(800+2*1100+50)), nil)
	if lan.announces != 3 {
		t.Errorf("announcements %d, want 3", lan.announces)
	}
}

func TestMachineTakesOverWhenTheHolderDies(t *testing.T) {
	m, lan := newTestMachine(t, 100, "02:00:00:00:00:09")
	death := fiptest.T0.Add(5 * time.Second)
	alive := func(at time.Time) *frame.Frame {
		if at.Before(death) {
			return holderReply("02:00:00:00:00:01")
		}
		return nil
	}
	now := advance(m, fiptest.T0, death.Add(ms(399)), alive)
	if lan.adds != 0 {
		t.Fatal("claimed too early")
	}
	advance(m, now, death.Add(ms(700)), alive)
	if m.state != event.Active {
		t.Fatalf("state %v 700ms after the holder died (dead time 600ms + claim check)", m.state)
	}
}

func TestMachineReleaseNoticeMeansImmediateClaim(t *testing.T) {
	m, lan := newTestMachine(t, 100, "02:00:00:00:00:09")
	holder := "02:00:00:00:00:01"
	now := advance(m, fiptest.T0, fiptest.T0.Add(2*time.Second), func(time.Time) *frame.Frame { return holderReply(holder) })
	notice := arpFrame(arp.OperationRequest, holder, frame.ZeroIPv4, frame.Tag{Priority: 100, Flags: frame.FlagReleasing}.HardwareAddr().String(), testVIP)
	m.onFrame(*notice, now)
	advance(m, now, now.Add(ms(60)), nil)
	if m.state != event.Active || lan.adds != 1 {
		t.Fatalf("60ms after a release notice: state %v", m.state)
	}
}

func TestMachineRestoresARemovedVIP(t *testing.T) {
	m, lan := newTestMachine(t, 100, "02:00:00:00:00:09")
	now := advance(m, fiptest.T0, fiptest.T0.Add(time.Second), nil)
	lan.configured = false // someone ran `ip addr del`
	m.onEvent(EvAddrRemoved, now)
	if !lan.configured || lan.adds != 2 {
		t.Fatalf("VIP not added again: adds %d", lan.adds)
	}
}

func TestMachineLinkDownReleasesAndShutdownRemoves(t *testing.T) {
	m, lan := newTestMachine(t, 100, "02:00:00:00:00:09")
	now := advance(m, fiptest.T0, fiptest.T0.Add(time.Second), nil)
	m.onEvent(EvLinkDown, now)
	if lan.configured || m.state != event.Standby {
		t.Fatalf("link down: configured %v, state %v", lan.configured, m.state)
	}
	m.onEvent(EvLinkUp, now)
	advance(m, now, now.Add(time.Second), nil)
	if !lan.configured {
		t.Fatal("did not claim again after the link came back to an empty network")
	}
	probes := len(lan.probes)
	m.Shutdown(now)
	if lan.configured {
		t.Fatal("shutdown left the VIP configured")
	}
	if len(lan.probes) != probes+1 || lan.probes[probes].Flags != frame.FlagReleasing {
		t.Errorf("no release notice after removal: %+v", lan.probes[probes:])
	}
}
