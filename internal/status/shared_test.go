package status

import (
	"bytes"
	"encoding/json"
	"io"
	"log/slog"
	"net/netip"
	"strings"
	"testing"
	"time"

	"floatip/internal/engine"
	"floatip/internal/fiptest"
)

// The shared addresses in the report: the buckets of every node and this
// node's part, in the table and in the JSON.
func TestStatusShared(t *testing.T) {
	self, other := fiptest.MustMAC(fiptest.HostMAC(1)), fiptest.MustMAC(fiptest.HostMAC(2))
	f := engine.Facts{MAC: self, Priority: 100, Healthy: true, Shared: &engine.SharedFacts{
		Addrs: []netip.Addr{netip.MustParseAddr("192.0.2.80")}, Buckets: 4,
		Owners: map[string][]int{self.String(): {0, 2}, other.String(): {1, 3}},
		Mine:   []int{0, 2}, Incoming: []int{2}, Draining: []int{1},
	}}
	r := buildStatusReport(f, NewBoard(nil), "eth0", "test", fiptest.T0)
	var b strings.Builder
	if err := WriteTable(&b, []Report{r}, time.UTC); err != nil {
		t.Fatal(err)
	}
	want := `eth0: this node 02:00:00:00:00:01, priority 100, healthy
  peers: none heard
  shared 192.0.2.80: 2 of 4 buckets served here (1 incoming: new flows only); 1 draining (established flows only)
  buckets per node: this node 2, 02:00:00:00:00:02 2
`
	if b.String() != want {
		t.Fatalf("table:\n%s\nwant:\n%s", b.String(), want)
	}
	js, err := json.Marshal(r)
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range []string{`"addresses":["192.0.2.80"]`, `"mine":[0,2]`, `"incoming":[2]`, `"draining":[1]`,
		`{"mac":"02:00:00:00:00:01","self":true,"buckets":[0,2]}`} {
		if !strings.Contains(string(js), s) {
			t.Errorf("JSON %s lacks %s", js, s)
		}
	}
}

// The shared families of the metrics come from the data path's counters.
func TestMetricsShared(t *testing.T) {
	m := NewMetrics("test", slog.New(slog.NewTextHandler(io.Discard, nil)))
	m.SetShared(func() (SharedStats, error) {
		return SharedStats{Interface: "eth0", Mine: 22, Draining: 1, Incoming: 3, Accepted: 1000, Dropped: 2000}, nil
	})
	var b bytes.Buffer
	if err := m.write(&b); err != nil {
		t.Fatal(err)
	}
	for _, s := range []string{
		`floatip_shared_buckets{interface="eth0",role="mine"} 22`,
		`floatip_shared_buckets{interface="eth0",role="draining"} 1`,
		`floatip_shared_buckets{interface="eth0",role="incoming"} 3`,
		`floatip_shared_packets_total{interface="eth0",verdict="accepted"} 1000`,
		`floatip_shared_packets_total{interface="eth0",verdict="dropped"} 2000`,
	} {
		if !strings.Contains(b.String(), s) {
			t.Errorf("metrics lack %s:\n%s", s, b.String())
		}
	}
}
