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

// addMachines builds one machine per VIP of cfg into group; a VIP in adopt
// was found on the interface at start (left by a run that did not exit
// cleanly), and its machine checks that it is still this node's.
func addMachines(cfg *config, adopt map[netip.Addr]bool, d *daemon.Daemon, group *engine.Group, port *wire.Port,
	refs engine.Reachability, obs event.Observer, log *slog.Logger) {
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
		resetter = system.NewConnResetter(cfg.ifname, log)
	}
	now := time.Now()
	for _, vip := range cfg.vips {
		var addr engine.Address = system.NewAddress(cfg.ifname, vip, cfg.label, &d.Index)
		if resetter != nil {
			addr = system.WithConnReset(addr, resetter, vip)
		}
		deps := engine.Deps{Interface: cfg.ifname, Log: log, ARP: port, Refs: refs, Observer: obs, Fence: fence,
			FenceDone: d.FenceDone, Group: group, Checked: cfg.check != nil, Address: addr}
		engine.NewMachine(vip, cfg.machine, deps, adopt[vip], now)
	}
}
