package integration

// Lab tests of a shared address (--share, CLUSTERIP's model): three hosts
// serve 192.0.2.80 at once, and a client talks to it from 64 source
// addresses (lab/flowcheck): every flow answered by exactly one host; a
// host killed with -9 and only its clients wait, for about a failover; a
// host joining takes its buckets and no established connection breaks; a
// host stopping hands its share over at once and leaves nothing behind.

import (
	"context"
	"encoding/json"
	"fmt"
	"maps"
	"os/exec"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"floatip/internal/fiptest"
	"floatip/internal/status"
)

const (
	sharedAddr       = "192.0.2.80"
	sharedClusterMAC = "01:00:5e:00:02:50"
	sharedTarget     = sharedAddr + ":7007"
	sharedSources    = "192.0.2.130-192.0.2.193" // 64 client source addresses
	sharedBuckets    = 64
)

// sharedLab is a lab of hosts serving the shared address, each with a
// flowcheck server that answers with its host name.
type sharedLab struct {
	*fiptest.Lab
	daemons map[string]*fiptest.Process
}

func newSharedLab(t *testing.T, hosts int, start []int) *sharedLab {
	l := fiptest.NewLab(t, hosts)
	sl := &sharedLab{Lab: l, daemons: map[string]*fiptest.Process{}}
	for i := 130; i <= 193; i++ {
		l.MustRun("c", "ip", "addr", "add", fmt.Sprintf("192.0.2.%d/24", i), "dev", "eth0")
	}
	bin := fiptest.BuildFlowCheck(t)
	for i := 1; i <= hosts; i++ {
		h := fmt.Sprintf("h%d", i)
		srv := l.StartProcess(h, "flowcheck", bin, "serve", "-listen", sharedTarget, "-name", h)
		t.Cleanup(func() { srv.Signal(syscall.SIGTERM) })
	}
	for _, i := range start {
		sl.start(i)
	}
	return sl
}

func (sl *sharedLab) start(i int) {
	h := fmt.Sprintf("h%d", i)
	sl.daemons[h] = sl.StartDaemon(h, "-i", "eth0", "--share", sharedAddr, "--pool-hold-down", "2s", "--drain", "1m")
}

// sharedStatus reads a host's view of the shared address.
type sharedView struct {
	Nodes []struct {
		MAC     string `json:"mac"`
		Self    bool   `json:"self"`
		Buckets []int  `json:"buckets"`
	} `json:"nodes"`
	Mine     []int `json:"mine"`
	Draining []int `json:"draining"`
	Incoming []int `json:"incoming"`
}

func (sl *sharedLab) view(host string) (sharedView, error) {
	var v sharedView
	reports, err := labStatus(sl.Lab, host)
	if err != nil {
		return v, err
	}
	if len(reports) != 1 || reports[0].Shared == nil {
		return v, fmt.Errorf("%s: no shared address in its status", host)
	}
	b, err := json.Marshal(reports[0].Shared)
	if err == nil {
		err = json.Unmarshal(b, &v)
	}
	return v, err
}

var _ = status.Report{} // the JSON above is status.Report's "shared"

// settled waits until every given host sees the same owners, each of the
// hosts serving ⌊B/N⌋..⌈B/N⌉ buckets (some perhaps still incoming or
// draining: --drain lasts a minute here).
func (sl *sharedLab) settled(timeout time.Duration, hosts ...string) map[string][]int {
	sl.T.Helper()
	var owners map[string][]int
	waitStatus(sl.T, timeout, fmt.Sprintf("%v to agree on a balanced assignment", hosts), func() string {
		owners = nil
		lo, hi := sharedBuckets/len(hosts), (sharedBuckets+len(hosts)-1)/len(hosts)
		for _, h := range hosts {
			v, err := sl.view(h)
			if err != nil {
				return err.Error()
			}
			seen := map[string][]int{}
			for _, n := range v.Nodes {
				seen[n.MAC] = n.Buckets
			}
			if len(seen) != len(hosts) {
				return fmt.Sprintf("%s sees %d nodes", h, len(seen))
			}
			if len(v.Mine) < lo || len(v.Mine) > hi {
				return fmt.Sprintf("%s serves %d buckets", h, len(v.Mine))
			}
			if !slices.Equal(v.Mine, seen[fiptest.HostMACOf(h)]) {
				return fmt.Sprintf("%s serves %v but computes %v for itself", h, v.Mine, seen[fiptest.HostMACOf(h)])
			}
			if owners != nil && !maps.EqualFunc(owners, seen, slices.Equal) {
				return fmt.Sprintf("%s disagrees on the owners", h)
			}
			owners = seen
		}
		return ""
	})
	return owners
}

// flowSummary is flowcheck client's -json output.
type flowSummary struct {
	Sources int `json:"sources"`
	UDP     struct {
		Sent, Answered, Missing, Duplicates int
	} `json:"udp"`
	TCP struct {
		Tried, OK, Failed int
	} `json:"tcp"`
	Long struct {
		Opened, Broken int
	} `json:"long"`
	BySource map[string]struct {
		UDPResponders  map[string]int `json:"udp_responders"`
		UDPMissing     int            `json:"udp_missing"`
		UDPDuplicates  int            `json:"udp_duplicates"`
		UDPLongestGap  int64          `json:"udp_longest_gap_ms"`
		TCPResponders  map[string]int `json:"tcp_responders"`
		TCPFailed      int            `json:"tcp_failed"`
		TCPLongestGap  int64          `json:"tcp_longest_gap_ms"`
		LongResponders map[string]int `json:"long_responders"`
		LongError      string         `json:"long_error"`
	} `json:"by_source"`
}

// flows runs the flowcheck client from the 64 sources in the background.
func (sl *sharedLab) flows(duration time.Duration, long bool) <-chan flowSummary {
	sl.T.Helper()
	args := []string{fiptest.BuildFlowCheck(sl.T), "client", "-target", sharedTarget, "-sources", sharedSources,
		"-every", "100ms", "-duration", duration.String(), "-timeout", "300ms", "-json"}
	if long {
		args = append(args, "-long")
	}
	ch := make(chan flowSummary, 1)
	go func() {
		defer close(ch)
		ctx, cancel := context.WithTimeout(context.Background(), duration+30*time.Second)
		defer cancel()
		cmd := exec.CommandContext(ctx, "ip", append([]string{"netns", "exec", sl.NSName("c")}, args...)...)
		cmd.WaitDelay = time.Second
		raw, err := cmd.Output()
		out := string(raw)
		var s flowSummary
		if err == nil {
			err = json.Unmarshal([]byte(out), &s)
		}
		if err != nil {
			sl.T.Errorf("flowcheck client: %v: %s", err, fiptest.LastLines(out, 10))
		}
		ch <- s
	}()
	return ch
}

func responders(m map[string]int) []string {
	return slices.Sorted(maps.Keys(m))
}

func (sl *sharedLab) checkRunning() {
	for h, d := range sl.daemons {
		if !d.Running() {
			sl.T.Errorf("%s's daemon exited: %s", h, fiptest.LastLines(d.Logs(), 20))
		}
	}
}

// Three hosts, one shared address: every UDP request and every TCP
// connection from 64 sources is answered by exactly one host, each source
// always by the same one, the buckets balanced, the client's cache on the
// cluster MAC.
func TestLabSharedSplitsFlows(t *testing.T) {
	sl := newSharedLab(t, 3, []int{1, 2, 3})
	sl.settled(20*time.Second, "h1", "h2", "h3")
	s := <-sl.flows(3*time.Second, false)
	if s.UDP.Sent == 0 || s.UDP.Missing != 0 || s.UDP.Duplicates != 0 || s.TCP.Failed != 0 || s.TCP.OK == 0 {
		t.Fatalf("UDP %+v, TCP %+v: want every request answered once", s.UDP, s.TCP)
	}
	perHost := map[string]int{}
	for src, f := range s.BySource {
		u, c := responders(f.UDPResponders), responders(f.TCPResponders)
		if len(u) != 1 || !slices.Equal(u, c) {
			t.Errorf("%s answered by UDP %v, TCP %v: want one host", src, u, c)
			continue
		}
		perHost[u[0]]++
	}
	if len(s.BySource) != 64 || len(perHost) != 3 {
		t.Fatalf("%d sources answered, by %v: want 64 over all three hosts", len(s.BySource), perHost)
	}
	if mac := sl.ClientNeighMAC(sharedAddr); mac != sharedClusterMAC {
		t.Fatalf("the client has %s at %q, want the cluster MAC %s", sharedAddr, mac, sharedClusterMAC)
	}
	sl.checkRunning()
}

// kill -9 of a host: the clients of its buckets are answered again within
// a generous bound (the bench measures the real figure), the other
// clients see no gap and their connections no reset; and no bucket of a
// survivor moved.
func TestLabSharedKillNode(t *testing.T) {
	sl := newSharedLab(t, 3, []int{1, 2, 3})
	before := sl.settled(20*time.Second, "h1", "h2", "h3")
	run := sl.flows(8*time.Second, true)
	time.Sleep(3 * time.Second)
	sl.daemons["h2"].Signal(syscall.SIGKILL)
	delete(sl.daemons, "h2")
	s := <-run
	after := sl.settled(10*time.Second, "h1", "h3")
	for _, h := range []string{"h1", "h3"} {
		mac := fiptest.HostMACOf(h)
		for _, b := range before[mac] {
			if !slices.Contains(after[mac], b) {
				t.Errorf("%s lost bucket %d when h2 died", h, b)
			}
		}
	}
	victims := 0
	for src, f := range s.BySource {
		u := responders(f.UDPResponders)
		if slices.Contains(u, "h2") {
			victims++
			if len(u) != 2 || f.UDPLongestGap > 3000 {
				t.Errorf("%s (h2's): answered by %v, longest gap %d ms: want one survivor after the kill, within 3 s", src, u, f.UDPLongestGap)
			}
			continue
		}
		if len(u) != 1 || f.UDPLongestGap > 400 || f.UDPMissing > 1 || f.LongError != "" || f.TCPFailed > 0 {
			t.Errorf("%s (%v's): longest gap %d ms, %d missing, %d TCP failures, long connection %q: a survivor's client must see nothing",
				src, u, f.UDPLongestGap, f.UDPMissing, f.TCPFailed, f.LongError)
		}
	}
	if victims == 0 {
		t.Fatal("no source was h2's: the kill tested nothing")
	}
	sl.checkRunning()
}

// A host joins: its buckets move by plan. Every long-lived connection
// opened before the join is still answered by its host after it (0
// resets), and new flows of the moved buckets go to the new host.
func TestLabSharedJoinKeepsConnections(t *testing.T) {
	sl := newSharedLab(t, 3, []int{1, 2})
	sl.settled(20*time.Second, "h1", "h2")
	run := sl.flows(12*time.Second, true)
	time.Sleep(2 * time.Second)
	sl.start(3)
	after := sl.settled(15*time.Second, "h1", "h2", "h3")
	if len(after[fiptest.HostMACOf("h3")]) == 0 {
		t.Fatal("h3 took no bucket")
	}
	s := <-run
	if s.Long.Opened != 64 || s.Long.Broken != 0 {
		t.Fatalf("long-lived connections: %+v, want 64 opened and none broken", s.Long)
	}
	moved := 0
	for src, f := range s.BySource {
		if l := responders(f.LongResponders); len(l) != 1 || f.LongError != "" {
			t.Errorf("%s: long connection answered by %v, error %q: want its first host throughout", src, l, f.LongError)
		}
		if slices.Contains(responders(f.TCPResponders), "h3") {
			moved++
		}
	}
	if moved == 0 {
		t.Fatal("no new connection reached h3 after its join")
	}
	sl.checkRunning()
}

// SIGTERM: the share is handed over at once (new flows of the leaver's
// sources wait well under a second; the bench measures it), and nothing of
// floatip is left on the host: no table, no address, no group.
func TestLabSharedStopLeavesNothing(t *testing.T) {
	sl := newSharedLab(t, 3, []int{1, 2, 3})
	sl.settled(20*time.Second, "h1", "h2", "h3")
	// A kill -9 first: the restart replaces what it left behind.
	sl.daemons["h2"].Signal(syscall.SIGKILL)
	if _, err := sl.daemons["h2"].Wait(5 * time.Second); err != nil {
		t.Fatal(err)
	}
	if out := sl.MustRun("h2", "nft", "list", "tables"); !strings.Contains(out, "floatip") {
		t.Fatalf("after kill -9 the table should still be there (what the next start cleans up): %q", out)
	}
	sl.start(2)
	sl.settled(20*time.Second, "h1", "h2", "h3")
	if out := sl.MustRun("h2", "nft", "list", "tables"); strings.Count(out, "floatip") != 2 {
		t.Fatalf("after the restart: %q, want floatip's inet and arp tables once each", out)
	}
	run := sl.flows(4*time.Second, false)
	time.Sleep(2 * time.Second)
	sl.daemons["h2"].Signal(syscall.SIGTERM)
	if code, err := sl.daemons["h2"].Wait(5 * time.Second); err != nil || code != 0 {
		t.Fatalf("h2 exited %d, %v: %s", code, err, fiptest.LastLines(sl.daemons["h2"].Logs(), 10))
	}
	delete(sl.daemons, "h2")
	s := <-run
	for src, f := range s.BySource {
		if slices.Contains(responders(f.UDPResponders), "h2") && f.UDPLongestGap > 500 {
			t.Errorf("%s (h2's): longest gap %d ms after SIGTERM", src, f.UDPLongestGap)
		}
	}
	if out := sl.MustRun("h2", "nft", "list", "ruleset"); strings.TrimSpace(out) != "" {
		t.Errorf("h2's ruleset after SIGTERM: %q, want empty", out)
	}
	if sl.HostHasAddr("h2", sharedAddr+"/32") {
		t.Error("h2 still has the shared address after SIGTERM")
	}
	if out := sl.MustRun("h2", "ip", "maddr", "show", "dev", "eth0"); strings.Contains(out, "239.0.2.80") {
		t.Errorf("h2 is still in the cluster's group: %s", out)
	}
	sl.settled(10*time.Second, "h1", "h3")
	sl.checkRunning()
}
