// Package engine is floatip's decision core: per VIP a state machine
// (standby, claiming, fencing, active, yielding, adopting), and per
// interface the group view they share: the floatip nodes heard and their
// ranks, one liveness watch per holder, the held VIPs' self-checks and
// refreshes in turn, split-brain resolution, the isolated holder, and the
// pool view of --spread. Time is a parameter and every effect goes through
// a small interface (effects.go), so the decisions are table-tested with
// synthetic time and fakes.
//
// It must not know how frames reach it or leave (sockets, BPF), how an
// address is added (netlink), or who watches it (hooks, metrics, status):
// it reads frame.Frame values and reports event.Change values.
//
// The files follow the machine: machine.go (its state, clock and frames),
// standby.go (probing, the claim check), takeover.go (the claim and the
// active holder), splitbrain.go, recovery.go (adopting a VIP found at
// start), isolation.go, events.go (the link, the address and the health
// check changing); group.go, groupwatch.go (the holder watches, the
// self-check rotation) and schedule.go for what the machines share; peers.go
// and debounce.go for rank and "free"; poolview.go for --spread; shared.go,
// sharedmembers.go, sharedbuckets.go, sharedtable.go and sharedsync.go for
// --share.
package engine
