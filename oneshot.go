package main

// The one-shot commands, probe and announce: one look at the LAN or one
// burst of announcements, on an interface that must be up now.

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"time"

	"floatip/internal/system"

	"floatip/internal/wire"

	"floatip/internal/privilege"
)

// openInterface checks an interface that must exist and be up now (the
// one-shot commands do not wait).
func openInterface(name string) (*net.Interface, error) {
	if err := validInterfaceName(name); err != nil {
		return nil, err
	}
	ifi, err := net.InterfaceByName(name)
	if err != nil {
		return nil, fmt.Errorf("interface %s: %w", name, err)
	}
	if ifi.Flags&net.FlagUp == 0 {
		return nil, fmt.Errorf("interface %s is down", name)
	}
	if err := privilege.Check(); err != nil {
		return nil, err
	}
	return ifi, nil
}

// oneShotSocket is the ARP or NDP socket of a one-shot command, by the
// address's family.
type oneShotSocket struct {
	mac      net.HardwareAddr
	run      func(ctx context.Context, deliver func(wire.Frame)) error
	probe    func() error // one plain probe for the address
	announce func() error // one announcement of the address
	close    func() error
}

func openOneShot(ifi *net.Interface, ip netip.Addr, reply bool) (*oneShotSocket, error) {
	if ip.Is6() {
		nd, err := wire.OpenNDPSocket(ifi, nil)
		if err != nil {
			return nil, err
		}
		return &oneShotSocket{mac: nd.MAC, run: nd.Run, close: nd.Close,
			probe:    func() error { return nd.Probe(ip, nil, wire.BroadcastMAC) },
			announce: func() error { return nd.Announce(ip) }}, nil
	}
	sock, err := wire.OpenARPSocket(ifi)
	if err != nil {
		return nil, err
	}
	probe, err := wire.ProbePacket(sock.MAC, ip, nil)
	if err != nil {
		_ = sock.Close()
		return nil, fmt.Errorf("build probe for %s: %w", ip, err)
	}
	ann, err := wire.AnnouncePacket(sock.MAC, ip, reply)
	if err != nil {
		_ = sock.Close()
		return nil, err
	}
	return &oneShotSocket{mac: sock.MAC, run: sock.Run, close: sock.Close,
		probe:    func() error { return sock.Send(probe, wire.BroadcastMAC) },
		announce: func() error { return sock.Send(ann, wire.BroadcastMAC) }}, nil
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

func (a *announceCmd) run(e *env) error {
	vip, err := parseVIP(a.VIP)
	if err != nil {
		return err
	}
	if a.Count < 1 || a.Spacing <= 0 {
		return errors.New("--count must be at least 1 and --spacing positive")
	}
	if a.Reply && vip.Is6() {
		return fmt.Errorf("--reply is an ARP form; %s is IPv6, announced by unsolicited neighbour advertisements only", vip)
	}
	ifi, err := openInterface(a.Interface)
	if err != nil {
		return err
	}
	local, err := system.HasAddress(a.Interface, vip)
	if err != nil {
		return err
	}
	if !local {
		return fmt.Errorf("%s is not configured on %s: refusing to announce an address this host does not hold (it would steal it from its holder)", vip, a.Interface)
	}
	sock, err := openOneShot(ifi, vip, a.Reply)
	if err != nil {
		return err
	}
	defer sock.close()
	for i := range a.Count {
		if i > 0 {
			select {
			case <-e.ctx.Done():
				return nil
			case <-time.After(a.Spacing):
			}
		}
		if err := sock.announce(); err != nil {
			return err
		}
	}
	return nil
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
		readErr <- sock.run(ctx, func(f wire.Frame) {
			if wire.HolderEvidence(f, vip, sock.mac) {
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
