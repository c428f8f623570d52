package engine

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

	"floatip/internal/event"
	"floatip/internal/wire/frame"
)

// Config is what one VIP's state machine needs from the command line.
type Config struct {
	Priority        uint8
	Interval        time.Duration
	Misses          int
	AnnounceCount   int
	AnnounceSpacing time.Duration
	AnnounceForm    frame.AnnounceForm
	Refresh         time.Duration // 0: no periodic re-announcement
	Preempt         bool          // take the VIP from a lower-ranked holder
	PreemptDelay    time.Duration // ... after seeing it continuously this long
}

// arpSender sends the ARP packets of a VIP; wire.Port implements it.
type arpSender interface {
	MAC() net.HardwareAddr
	Probe(vip netip.Addr, tag frame.Tag, dst net.HardwareAddr) error
	Announce(vip netip.Addr, form frame.AnnounceForm) error
}

// Address adds and removes the VIP on the interface; netlinkAddress
// implements it.
type Address interface {
	Add() error
	Remove() error
}

// Reachability tells whether this node can reach a reference host (its
// gateway, or --reference): a node that cannot is the one cut off, and must
// not claim. referenceWatch implements it.
type Reachability interface {
	// Probe asks the reference hosts whether they are there; rate-limited.
	Probe(now time.Time)
	// Reachable reports whether one answered within window (true when there
	// are no reference hosts to ask).
	Reachable(now time.Time, window time.Duration) bool
	// HeardAt is when a reference host last answered (zero: not since
	// start); asked is false when there are no reference hosts.
	HeardAt(now time.Time) (at time.Time, asked bool)
}

// EverReachable is the reachability of a node with no reference hosts.
type EverReachable struct{}

func (EverReachable) Probe(time.Time)                         {}
func (EverReachable) Reachable(time.Time, time.Duration) bool { return true }
func (EverReachable) HeardAt(time.Time) (time.Time, bool)     { return time.Time{}, false }

// MachineEvent is a change of the interface that a VIP's machine must act on.
type MachineEvent int

const (
	EvLinkUp      MachineEvent = iota // the interface is usable (again): a fresh socket
	EvLinkDown                        // carrier lost or interface gone
	EvAddrRemoved                     // the VIP/32 was deleted from the interface
	EvAddrAdded                       // the VIP/32 was added to the interface (by us, or by hand)
	EvResync                          // netlink events may have been missed
	EvHealthy                         // the --check passes (again)
	EvUnhealthy                       // the --check fails: do not hold the VIP
)

// FenceFunc runs the operator's fencing step against a silent holder; the
// claim goes ahead only if it returns nil.
type FenceFunc func(ctx context.Context, vip netip.Addr, holder net.HardwareAddr) error

// Deps are a VIP machine's links to the world.
type Deps struct {
	Interface string
	Log       *slog.Logger
	ARP       arpSender
	Address   Address
	Refs      Reachability
	Observer  event.Observer
	Fence     FenceFunc // nil: no fencing
	// FenceDone receives the result of a fencing run started by the
	// machine; the interface's loop hands it back to onFenceDone.
	FenceDone chan<- FenceResult
	// Group is the interface's shared view (peers, holders, pacing); a
	// machine built without one gets a group of its own.
	Group *Group
	// StartUnhealthy: a health check gates claims and has not passed yet
	// (at a start; after a reload the node is as healthy as before).
	StartUnhealthy bool
}

// FenceResult is a finished --fence run, for the machine that started it.
type FenceResult struct {
	machine *Machine
	err     error
}
