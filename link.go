package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"time"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

// linkStatus is what the daemon needs to know about its interface.
type linkStatus struct {
	exists bool
	usable bool // administratively up with carrier
	index  int
}

// watchEvent is one change seen through netlink.
type watchEvent struct {
	link        *linkStatus
	addrRemoved netip.Addr // a /32 (/128) deleted from our interface
	addrAdded   netip.Addr // a /32 (/128) added to our interface (by us, or by hand)
	resync      bool       // the subscription was (re)established: state may have been missed
}

// linkWatcher follows one interface by name through netlink subscriptions
// (no polling): it appears, goes up or down, is deleted, loses addresses.
type linkWatcher struct {
	ifname string
	log    *slog.Logger
}

// Run sends events to out until ctx ends, then returns nil. A failed
// subscription is re-established after a pause, followed by a resync.
func (w *linkWatcher) Run(ctx context.Context, out chan<- watchEvent) error {
	for {
		err := w.subscribeOnce(ctx, out)
		if ctx.Err() != nil {
			return nil
		}
		w.log.Warn("netlink subscription failed; subscribing again", "err", err)
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(time.Second):
		}
	}
}

func (w *linkWatcher) subscribeOnce(ctx context.Context, out chan<- watchEvent) error {
	done := make(chan struct{})
	links := make(chan netlink.LinkUpdate, 64)
	addrs := make(chan netlink.AddrUpdate, 64)
	failed := make(chan error, 2)
	onError := func(err error) {
		select {
		case failed <- err:
		default:
		}
	}
	defer func() {
		close(done)
		// The library closes the channels once its goroutines notice done;
		// drain them until then so that they never block on a send.
		go func() {
			for range links {
			}
		}()
		go func() {
			for range addrs {
			}
		}()
	}()
	if err := netlink.LinkSubscribeWithOptions(links, done, netlink.LinkSubscribeOptions{ErrorCallback: onError}); err != nil {
		return fmt.Errorf("subscribe to link updates: %w", err)
	}
	if err := netlink.AddrSubscribeWithOptions(addrs, done, netlink.AddrSubscribeOptions{ErrorCallback: onError}); err != nil {
		return fmt.Errorf("subscribe to address updates: %w", err)
	}
	// Subscribed first, then read the current state: nothing falls between.
	status := w.current()
	first := status // a copy: the loop reads it after status changes
	if !send(ctx, out, watchEvent{link: &first, resync: true}) {
		return nil
	}
	for {
		select {
		case <-ctx.Done():
			return nil
		case err := <-failed:
			return err
		case u, ok := <-links:
			if !ok {
				return errors.New("link subscription closed")
			}
			if u.Attrs().Name != w.ifname && u.Attrs().Index != status.index {
				continue
			}
			status = statusFromUpdate(u, w.ifname)
			sent := status // the loop reads it after we overwrite status
			if !send(ctx, out, watchEvent{link: &sent}) {
				return nil
			}
		case u, ok := <-addrs:
			if !ok {
				return errors.New("address subscription closed")
			}
			ones, _ := u.LinkAddress.Mask.Size()
			ip, valid := addrFromNetlink(u.LinkAddress.IP)
			if !valid || ones != ip.BitLen() || u.LinkIndex != status.index {
				continue
			}
			ev := watchEvent{addrRemoved: ip}
			if u.NewAddr {
				ev = watchEvent{addrAdded: ip}
			}
			if !send(ctx, out, ev) {
				return nil
			}
		}
	}
}

func send(ctx context.Context, out chan<- watchEvent, ev watchEvent) bool {
	select {
	case out <- ev:
		return true
	case <-ctx.Done():
		return false
	}
}

// current reads the interface's state by name.
func (w *linkWatcher) current() linkStatus {
	link, err := netlink.LinkByName(w.ifname)
	if err != nil {
		return linkStatus{}
	}
	return linkStatus{exists: true, usable: linkUsable(link.Attrs()), index: link.Attrs().Index}
}

func statusFromUpdate(u netlink.LinkUpdate, ifname string) linkStatus {
	if u.Header.Type == unix.RTM_DELLINK || u.Attrs().Name != ifname {
		return linkStatus{} // deleted, or renamed away from the name we follow
	}
	return linkStatus{exists: true, usable: linkUsable(u.Attrs()), index: u.Attrs().Index}
}

// linkUsable: up, and with carrier (operstate up, or unknown for devices
// that do not report one).
func linkUsable(a *netlink.LinkAttrs) bool {
	return a.Flags&net.FlagUp != 0 && (a.OperState == netlink.OperUp || a.OperState == netlink.OperUnknown)
}
