package main

// What a VIP machine needs from the world: its configuration, and the small
// interfaces behind which every side effect sits (sending ARP/NDP, the
// address, the reference hosts, the observers, fencing), so that the
// decisions in takeover.go stay table-testable with fakes.

import (
	"context"
	"log/slog"
	"net"
	"net/netip"
	"time"

	"floatip/internal/wire"

	"floatip/internal/event"
)

// machineConfig is what one VIP's state machine needs from the command line.
type machineConfig struct {
	priority        uint8
	interval        time.Duration
	misses          int
	announceCount   int
	announceSpacing time.Duration
	announceForm    wire.AnnounceForm
	refresh         time.Duration // 0: no periodic re-announcement
	preempt         bool          // take the VIP from a lower-ranked holder
	preemptDelay    time.Duration // ... after seeing it continuously this long
}

// arpSender sends the ARP packets of a VIP; wire.Port implements it.
type arpSender interface {
	MAC() net.HardwareAddr
	Probe(vip netip.Addr, tag wire.Tag, dst net.HardwareAddr) error
	Announce(vip netip.Addr, form wire.AnnounceForm) error
}

// vipAddress adds and removes the VIP on the interface; netlinkAddress
// implements it.
type vipAddress interface {
	Add() error
	Remove() error
}

// reachability tells whether this node can reach a reference host (its
// gateway, or --reference): a node that cannot is the one cut off, and must
// not claim. referenceWatch implements it.
type reachability interface {
	// Probe asks the reference hosts whether they are there; rate-limited.
	Probe(now time.Time)
	// reachable reports whether one answered within window (true when there
	// are no reference hosts to ask).
	reachable(now time.Time, window time.Duration) bool
	// heardAt is when a reference host last answered (zero: not since
	// start); asked is false when there are no reference hosts.
	heardAt(now time.Time) (at time.Time, asked bool)
}

// everReachable is the reachability of a node with no reference hosts.
type everReachable struct{}

func (everReachable) Probe(time.Time)                         {}
func (everReachable) reachable(time.Time, time.Duration) bool { return true }
func (everReachable) heardAt(time.Time) (time.Time, bool)     { return time.Time{}, false }

// machineEvent is a change of the interface that a VIP's machine must act on.
type machineEvent int

const (
	evLinkUp      machineEvent = iota // the interface is usable (again): a fresh socket
	evLinkDown                        // carrier lost or interface gone
	evAddrRemoved                     // the VIP/32 was deleted from the interface
	evAddrAdded                       // the VIP/32 was added to the interface (by us, or by hand)
	evResync                          // netlink events may have been missed
	evHealthy                         // the --check passes (again)
	evUnhealthy                       // the --check fails: do not hold the VIP
)

// fenceFunc runs the operator's fencing step against a silent holder; the
// claim goes ahead only if it returns nil.
type fenceFunc func(ctx context.Context, vip netip.Addr, holder net.HardwareAddr) error

// machineDeps are a VIP machine's links to the world.
type machineDeps struct {
	ifname string
	log    *slog.Logger
	arp    arpSender
	addr   vipAddress
	refs   reachability
	obs    event.Observer
	fence  fenceFunc // nil: no fencing
	// fenceDone receives the result of a fencing run started by the
	// machine; the interface's loop hands it back to onFenceDone.
	fenceDone chan<- fenceResult
	// group is the interface's shared view (peers, holders, pacing); a
	// machine built without one gets a group of its own.
	group *groupView
	// checked: a health check gates claims; the node starts unhealthy
	// until the check has passed.
	checked bool
}
