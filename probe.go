package main

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"net/netip"
	"time"
)

// debouncer decides when a silent VIP is free. A standby probes every
// interval while the holder answers. One unanswered probe switches it to
// fast re-probing (a quarter of the interval), so a single lost frame is
// re-checked at once instead of counting toward a low bar. The VIP is free
// only when at least `misses` probes in a row went unanswered AND no answer
// was seen for misses × interval. With 5 % loss a false "free" needs about
// five losses in a row; a real death is seen within misses × interval of
// the holder's last answer.
type debouncer struct {
	interval time.Duration
	misses   int

	lastAnswer  time.Time // last sign of life from a holder
	missedInRow int
}

func newDebouncer(interval time.Duration, misses int, now time.Time) *debouncer {
	// Start as if the holder had just answered: a booting standby waits a
	// full dead time before it may claim.
	return &debouncer{interval: interval, misses: misses, lastAnswer: now}
}

// answered records a sign of life from the holder.
func (d *debouncer) answered(now time.Time) {
	d.lastAnswer = now
	d.missedInRow = 0
}

// missed records one probe that went unanswered for its whole spacing.
func (d *debouncer) missed() { d.missedInRow++ }

// deadTime is how long the holder must be silent before the VIP is free.
func (d *debouncer) deadTime() time.Duration { return time.Duration(d.misses) * d.interval }

// free reports whether the holder has been silent long enough.
func (d *debouncer) free(now time.Time) bool {
	return d.missedInRow >= d.misses && now.Sub(d.lastAnswer) >= d.deadTime()
}

// spacing is the time until the next probe: the interval while the holder
// answers, a quarter of it once a probe went unanswered.
func (d *debouncer) spacing() time.Duration {
	if d.missedInRow == 0 {
		return d.interval
	}
	return fastSpacing(d.interval)
}

// forceFree marks the VIP free at once: its holder said it is leaving.
func (d *debouncer) forceFree(now time.Time) {
	d.missedInRow = d.misses
	d.lastAnswer = now.Add(-d.deadTime())
}

func fastSpacing(interval time.Duration) time.Duration {
	return max(interval/4, time.Millisecond)
}

// rank orders floatip nodes: the higher priority wins; between equal
// priorities the numerically lower MAC wins. Every node computes the same
// order from what it hears, so no two nodes disagree on a winner.
type rank struct {
	priority uint8
	mac      net.HardwareAddr
}

// outranks reports whether a beats b.
func (a rank) outranks(b rank) bool {
	if a.priority != b.priority {
		return a.priority > b.priority
	}
	return bytes.Compare(a.mac, b.mac) < 0
}

func (a rank) String() string { return fmt.Sprintf("priority %d, %s", a.priority, a.mac) }

// peer is another floatip node heard on the LAN through its tagged probes.
type peer struct {
	rank     rank
	holder   bool // its last probe said it holds the VIP
	lastSeen time.Time
}

// peerTable remembers the floatip nodes probing one VIP.
type peerTable map[string]*peer

// observe records a tagged probe from mac.
func (t peerTable) observe(mac net.HardwareAddr, tag peerTag, now time.Time) {
	key := mac.String()
	p := t[key]
	if p == nil {
		p = &peer{rank: rank{mac: append(net.HardwareAddr(nil), mac...)}}
		t[key] = p
	}
	p.rank.priority = tag.priority
	p.holder = tag.flags&flagHolder != 0
	p.lastSeen = now
	if tag.flags&flagReleasing != 0 {
		// A leaving node is neither holder nor standby any more.
		p.holder = false
		p.lastSeen = time.Time{}
	}
}

// known returns the rank of a floatip node by MAC, if it has been heard.
func (t peerTable) known(mac net.HardwareAddr) (rank, bool) {
	p := t[mac.String()]
	if p == nil {
		return rank{}, false
	}
	return p.rank, true
}

// betterStandby returns a standby that outranks self and was heard within
// window: while one is alive, self leaves the claim to it.
func (t peerTable) betterStandby(self rank, now time.Time, window time.Duration) (rank, bool) {
	var best *peer
	for _, p := range t {
		if p.holder || now.Sub(p.lastSeen) > window || !p.rank.outranks(self) {
			continue
		}
		if best == nil || p.rank.outranks(best.rank) {
			best = p
		}
	}
	if best == nil {
		return rank{}, false
	}
	return best.rank, true
}

// conflictAction is what an active node does about another holder.
type conflictAction int

const (
	// defend: announce (rate-limited) and keep the VIP.
	defend conflictAction = iota
	// yield: the other node outranks us; it announces, then we remove.
	yield
)

// resolveConflict decides a split brain the same way on both sides without
// talking: the better rank keeps the VIP. A holder that is not floatip has no
// rank: it is defended against as RFC 5227 §2.4(c) says, never yielded to.
func resolveConflict(self rank, other rank, otherIsFloatip bool) conflictAction {
	if otherIsFloatip && other.outranks(self) {
		return yield
	}
	return defend
}

// holderEvidence reports whether an ARP packet shows that a node other than
// own holds vip: any request or reply with vip as the sender address.
func holderEvidence(f arpFrame, vip netip.Addr, own net.HardwareAddr) bool {
	return f.pkt.SenderIP == vip && f.fromOther(own)
}

// isGratuitous reports whether the packet announces its sender address
// (SPA = TPA): the form of arping -U/-A and of floatip's own claims.
func isGratuitous(f arpFrame) bool { return f.pkt.SenderIP == f.pkt.TargetIP }

// probeRound sends up to count plain RFC 5227 probes for vip, spaced by
// wait, and returns the MAC of the first node that answers, or nil if none
// did. It is the one-shot check behind `floatip probe`.
func probeRound(ctx context.Context, sock *arpSocket, vip netip.Addr, count int, wait time.Duration) (net.HardwareAddr, error) {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	answers := make(chan net.HardwareAddr, 1)
	readErr := make(chan error, 1)
	go func() {
		readErr <- sock.Run(ctx, func(f arpFrame) {
			if holderEvidence(f, vip, sock.mac) {
				select {
				case answers <- f.pkt.SenderHardwareAddr:
				default:
				}
			}
		})
	}()
	pkt, err := probePacket(sock.mac, vip, nil)
	if err != nil {
		return nil, fmt.Errorf("build probe for %s: %w", vip, err)
	}
	for range count {
		if err := sock.send(pkt, broadcastMAC); err != nil {
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
