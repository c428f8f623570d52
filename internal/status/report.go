package status

// What `floatip status` shows of one interface's daemon: this node, the
// floatip nodes it hears, and per VIP its state, who holds it and (with
// --spread) who should. The report is built in the interface's loop from
// the status board (per VIP: the same facts as the SIGUSR1 lines) and the
// Group view (this node, its peers, the pool's members), so one report is
// one moment. It travels as JSON over the control socket (control.go) and
// is printed as a table by the command.

import (
	"bytes"
	"fmt"
	"io"
	"slices"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"floatip/internal/engine"

	"floatip/internal/event"
)

// Report is one daemon's answer, the JSON of GET /status.
type Report struct {
	Interface string         `json:"interface"`
	Version   string         `json:"version"`
	Now       time.Time      `json:"now"`      // the daemon's clock when it answered
	MAC       string         `json:"mac"`      // this node's; "" while the interface is down
	Priority  int            `json:"priority"` // this node's --priority
	Healthy   bool           `json:"healthy"`  // false: its --check fails, it claims nothing
	Pool      bool           `json:"pool"`     // --spread
	Members   []memberStatus `json:"members,omitempty"`
	Peers     []peerStatus   `json:"peers"`
	VIPs      []vipReport    `json:"vips"`
	Shared    *sharedStatus  `json:"shared,omitempty"` // --share
}

// sharedStatus is the shared addresses (--share): the buckets of the flow
// hash, who serves which, and what this node serves.
type sharedStatus struct {
	Addrs    []string           `json:"addresses"`
	Buckets  int                `json:"buckets"`
	Nodes    []sharedNodeStatus `json:"nodes"`              // the members, by MAC
	Mine     []int              `json:"mine"`               // served here: new and established flows
	Draining []int              `json:"draining,omitempty"` // moved away: established TCP flows only
	Incoming []int              `json:"incoming,omitempty"` // moved here: new flows only
}

// sharedNodeStatus is one member's buckets as this node computes them.
type sharedNodeStatus struct {
	MAC     string `json:"mac"`
	Self    bool   `json:"self,omitempty"`
	Buckets []int  `json:"buckets"`
}

// memberStatus is a member of the pool as this node sees it (--spread).
type memberStatus struct {
	MAC      string `json:"mac"`
	Priority int    `json:"priority"`
	Self     bool   `json:"self,omitempty"`
}

// peerStatus is another floatip node this node has heard (tagged frames).
type peerStatus struct {
	MAC        string    `json:"mac"`
	Priority   int       `json:"priority"`
	StandAside bool      `json:"stand_aside,omitempty"` // its health check fails
	LastHeard  time.Time `json:"last_heard"`
}

// vipReport is one VIP as this node sees it.
type vipReport struct {
	VIP   string    `json:"vip"`
	State string    `json:"state"` // standby, claiming, fencing, active, yielding, adopting
	Since time.Time `json:"since"` // in this state since
	// HeldHere: the address is on this node's interface (active, yielding,
	// adopting).
	HeldHere bool `json:"held_here"`
	// Holder is another node seen holding it ("" none seen); in claiming
	// and fencing SilentHolder is the holder that went silent instead.
	Holder         string         `json:"holder,omitempty"`
	SilentHolder   string         `json:"silent_holder,omitempty"`
	HolderPriority int            `json:"holder_priority,omitempty"` // 0: unknown
	Pool           *vipPoolStatus `json:"pool,omitempty"`            // --spread only
}

// vipPoolStatus is who should hold a pooled VIP.
type vipPoolStatus struct {
	Assignee     string `json:"assignee"` // "" nobody yet (no members)
	AssignedHere bool   `json:"assigned_here"`
	// AsAssigned: held by its assignee alone, as far as this node sees.
	AsAssigned bool `json:"as_assigned"`
}

// buildStatusReport puts the group's facts and the board's per-VIP ones
// together, as of now.
func buildStatusReport(f engine.Facts, board *Board, ifname, version string, now time.Time) Report {
	r := Report{Interface: ifname, Version: version, Now: now, Priority: f.Priority, Healthy: f.Healthy,
		Pool: f.Pool, Peers: []peerStatus{}, VIPs: []vipReport{}}
	if f.MAC != nil {
		r.MAC = f.MAC.String()
	}
	for _, p := range f.Peers {
		r.Peers = append(r.Peers, peerStatus{MAC: p.MAC.String(), Priority: p.Priority, StandAside: p.StandAside, LastHeard: p.LastHeard})
	}
	slices.SortFunc(r.Peers, func(a, b peerStatus) int { return strings.Compare(a.MAC, b.MAC) })
	for _, m := range f.Members {
		r.Members = append(r.Members, memberStatus{MAC: m.MAC.String(), Priority: m.Weight, Self: bytes.Equal(m.MAC, f.MAC)})
	}
	if sh := f.Shared; sh != nil {
		st := &sharedStatus{Buckets: sh.Buckets, Mine: nonNil(sh.Mine), Draining: sh.Draining, Incoming: sh.Incoming, Nodes: []sharedNodeStatus{}}
		for _, a := range sh.Addrs {
			st.Addrs = append(st.Addrs, a.String())
		}
		for mac, buckets := range sh.Owners {
			st.Nodes = append(st.Nodes, sharedNodeStatus{MAC: mac, Self: f.MAC != nil && mac == f.MAC.String(), Buckets: buckets})
		}
		slices.SortFunc(st.Nodes, func(a, b sharedNodeStatus) int { return strings.Compare(a.MAC, b.MAC) })
		r.Shared = st
	}
	for _, s := range board.snapshot() {
		v := vipReport{VIP: s.vip.String(), State: s.status.state.String(), Since: s.status.since}
		if h := s.status.holder; h != nil {
			switch s.status.state {
			case event.Standby, event.Yielding:
				v.Holder = h.String()
			case event.Claiming, event.Fencing:
				v.SilentHolder = h.String()
			}
			// active: the holder it took over from; adopting: none.
			if v.Holder != "" || v.SilentHolder != "" {
				if prio, ok := f.Priorities[h.String()]; ok {
					v.HolderPriority = prio
				}
			}
		}
		switch s.status.state {
		case event.Active, event.Yielding, event.Adopting:
			v.HeldHere = true
		}
		if a := s.assign; a != nil {
			p := &vipPoolStatus{AssignedHere: a.self}
			if a.mac != nil {
				p.Assignee = a.mac.String()
			}
			p.AsAssigned = p.Assignee != "" && (a.self && v.HeldHere && v.Holder == "" ||
				!a.self && !v.HeldHere && v.Holder == p.Assignee)
			v.Pool = p
		}
		r.VIPs = append(r.VIPs, v)
	}
	return r
}

// WriteTable prints reports for people: per interface a header (this
// node, its peers, the pool's members) and one line per VIP. Times of day
// are shown in loc, ages against each daemon's own clock.
func WriteTable(w io.Writer, reports []Report, loc *time.Location) error {
	var b bytes.Buffer
	for i, r := range reports {
		if i > 0 {
			b.WriteString("\n")
		}
		now := r.Now.In(loc)
		node := r.MAC
		if node == "" {
			node = "(interface down)"
		}
		health := "healthy"
		if !r.Healthy {
			health = "unhealthy: claims nothing"
		}
		fmt.Fprintf(&b, "%s: this node %s, priority %d, %s\n", r.Interface, node, r.Priority, health)
		peers := make([]string, 0, len(r.Peers))
		for _, p := range r.Peers {
			s := fmt.Sprintf("%s priority %d, heard %s ago", p.MAC, p.Priority, ageText(now.Sub(p.LastHeard)))
			if p.StandAside {
				s += ", unhealthy"
			}
			peers = append(peers, s)
		}
		if len(peers) == 0 {
			peers = append(peers, "none heard")
		}
		fmt.Fprintf(&b, "  peers: %s\n", strings.Join(peers, "; "))
		if r.Pool {
			members := make([]string, 0, len(r.Members))
			for _, m := range r.Members {
				if m.Self {
					members = append(members, "this node")
				} else {
					members = append(members, m.MAC)
				}
			}
			if len(members) == 0 {
				members = append(members, "none yet")
			}
			fmt.Fprintf(&b, "  pool members (%d): %s\n", len(r.Members), strings.Join(members, ", "))
		}
		if sh := r.Shared; sh != nil {
			writeShared(&b, sh)
			if len(r.VIPs) == 0 {
				continue
			}
		}
		tw := tabwriter.NewWriter(&b, 0, 0, 2, ' ', 0)
		if r.Pool {
			fmt.Fprintln(tw, "VIP\tSTATE\tSINCE\tHOLDER\tASSIGNED TO\tAS ASSIGNED")
		} else {
			fmt.Fprintln(tw, "VIP\tSTATE\tSINCE\tHOLDER")
		}
		for _, v := range r.VIPs {
			line := v.VIP + "\t" + v.State + "\t" + sinceText(v.Since, now, true) + "\t" + holderText(v)
			if v.Pool != nil {
				line += "\t" + assigneeText(v.Pool) + "\t" + yesNo(v.Pool.AsAssigned)
			}
			fmt.Fprintln(tw, line)
		}
		if err := tw.Flush(); err != nil {
			return err
		}
	}
	_, err := w.Write(b.Bytes())
	return err
}

// holderText is the HOLDER column: this node, another node's MAC (with
// its priority when known), both in a split brain, or none.
func holderText(v vipReport) string {
	other := v.Holder
	if other != "" && v.HolderPriority > 0 {
		other += " (priority " + strconv.Itoa(v.HolderPriority) + ")"
	}
	switch {
	case v.HeldHere && other != "":
		return "this node and " + other
	case v.HeldHere:
		return "this node"
	case other != "":
		return other
	case v.SilentHolder != "":
		return "none (" + v.SilentHolder + " went silent)"
	}
	return "none"
}

// writeShared prints the shared addresses: what this node serves, and the
// buckets of every node.
func writeShared(b *bytes.Buffer, sh *sharedStatus) {
	fmt.Fprintf(b, "  shared %s: %d of %d buckets served here", strings.Join(sh.Addrs, ", "), len(sh.Mine), sh.Buckets)
	if len(sh.Draining)+len(sh.Incoming) > 0 {
		fmt.Fprintf(b, " (%d incoming: new flows only); %d draining (established flows only)", len(sh.Incoming), len(sh.Draining))
	}
	b.WriteString("\n")
	nodes := make([]string, 0, len(sh.Nodes))
	for _, n := range sh.Nodes {
		name := n.MAC
		if n.Self {
			name = "this node"
		}
		nodes = append(nodes, fmt.Sprintf("%s %d", name, len(n.Buckets)))
	}
	if len(nodes) == 0 {
		nodes = append(nodes, "none yet")
	}
	fmt.Fprintf(b, "  buckets per node: %s\n", strings.Join(nodes, ", "))
}

func nonNil(b []int) []int {
	if b == nil {
		return []int{}
	}
	return b
}

func assigneeText(p *vipPoolStatus) string { return assigneeName(p.AssignedHere, p.Assignee) }

// assigneeName names a pooled VIP's assignee the same way everywhere (the
// status table, the status lines): this node, nobody yet, or its MAC.
func assigneeName(here bool, mac string) string {
	switch {
	case here:
		return "this node"
	case mac == "":
		return "nobody yet"
	}
	return mac
}

func yesNo(ok bool) string {
	if ok {
		return "yes"
	}
	return "NO"
}

// ageText is a duration for people: tenths of a second below a minute.
func ageText(d time.Duration) string {
	d = max(d, 0)
	if d < time.Minute {
		return d.Round(100 * time.Millisecond).String()
	}
	return d.Round(time.Second).String()
}
