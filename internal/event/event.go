// Package event is the vocabulary the decision core shares with those who
// watch it: a VIP machine's states, the state changes it reports, and the
// observer interfaces that hooks, metrics and status implement.
//
// It must not know about sockets, netlink or the machines themselves.
package event

import (
	"fmt"
	"net"
	"net/netip"
	"time"
)

// State is where one VIP's state machine stands.
type State int

const (
	Standby  State = iota // someone else holds the VIP, or nobody yet: probe
	Claiming              // the holder is silent: one last check before adding
	Active                // this node holds the VIP
	Yielding              // split brain lost: wait for the winner's announcement, then remove
	Fencing               // the holder went silent: the --fence command runs before the claim
	Adopting              // the VIP was on the interface at start: does another node hold it?
)

func (s State) String() string {
	switch s {
	case Standby:
		return "standby"
	case Claiming:
		return "claiming"
	case Active:
		return "active"
	case Yielding:
		return "yielding"
	case Fencing:
		return "fencing"
	case Adopting:
		return "adopting"
	}
	return fmt.Sprintf("vipState(%d)", int(s))
}

// Change is reported on every transition of a VIP's machine, for
// hooks, metrics and status.
type Change struct {
	VIP       netip.Addr
	Interface string
	From, To  State
	Holder    net.HardwareAddr // the other holder known at the time, if any
	Reason    string
	At        time.Time
}

// Observer learns what the machines do; it must never block.
type Observer interface {
	StateChanged(Change)
	// Counted records one event of a VIP: "probe", "miss", "conflict", "announce".
	Counted(vip netip.Addr, what string)
}

// NoObserver is the observer of a machine nobody watches.
type NoObserver struct{}

func (NoObserver) StateChanged(Change) {}

func (NoObserver) Counted(netip.Addr, string) {}

// Observers fans every report out to each observer in order (e.g. status
// board, metrics, hooks).
type Observers []Observer

func (obs Observers) StateChanged(c Change) {
	for _, o := range obs {
		o.StateChanged(c)
	}
}

func (obs Observers) Counted(vip netip.Addr, what string) {
	for _, o := range obs {
		o.Counted(vip, what)
	}
}

// PoolObserver is an observer that also shows who a VIP is assigned to.
type PoolObserver interface {
	Assigned(vip netip.Addr, assignee net.HardwareAddr, self bool)
}

func (obs Observers) Assigned(vip netip.Addr, assignee net.HardwareAddr, self bool) {
	for _, o := range obs {
		if po, ok := o.(PoolObserver); ok {
			po.Assigned(vip, assignee, self)
		}
	}
}
