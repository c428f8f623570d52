package main

// Sharing begins here (--share): the kernel side of the shared addresses of
// one interface, which internal/engine's SharedView drives: floatip's own
// nftables table (internal/clusterip), the addresses on the interface and
// the multicast group of each cluster MAC. Everything is undone on exit,
// and a table left by a process killed with -9 is replaced at the next
// start.

import (
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"slices"
	"sync"
	"time"

	"floatip/internal/clusterip"
	"floatip/internal/status"
	"floatip/internal/system"
)

// sharedPath is the engine's BucketTable.
type sharedPath struct {
	ifname string
	log    *slog.Logger
	table  *clusterip.Table
	addrs  []*system.NetlinkAddress
	shared []netip.Addr

	mu                       sync.Mutex // the metrics read from their own goroutine
	joins                    []io.Closer
	mine, draining, incoming int
}

// checkShared refuses, before anything changes, what cannot work: a kernel
// without nf_tables, a shared address outside the interface's subnets.
func checkShared(cfg *config) error {
	if len(cfg.shared) == 0 {
		return nil
	}
	if err := clusterip.Check(); err != nil {
		return fmt.Errorf("--share: %w", err)
	}
	ifi, err := net.InterfaceByName(cfg.ifname)
	if err != nil {
		return nil // not there yet: floatip waits for it
	}
	ifAddrs, err := ifi.Addrs()
	if err != nil {
		return fmt.Errorf("--share: read the addresses of %s: %w", cfg.ifname, err)
	}
	return outsideSubnets(cfg.ifname, cfg.shared, ifAddrs)
}

// outsideSubnets refuses a shared address outside every IPv4 subnet of the
// interface (its /32 VIPs and shared addresses are no subnet); an interface
// without one is not judged.
func outsideSubnets(ifname string, shared []netip.Addr, ifAddrs []net.Addr) error {
	var subnets []netip.Prefix
	for _, a := range ifAddrs {
		if n, ok := a.(*net.IPNet); ok {
			if p, err := netip.ParsePrefix(n.String()); err == nil && p.Addr().Unmap().Is4() && p.Bits() < 32 {
				subnets = append(subnets, netip.PrefixFrom(p.Addr().Unmap(), p.Bits()).Masked())
			}
		}
	}
	for _, a := range shared {
		if len(subnets) > 0 && !slices.ContainsFunc(subnets, func(p netip.Prefix) bool { return p.Contains(a) }) {
			return fmt.Errorf("--share %s is outside the subnets of %s (%v): the clients on the segment would not ARP for it", a, ifname, subnets)
		}
	}
	return nil
}

// openSharedPath builds floatip's table for the shared addresses, every
// bucket dropped until the engine decides.
func openSharedPath(cfg *config, index *system.LinkIndex, log *slog.Logger) (*sharedPath, error) {
	table, err := clusterip.Open(clusterip.Config{Interface: cfg.ifname, Addrs: cfg.shared, Buckets: cfg.buckets,
		Hash: cfg.hash, Seed: clusterip.Seed(cfg.shared),
		// The engine renews the buckets every interval, just after its
		// probe: a process killed with -9 stops serving them a little
		// before the other nodes take them, at the dead time after that
		// probe (a short gap, never two owners).
		Lease: time.Duration(cfg.machine.Misses)*cfg.machine.Interval - cfg.machine.Interval/10}, 0)
	if err != nil {
		return nil, fmt.Errorf("--share: %w", err)
	}
	p := &sharedPath{ifname: cfg.ifname, log: log, table: table, shared: cfg.shared}
	for _, a := range cfg.shared {
		p.addrs = append(p.addrs, system.NewAddress(cfg.ifname, a, cfg.label, index))
	}
	return p, nil
}

// Up puts the addresses on the interface (the table already answers ARP
// for them with the cluster MAC) and joins the multicast groups, once.
func (p *sharedPath) Up() error {
	var errs []error
	for _, a := range p.addrs {
		if err := a.Add(); err != nil {
			errs = append(errs, err)
		}
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if len(p.joins) == 0 {
		for _, a := range p.shared {
			j, err := clusterip.Join(p.ifname, a)
			if err != nil {
				errs = append(errs, fmt.Errorf("join the multicast group of %s: %w", a, err))
				continue
			}
			p.joins = append(p.joins, j)
		}
	}
	return errors.Join(errs...)
}

func (p *sharedPath) SetBuckets(mine, draining, incoming []int, expire map[int]time.Duration) error {
	if err := p.table.Set(clusterip.Buckets{Mine: mine, Draining: draining, Incoming: incoming, Expire: expire}); err != nil {
		return err
	}
	p.mu.Lock()
	p.mine, p.draining, p.incoming = len(mine), len(draining), len(incoming)
	p.mu.Unlock()
	return nil
}

// stats is the metrics' view.
func (p *sharedPath) stats() (status.SharedStats, error) {
	accepted, dropped, err := p.table.Counters()
	p.mu.Lock()
	defer p.mu.Unlock()
	return status.SharedStats{Interface: p.ifname, Mine: p.mine, Draining: p.draining, Incoming: p.incoming,
		Accepted: accepted, Dropped: dropped}, err
}

// Close undoes everything: the memberships, the addresses, the table.
func (p *sharedPath) Close() error {
	var errs []error
	p.mu.Lock()
	for _, j := range p.joins {
		errs = append(errs, j.Close())
	}
	p.joins = nil
	p.mu.Unlock()
	for _, a := range p.addrs {
		if err := a.Remove(); err != nil {
			errs = append(errs, err)
		}
	}
	errs = append(errs, p.table.Close())
	return errors.Join(errs...)
}
