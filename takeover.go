package main

// The takeover begins here: each VIP gets its state machine (internal/engine
// decides when to claim, hold and release) and the side effects a claim and
// a release have on this host: the address added and removed through
// netlink, the TCP connections reset before a release, and the operator's
// fencing step before a claim from a silent holder.

import (
	"context"
	"log/slog"
	"net"
	"net/netip"
	"time"

	"floatip/internal/daemon"
	"floatip/internal/engine"
	"floatip/internal/event"
	"floatip/internal/operator"
	"floatip/internal/system"
	"floatip/internal/wire"
)

// addMachines builds one machine per VIP of cfg into group, each beginning
// as starts says: a VIP found on the interface at start (left by a run that
// did not exit cleanly) is checked before it is kept, one held before a
// reload is kept at once. unhealthy: the node starts unhealthy (its health
// check has not passed yet).
func addMachines(cfg *config, starts map[netip.Addr]engine.Start, unhealthy bool, d *daemon.Daemon, group *engine.Group,
	port *wire.Port, refs engine.Reachability, obs event.Observer, log *slog.Logger) {
	var fence engine.FenceFunc
	if cfg.fence != nil {
		fence = func(ctx context.Context, vip netip.Addr, holder net.HardwareAddr) error {
			env := operator.ChangeEnv(event.Change{VIP: vip, Interface: cfg.ifname, From: event.Standby, To: event.Fencing,
				Holder: holder, Reason: "holder silent", At: time.Now()})
			return operator.RunFence(ctx, cfg.fence, env, cfg.fenceTimeout)
		}
	}
	var resetter *system.ConnResetter
	if cfg.resetConns {
		resetter = system.NewConnResetter(cfg.ifname, &d.Index, log)
	}
	now := time.Now()
	for _, vip := range cfg.vips {
		var addr engine.Address = system.NewAddress(cfg.ifname, vip, cfg.label, &d.Index)
		if resetter != nil {
			addr = system.WithConnReset(addr, resetter, vip)
		}
		deps := engine.Deps{Interface: cfg.ifname, Log: log, ARP: port, Refs: refs, Observer: obs, Fence: fence,
			FenceDone: d.FenceDone, Group: group, StartUnhealthy: unhealthy, Address: addr}
		engine.NewMachine(vip, cfg.machine, deps, starts[vip], now)
	}
}
