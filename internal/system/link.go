package system

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

// LinkStatus is what the daemon needs to know about its interface.
type LinkStatus struct {
	Exists bool
	Usable bool // administratively up with carrier
	Index  int
}

// WatchEvent is one change seen through netlink.
type WatchEvent struct {
	Link        *LinkStatus
	AddrRemoved netip.Addr // a /32 (/128) deleted from our interface
	AddrAdded   netip.Addr // a /32 (/128) added to our interface (by us, or by hand)
	Resync      bool       // the subscription was (re)established: state may have been missed
}

// LinkWatcher follows one interface by name through netlink subscriptions
// (no polling): it appears, goes up or down, is deleted, loses addresses.
type LinkWatcher struct {
	ifname string
	log    *slog.Logger
}

// Run sends events to out until ctx ends, then returns nil. A failed
// subscription is re-established after a pause, followed by a resync.
// NewLinkWatcher watches the interface ifname, which may not exist yet.
func NewLinkWatcher(ifname string, log *slog.Logger) *LinkWatcher {
	return &LinkWatcher{ifname: ifname, log: log}
}

func (w *LinkWatcher) Run(ctx context.Context, out chan<- WatchEvent) error {
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

func (w *LinkWatcher) subscribeOnce(ctx context.Context, out chan<- WatchEvent) error {
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
	if !send(ctx, out, WatchEvent{Link: &first, Resync: true}) {
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
			if u.Attrs().Name != w.ifname && u.Attrs().Index != status.Index {
				continue
			}
			status = statusFromUpdate(u, w.ifname)
			sent := status // the loop reads it after we overwrite status
			if !send(ctx, out, WatchEvent{Link: &sent}) {
				return nil
			}
		case u, ok := <-addrs:
			if !ok {
				return errors.New("address subscription closed")
			}
			ones, _ := u.LinkAddress.Mask.Size()
			ip, valid := addrFromNetlink(u.LinkAddress.IP)
			if !valid || ones != ip.BitLen() || u.LinkIndex != status.Index {
				continue
			}
			ev := WatchEvent{AddrRemoved: ip}
			if u.NewAddr {
				ev = WatchEvent{AddrAdded: ip}
			}
			if !send(ctx, out, ev) {
				return nil
			}
		}
	}
}

func send(ctx context.Context, out chan<- WatchEvent, ev WatchEvent) bool {
	select {
	case out <- ev:
		return true
	case <-ctx.Done():
		return false
	}
}

// current reads the interface's state by name.
func (w *LinkWatcher) current() LinkStatus {
	link, err := netlink.LinkByName(w.ifname)
	if err != nil {
		return LinkStatus{}
	}
	return LinkStatus{Exists: true, Usable: linkUsable(link.Attrs()), Index: link.Attrs().Index}
}

func statusFromUpdate(u netlink.LinkUpdate, ifname string) LinkStatus {
	if u.Header.Type == unix.RTM_DELLINK || u.Attrs().Name != ifname {
		return LinkStatus{} // deleted, or renamed away from the name we follow
	}
	return LinkStatus{Exists: true, Usable: linkUsable(u.Attrs()), Index: u.Attrs().Index}
}

// linkUsable: up, and with carrier (operstate up, or unknown for devices
// that do not report one).
func linkUsable(a *netlink.LinkAttrs) bool {
	return a.Flags&net.FlagUp != 0 && (a.OperState == netlink.OperUp || a.OperState == netlink.OperUnknown)
}
