package engine

// The fakes and drivers that the machine and group tests share: a LAN
// that records what a machine sends, reference hosts whose answer the
// test sets, and synthetic time.

import (
	"io"
	"log/slog"
	"net"
	"net/netip"
	"testing"
	"time"

	"floatip/internal/fiptest"
	"floatip/internal/wire/frame"

	"github.com/mdlayher/arp"
)

func ms(n int) time.Duration { return time.Duration(n) * time.Millisecond }

// fakeLAN stands in for the ARP socket and netlink: it records what the
// machine sends and configures.
type fakeLAN struct {
	own        net.HardwareAddr
	probes     []frame.Tag
	probeDsts  []string
	announces  int
	sent       []string // "probe" and "announce", in the order sent
	configured bool
	adds       int
	removes    int
}

func (f *fakeLAN) MAC() net.HardwareAddr { return f.own }

func (f *fakeLAN) Probe(_ netip.Addr, tag frame.Tag, dst net.HardwareAddr) error {
	f.probes = append(f.probes, tag)
	f.probeDsts = append(f.probeDsts, dst.String())
	f.sent = append(f.sent, "probe")
	return nil
}

func (f *fakeLAN) Announce(netip.Addr, frame.AnnounceForm) error {
	f.announces++
	f.sent = append(f.sent, "announce")
	return nil
}

func (f *fakeLAN) Add() error { f.configured = true; f.adds++; return nil }

func (f *fakeLAN) Remove() error { f.configured = false; f.removes++; return nil }

var testVIP = netip.MustParseAddr("192.0.2.50")

// fakeRefs is a reachability whose answer the test sets.
type fakeRefs struct {
	ok     bool
	probes int
	last   time.Time // HeardAt; with none, there are no references
	none   bool
}

func (f *fakeRefs) Probe(time.Time) { f.probes++ }

func (f *fakeRefs) Reachable(time.Time, time.Duration) bool { return f.ok }

func (f *fakeRefs) HeardAt(time.Time) (time.Time, bool) { return f.last, !f.none }

func newTestMachine(t *testing.T, priority uint8, own string) (*Machine, *fakeLAN) {
	t.Helper()
	return newTestMachineWith(t, priority, own, nil, func(*Config) {})
}

func newTestMachineWith(t *testing.T, priority uint8, own string, refs Reachability, change func(*Config)) (*Machine, *fakeLAN) {
	t.Helper()
	lan := &fakeLAN{own: fiptest.MustMAC(own)}
	cfg := Config{Priority: priority, Interval: ms(200), Misses: 3, AnnounceCount: 3,
		AnnounceSpacing: ms(1100), AnnounceForm: frame.FormRequest, Refresh: 100 * time.Second}
	change(&cfg)
	deps := Deps{Interface: "eth0", Log: slog.New(slog.NewTextHandler(io.Discard, nil)), ARP: lan, Address: lan, Refs: refs}
	m := NewMachine(testVIP, cfg, deps, StartStandby, fiptest.T0)
	m.Group.Broadcast(EvLinkUp, fiptest.T0)
	return m, lan
}

// driveGroup runs a group's loop with synthetic time from now to until, as
// the interface's loop does (the machines, the holder watches and the
// rotations); afterTick runs after every tick, to answer what was sent.
func driveGroup(g *Group, now, until time.Time, afterTick func(now time.Time)) time.Time {
	g.queue.refresh() // the test may have called handlers directly
	for {
		wake := g.Next()
		if wake.After(until) {
			return until
		}
		if wake.Before(now) {
			wake = now
		}
		now = wake
		g.Tick(now)
		if afterTick != nil {
			afterTick(now)
		}
	}
}

// advance runs the machine's group up to until; after each tick, reply
// decides whether the holder answers the probe just sent.
func advance(m *Machine, now, until time.Time, reply func(at time.Time) *frame.Frame) time.Time {
	g := m.Group
	return driveGroup(g, now, until, func(now time.Time) {
		if reply != nil {
			if f := reply(now); f != nil {
				g.Dispatch(*f, now.Add(ms(1)))
			}
		}
	})
}

func arpFrame(op arp.Operation, sha string, spa netip.Addr, tha string, tpa netip.Addr) *frame.Frame {
	return &frame.Frame{Packet: fiptest.ARP(op, sha, spa, tha, tpa)}
}

// holderReply is the kernel's answer of a live holder to a probe.
func holderReply(mac string) *frame.Frame {
	return arpFrame(arp.OperationReply, mac, testVIP, "02:00:00:00:00:09", frame.ZeroIPv4)
}
