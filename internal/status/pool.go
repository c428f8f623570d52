package status

import (
	"bytes"
	"fmt"
	"net"
	"net/netip"
	"slices"

	"floatip/internal/event"
)

// What --spread adds to the status lines and the metrics: each VIP's
// assignee (the engine's pool view tells the observers when it changes).

// poolAssignee is who a pooled VIP is assigned to, as the board keeps it.
type poolAssignee struct {
	mac  net.HardwareAddr // nil: nobody yet (no members)
	self bool             // this node
}

// Assigned records the assignee, shown after the VIP's state on the status
// Lines and by `floatip status`.
func (b *Board) Assigned(vip netip.Addr, assignee net.HardwareAddr, self bool) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.assign == nil {
		b.assign = map[netip.Addr]poolAssignee{}
	}
	b.assign[vip] = poolAssignee{mac: slices.Clone(assignee), self: self}
	if b.onUpdate != nil {
		b.onUpdate(b.summaryLocked())
	}
}

// assignText is the end of a status line for a pooled VIP ("" otherwise).
func (b *Board) assignText(vip netip.Addr) string {
	a, ok := b.assign[vip]
	if !ok {
		return ""
	}
	var mac string
	if a.mac != nil {
		mac = a.mac.String()
	}
	return ", assigned to " + assigneeName(a.self, mac)
}

// Assigned records a pooled VIP's assignee for floatip_pool_assigned.
func (m *Metrics) Assigned(vip netip.Addr, assignee net.HardwareAddr, self bool) {
	m.mu.Lock()
	defer m.mu.Unlock()
	e := m.entry(vip)
	e.pooled, e.assignedHere, e.assignee = true, self, ""
	if assignee != nil {
		e.assignee = assignee.String()
	}
}

// writePool renders the pool's family (only with --spread): per VIP, who
// should hold it and who is seen holding it; 1 when it is this node's.
func (m *Metrics) writePool(b *bytes.Buffer, vips []netip.Addr) {
	var pooled []netip.Addr
	for _, vip := range vips {
		if m.vips[vip].pooled {
			pooled = append(pooled, vip)
		}
	}
	if len(pooled) == 0 {
		return
	}
	metricFamily(b, "floatip_pool_assigned", "gauge",
		"--spread: 1 when the VIP is assigned to this node; assignee is the node that should hold it, holder the node that does (\"this node\" when it is us, empty when unknown).")
	for _, vip := range pooled {
		e := m.vips[vip]
		holder := e.holder
		if e.state == event.Active {
			holder = "this node"
		}
		v := 0
		if e.assignedHere {
			v = 1
		}
		fmt.Fprintf(b, "floatip_pool_assigned{%s,assignee=\"%s\",holder=\"%s\"} %d\n",
			vipLabels(vip, e), escapeLabel(e.assignee), escapeLabel(holder), v)
	}
}
