package status

import (
	"encoding/json"
	"strings"
	"testing"
	"time"

	"floatip/internal/engine"

	"floatip/internal/event"
	"floatip/internal/pool"

	"floatip/internal/fiptest"
)

func TestWriteStatusTable(t *testing.T) {
	now := fiptest.T0.Add(10 * time.Minute)
	reports := []Report{{
		Interface: "eth0", Now: now, MAC: "02:00:00:00:00:02", Priority: 100, Healthy: true,
		Peers: []peerStatus{{MAC: "02:00:00:00:00:01", Priority: 200, LastHeard: now.Add(-340 * time.Millisecond)}},
		VIPs: []vipReport{
			{VIP: "192.0.2.50", State: "standby", Since: fiptest.T0, Holder: "02:00:00:00:00:01", HolderPriority: 200},
			{VIP: "192.0.2.51", State: "active", Since: now.Add(-62 * time.Second), HeldHere: true},
			{VIP: "192.0.2.52", State: "fencing", Since: now, SilentHolder: "02:00:00:00:00:01"},
			{VIP: "192.0.2.53", State: "yielding", Since: now, HeldHere: true, Holder: "02:00:00:00:00:03"},
			{VIP: "192.0.2.54", State: "standby", Since: fiptest.T0.Add(-25 * time.Hour)},
		},
	}, {
		Interface: "eth1", Now: now, Priority: 100, Pool: true,
		Peers:   []peerStatus{{MAC: "02:00:00:00:00:03", Priority: 50, StandAside: true, LastHeard: now.Add(-2 * time.Minute)}},
		Members: []memberStatus{{MAC: "02:00:00:00:00:01", Priority: 100}, {MAC: "02:00:00:00:00:02", Priority: 100, Self: true}},
		VIPs: []vipReport{
			{VIP: "198.51.100.1", State: "active", Since: now, HeldHere: true,
				Pool: &vipPoolStatus{Assignee: "02:00:00:00:00:02", AssignedHere: true, AsAssigned: true}},
			{VIP: "198.51.100.2", State: "standby", Since: now, Holder: "02:00:00:00:00:02",
				Pool: &vipPoolStatus{Assignee: "02:00:00:00:00:01"}},
			{VIP: "198.51.100.3", State: "standby", Since: now, Pool: &vipPoolStatus{}},
		},
	}}
	want := `eth0: this node 02:00:00:00:00:02, priority 100, healthy
  peers: 02:00:00:00:00:01 priority 200, heard 300ms ago
VIP         STATE     SINCE                           HOLDER
192.0.2.50  standby   00:00:00 (10m0s)                02:00:00:00:00:01 (priority 200)
192.0.2.51  active    00:08:58 (1m2s)                 this node
192.0.2.52  fencing   00:10:00 (0s)                   none (02:00:00:00:00:01 went silent)
192.0.2.53  yielding  00:10:00 (0s)                   this node and 02:00:00:00:00:03
192.0.2.54  standby   2025-12-30 23:00:00 (25h10m0s)  none

eth1: this node (interface down), priority 100, unhealthy: claims nothing
  peers: 02:00:00:00:00:03 priority 50, heard 2m0s ago, unhealthy
  pool members (2): 02:00:00:00:00:01, this node
VIP           STATE    SINCE          HOLDER             ASSIGNED TO        AS ASSIGNED
198.51.100.1  active   00:10:00 (0s)  this node          this node          yes
198.51.100.2  standby  00:10:00 (0s)  02:00:00:00:00:02  02:00:00:00:00:01  NO
198.51.100.3  standby  00:10:00 (0s)  none               nobody yet         NO
`
	var b strings.Builder
	if err := WriteTable(&b, reports, time.UTC); err != nil {
		t.Fatal(err)
	}
	if got := b.String(); got != want {
		t.Errorf("got:\n%s\nwant:\n%s", got, want)
	}
}

// The JSON of GET /status and of `floatip status --json` is an interface
// for scripts: its field names and omissions are fixed here.
func TestStatusReportJSON(t *testing.T) {
	r := Report{Interface: "eth0", Version: "v1", Now: fiptest.T0, MAC: "02:00:00:00:00:01", Priority: 100, Healthy: true, Pool: true,
		Members: []memberStatus{{MAC: "02:00:00:00:00:01", Priority: 100, Self: true}},
		Peers:   []peerStatus{{MAC: "02:00:00:00:00:02", Priority: 100, LastHeard: fiptest.T0}},
		VIPs: []vipReport{
			{VIP: "198.51.100.1", State: "active", Since: fiptest.T0, HeldHere: true, Pool: &vipPoolStatus{Assignee: "02:00:00:00:00:01", AssignedHere: true, AsAssigned: true}},
			{VIP: "198.51.100.2", State: "standby", Since: fiptest.T0, Holder: "02:00:00:00:00:02", HolderPriority: 100},
		}}
	got, err := json.Marshal(r)
	if err != nil {
		t.Fatal(err)
	}
	want := `{"interface":"eth0","version":"v1","now":"2026-01-01T00:00:00Z","mac":"02:00:00:00:00:01","priority":100,"healthy":true,"pool":true,` +
		`"members":[{"mac":"02:00:00:00:00:01","priority":100,"self":true}],` +
		`"peers":[{"mac":"02:00:00:00:00:02","priority":100,"last_heard":"2026-01-01T00:00:00Z"}],` +
		`"vips":[{"vip":"198.51.100.1","state":"active","since":"2026-01-01T00:00:00Z","held_here":true,"pool":{"assignee":"02:00:00:00:00:01","assigned_here":true,"as_assigned":true}},` +
		`{"vip":"198.51.100.2","state":"standby","since":"2026-01-01T00:00:00Z","held_here":false,"holder":"02:00:00:00:00:02","holder_priority":100}]}`
	if string(got) != want {
		t.Errorf("got  %s\nwant %s", got, want)
	}
	var back Report
	if err := json.Unmarshal(got, &back); err != nil || back.VIPs[0].Pool == nil || back.VIPs[1].Holder != "02:00:00:00:00:02" {
		t.Errorf("round trip: %v %+v", err, back)
	}
}

// The report is the board's per-VIP facts plus the group's node-level
// ones.
const peerMAC = "02:00:00:00:00:01"

func TestBuildStatusReport(t *testing.T) {
	vips := fiptest.VIPs(3)
	self, holder := fiptest.MustMAC("02:00:00:00:00:09"), fiptest.MustMAC(peerMAC)
	facts := engine.Facts{MAC: self, Priority: 150, Healthy: true, Pool: true,
		Members:    []pool.Member{{MAC: holder, Weight: 200}, {MAC: self, Weight: 150}},
		Peers:      []engine.PeerFacts{{MAC: holder, Priority: 200, LastHeard: fiptest.T0}},
		Priorities: map[string]int{peerMAC: 200}}
	board := NewBoard(nil)
	board.StateChanged(event.Change{VIP: vips[0], Interface: "eth0", To: event.Standby, Holder: holder, At: fiptest.T0})
	board.StateChanged(event.Change{VIP: vips[1], Interface: "eth0", To: event.Active, At: fiptest.T0})
	board.StateChanged(event.Change{VIP: vips[2], Interface: "eth0", To: event.Active, At: fiptest.T0})
	board.Assigned(vips[0], holder, false)
	board.Assigned(vips[1], self, true)
	board.Assigned(vips[2], holder, false)
	now := fiptest.T0.Add(5 * time.Second)

	r := buildStatusReport(facts, board, "eth0", "v1", now)
	if r.Interface != "eth0" || r.Version != "v1" || r.MAC != "02:00:00:00:00:09" || r.Priority != 150 || !r.Healthy || !r.Pool || !r.Now.Equal(now) {
		t.Errorf("node: %+v", r)
	}
	if r.Interface != "eth0" || r.MAC != "02:00:00:00:00:09" || r.Priority != 150 || !r.Healthy || !r.Pool || !r.Now.Equal(now) {
		t.Errorf("node: %+v", r)
	}
	if len(r.Peers) != 1 || r.Peers[0] != (peerStatus{MAC: peerMAC, Priority: 200, LastHeard: fiptest.T0}) {
		t.Errorf("peers: %+v", r.Peers)
	}
	if len(r.Members) != 2 || r.Members[0].Self || !r.Members[1].Self || r.Members[0].Priority != 200 {
		t.Errorf("members: %+v", r.Members)
	}
	if len(r.VIPs) != 3 {
		t.Fatalf("vips: %+v", r.VIPs)
	}
	standby, mine, wrong := r.VIPs[0], r.VIPs[1], r.VIPs[2]
	if standby.State != "standby" || standby.HeldHere || standby.Holder != peerMAC || standby.HolderPriority != 200 ||
		*standby.Pool != (vipPoolStatus{Assignee: peerMAC, AsAssigned: true}) {
		t.Errorf("the VIP held by the other node: %+v %+v", standby, standby.Pool)
	}
	if mine.State != "active" || !mine.HeldHere || mine.Holder != "" ||
		*mine.Pool != (vipPoolStatus{Assignee: "02:00:00:00:00:09", AssignedHere: true, AsAssigned: true}) {
		t.Errorf("the VIP held here: %+v %+v", mine, mine.Pool)
	}
	if !wrong.HeldHere || wrong.Pool.AsAssigned {
		t.Errorf("a VIP held here but assigned to the other node: %+v %+v", wrong, wrong.Pool)
	}
}
