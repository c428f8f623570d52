package status

import (
	"net"
	"net/netip"
	"slices"
	"strings"
	"sync"
	"time"

	"floatip/internal/event"
)

// Board keeps the live state of every VIP for people: SIGUSR1 logs
// its lines, and systemd's STATUS= shows its summary. It is an observer.
//
// A event.Change with From == To updates the facts (initial state, a new
// holder) without restarting the "since" clock of an unchanged state.
type Board struct {
	mu       sync.Mutex
	vips     map[netip.Addr]*vipStatus
	assign   map[netip.Addr]poolAssignee // --spread: each VIP's assignee (pool.go)
	onUpdate func(summary string)        // may be nil; called under the lock, in order: must not block
	now      func() time.Time            // the clock of lines and summary; tests replace it
}

type vipStatus struct {
	iface  string
	state  event.State
	holder net.HardwareAddr
	since  time.Time
}

// NewBoard makes a board; onUpdate (e.g. notifier.post) receives the
// new summary after every change.
func NewBoard(onUpdate func(summary string)) *Board {
	return &Board{vips: map[netip.Addr]*vipStatus{}, onUpdate: onUpdate, now: time.Now}
}

func (b *Board) StateChanged(c event.Change) {
	at := c.At
	if at.IsZero() {
		at = b.now()
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	s := b.vips[c.VIP]
	if s == nil || s.state != c.To {
		s = &vipStatus{state: c.To, since: at}
		b.vips[c.VIP] = s
	}
	s.iface = c.Interface
	s.holder = slices.Clone(c.Holder)
	if b.onUpdate != nil {
		b.onUpdate(b.summaryLocked())
	}
}

func (b *Board) Counted(netip.Addr, string) {}

// Lines is one human line per VIP, ordered by address, with the time spent
// in the current state: for a log line written now.
func (b *Board) Lines() []string {
	b.mu.Lock()
	defer b.mu.Unlock()
	now := b.now()
	var out []string
	for _, vip := range b.sortedLocked() {
		out = append(out, statusLine(vip, *b.vips[vip], now, true)+b.assignText(vip))
	}
	return out
}

// summary is all VIPs on one line, without ages (which a STATUS= line
// would show frozen): for systemd.
func (b *Board) summary() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.summaryLocked()
}

func (b *Board) summaryLocked() string {
	if len(b.vips) == 0 {
		return "starting"
	}
	var parts []string
	now := b.now()
	for _, vip := range b.sortedLocked() {
		parts = append(parts, statusLine(vip, *b.vips[vip], now, false)+b.assignText(vip))
	}
	return strings.Join(parts, "; ")
}

func (b *Board) sortedLocked() []netip.Addr {
	vips := make([]netip.Addr, 0, len(b.vips))
	for vip := range b.vips {
		vips = append(vips, vip)
	}
	slices.SortFunc(vips, netip.Addr.Compare)
	return vips
}

// statusLine describes one VIP, e.g.
// "192.0.2.50 on eth0: standby since 12:03:04 (3m2s), held by 02:00:00:00:00:01".
// The time of day is shown in now's location, with the date when it is not
// today's.
func statusLine(vip netip.Addr, s vipStatus, now time.Time, withAge bool) string {
	var sb strings.Builder
	sb.WriteString(vip.String())
	if s.iface != "" {
		sb.WriteString(" on " + s.iface)
	}
	sb.WriteString(": " + s.state.String() + " since " + sinceText(s.since, now, withAge))
	switch {
	case s.state == event.Standby && s.holder == nil:
		sb.WriteString(", no holder seen")
	case s.state == event.Standby:
		sb.WriteString(", held by " + s.holder.String())
	case s.state == event.Fencing && s.holder != nil:
		sb.WriteString(", silent holder " + s.holder.String())
	case (s.state == event.Claiming || s.state == event.Active) && s.holder != nil:
		// Active: the holder it took over from (a claim reports it);
		// another holder while active is a split brain, in the log.
		sb.WriteString(", previous holder " + s.holder.String())
	case s.state == event.Yielding && s.holder != nil:
		sb.WriteString(", yielding to " + s.holder.String())
	case s.holder != nil:
		sb.WriteString(", holder " + s.holder.String())
	}
	return sb.String()
}

// sinceText is a moment as people read it: the time of day in now's
// location, with the date when it is not today's, and with withAge the time
// since then, e.g. "12:03:04 (3m2s)".
func sinceText(at, now time.Time, withAge bool) string {
	since := at.In(now.Location())
	layout := "15:04:05"
	if y, m, d := since.Date(); y != now.Year() || m != now.Month() || d != now.Day() {
		layout = "2006-01-02 15:04:05"
	}
	text := since.Format(layout)
	if withAge {
		text += " (" + max(now.Sub(at), 0).Round(time.Second).String() + ")"
	}
	return text
}

// vipSnapshot is one VIP's entry on the board at one moment.
type vipSnapshot struct {
	vip    netip.Addr
	status vipStatus
	assign *poolAssignee // nil: not pooled (or no assignment reported yet)
}

// snapshot copies the board, ordered by address: for `floatip status`.
func (b *Board) snapshot() []vipSnapshot {
	b.mu.Lock()
	defer b.mu.Unlock()
	out := make([]vipSnapshot, 0, len(b.vips))
	for _, vip := range b.sortedLocked() {
		s := vipSnapshot{vip: vip, status: *b.vips[vip]}
		s.status.holder = slices.Clone(s.status.holder)
		if a, ok := b.assign[vip]; ok {
			a.mac = slices.Clone(a.mac)
			s.assign = &a
		}
		out = append(out, s)
	}
	return out
}
