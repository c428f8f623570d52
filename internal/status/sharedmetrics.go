package status

import (
	"bytes"
	"fmt"
)

// SharedStats is what the data path of the shared addresses (--share)
// counts: the buckets this node serves, and the packets for the shared
// addresses it accepted and dropped (the kernel's counters).
type SharedStats struct {
	Interface                string
	Mine, Draining, Incoming int
	Accepted, Dropped        uint64
}

// SetShared makes the metrics show the shared addresses; stats is called
// on every scrape, from the scraper's goroutine, and must be safe there.
func (m *Metrics) SetShared(stats func() (SharedStats, error)) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.shared = stats
}

// writeShared renders the shared addresses' families, when there are any.
func (m *Metrics) writeShared(b *bytes.Buffer, stats func() (SharedStats, error)) {
	if stats == nil {
		return
	}
	s, err := stats()
	if err != nil {
		m.log.Warn("metrics: cannot read the shared address counters", "err", err)
		return
	}
	iface := escapeLabel(s.Interface)
	metricFamily(b, "floatip_shared_buckets", "gauge", "Buckets of the shared addresses' flow hash this node serves, by role: mine (new and established flows), draining (established TCP flows of a bucket moved away), incoming (new flows only of a bucket moved here; also counted in mine).")
	for _, r := range []struct {
		role string
		n    int
	}{{"mine", s.Mine}, {"draining", s.Draining}, {"incoming", s.Incoming}} {
		fmt.Fprintf(b, "floatip_shared_buckets{interface=\"%s\",role=\"%s\"} %d\n", iface, r.role, r.n)
	}
	metricFamily(b, "floatip_shared_packets_total", "counter", "Packets for the shared addresses that this node's nftables table accepted (its flows) or dropped (other nodes' flows).")
	fmt.Fprintf(b, "floatip_shared_packets_total{interface=\"%s\",verdict=\"accepted\"} %d\n", iface, s.Accepted)
	fmt.Fprintf(b, "floatip_shared_packets_total{interface=\"%s\",verdict=\"dropped\"} %d\n", iface, s.Dropped)
}
