package main

// Probing begins here: `floatip probe`, one RFC 5227 look at the LAN (an
// NDP duplicate address detection for IPv6) that says who, if anyone, holds
// an address. The daemon's own probing (a standby's debounced probes, the
// holder watch, self-checks) is the decision core's: internal/engine.

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"time"

	"floatip/internal/system"
	"floatip/internal/wire/frame"
)

type probeCmd struct {
	Interface string        `short:"i" required:"" placeholder:"IFACE" help:"Interface to probe on."`
	Count     int           `default:"3" help:"Probes to send (stops at the first answer)."`
	Wait      time.Duration `default:"500ms" help:"How long to wait for an answer after each probe."`
	VIP       string        `arg:"" name:"vip" help:"IPv4 or IPv6 address to probe (IPv6: duplicate address detection, as ndisc6 -1 ... but from ::)."`
}

func (p *probeCmd) run(e *env) (held bool, err error) {
	vip, err := parseVIP(p.VIP)
	if err != nil {
		return false, err
	}
	if p.Count < 1 || p.Wait <= 0 {
		return false, errors.New("--count must be at least 1 and --wait positive")
	}
	ifi, err := openInterface(p.Interface)
	if err != nil {
		return false, err
	}
	sock, err := openOneShot(ifi, vip, false)
	if err != nil {
		return false, err
	}
	defer sock.close()
	// Our own kernel never answers our probe: look at the host first.
	if local, err := system.HasAddress(p.Interface, vip); err != nil {
		return false, err
	} else if local {
		fmt.Fprintln(e.stdout, sock.mac)
		fmt.Fprintf(e.stderr, "floatip: %s is held by this host (%s)\n", vip, p.Interface)
		return true, nil
	}
	holder, err := probeRound(e.ctx, sock, vip, p.Count, p.Wait)
	if err != nil {
		return false, fmt.Errorf("probe %s on %s: %w", vip, p.Interface, err)
	}
	if holder == nil {
		fmt.Fprintln(e.stdout, "free")
		return false, nil
	}
	fmt.Fprintln(e.stdout, holder)
	return true, nil
}

// probeRound sends up to count plain RFC 5227 probes for vip, spaced by
// wait, and returns the MAC of the first node that answers, or nil if none
// did. It is the one-shot check behind `floatip probe`.
func probeRound(ctx context.Context, sock *oneShotSocket, vip netip.Addr, count int, wait time.Duration) (net.HardwareAddr, error) {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	answers := make(chan net.HardwareAddr, 1)
	readErr := make(chan error, 1)
	go func() {
		readErr <- sock.run(ctx, func(f frame.Frame) {
			if frame.HolderEvidence(f, vip, sock.mac) {
				select {
				case answers <- f.Packet.SenderHardwareAddr:
				default:
				}
			}
		})
	}()
	for range count {
		if err := sock.probe(); err != nil {
			return nil, err
		}
		timer := time.NewTimer(wait)
		select {
		case mac := <-answers:
			timer.Stop()
			return mac, nil
		case err := <-readErr:
			timer.Stop()
			if err == nil {
				err = ctx.Err()
			}
			return nil, err
		case <-ctx.Done():
			timer.Stop()
			return nil, ctx.Err()
		case <-timer.C:
		}
	}
	return nil, nil
}
