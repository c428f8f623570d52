package main

// The ARP wire begins here: `floatip announce` sends unsolicited ARP as
// arping -U or -A does (unsolicited NAs for IPv6), and the one-shot
// commands open the interface's socket. Frames, sockets and BPF filters
// are internal/wire's.

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"time"

	"floatip/internal/privilege"
	"floatip/internal/system"
	"floatip/internal/wire"
	"floatip/internal/wire/frame"
)

type announceCmd struct {
	Interface string        `short:"i" required:"" placeholder:"IFACE" help:"Interface to announce on."`
	Count     int           `short:"c" default:"3" help:"Announcements to send, the first at once."`
	Spacing   time.Duration `default:"1s" help:"Time between announcements (arping sends one per second)."`
	Reply     bool          `help:"Send the reply form, as arping -A (default: the request form, as arping -U)."`
	VIP       string        `arg:"" name:"vip" help:"IPv4 or IPv6 address to announce; it must be configured on the interface."`
}

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
	run      func(ctx context.Context, deliver func(frame.Frame)) error
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
			probe:    func() error { return nd.Probe(ip, nil, frame.BroadcastMAC) },
			announce: func() error { return nd.Announce(ip) }}, nil
	}
	sock, err := wire.OpenARPSocket(ifi)
	if err != nil {
		return nil, err
	}
	probe, err := frame.ProbePacket(sock.MAC, ip, nil)
	if err != nil {
		_ = sock.Close()
		return nil, fmt.Errorf("build probe for %s: %w", ip, err)
	}
	ann, err := frame.AnnouncePacket(sock.MAC, ip, reply)
	if err != nil {
		_ = sock.Close()
		return nil, err
	}
	return &oneShotSocket{mac: sock.MAC, run: sock.Run, close: sock.Close,
		probe:    func() error { return sock.Send(probe, frame.BroadcastMAC) },
		announce: func() error { return sock.Send(ann, frame.BroadcastMAC) }}, nil
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
