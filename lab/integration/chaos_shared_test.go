//go:build chaos

package integration

// The shared address in the chaos run: every daemon also serves
// chaosShareAddr (--share, 64 buckets, hashed on the source address), every
// host's udpecho server answers on it, and the checker watches it:
//
//   - every host's bucket sets every chaosShareSampleEvery, through nftables
//     in the host's namespace (three set dumps a host): the buckets it
//     serves, mine and incoming (a planned take: new flows only; the table
//     keeps it out of mine), and draining (a planned give: established TCP
//     only, no UDP);
//   - the client sends to it from chaosShareSources source addresses in
//     distinct buckets (udpecho watch, target ADDR:PORT@SRC), every 10 ms,
//     and reports each source's gaps and its duplicate answers.
//
// The verdicts are chaos_shared_check_test.go's.

import (
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"math/bits"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"floatip/internal/clusterip"

	"github.com/google/nftables"
	"github.com/vishvananda/netns"

	"floatip/internal/fiptest"
)

const (
	chaosShareAddr        = "192.0.2.80"
	chaosShareBuckets     = 64
	chaosShareSources     = 16
	chaosShareSampleEvery = 100 * time.Millisecond
	chaosShareTable       = "floatip_eth0"
)

// shareSetup picks the client's source addresses (distinct buckets, from
// 192.0.2.130 on) and puts them on the client's interface.
func (c *chaos) shareSetup() {
	var cands []netip.Addr
	for i := 130; i < 250; i++ {
		cands = append(cands, netip.AddrFrom4([4]byte{192, 0, 2, byte(i)}))
	}
	seed := clusterip.Seed([]netip.Addr{netip.MustParseAddr(chaosShareAddr)})
	c.shareSrcs, c.shareBkts = spreadSources(cands, chaosShareSources, chaosShareBuckets, seed)
	for _, a := range c.shareSrcs {
		c.l.MustRun("c", "ip", "addr", "add", a.String()+"/24", "dev", "eth0")
	}
}

// shareTargets is the client's targets for the shared address, one per source.
func (c *chaos) shareTargets() []string {
	var ts []string
	for _, a := range c.shareSrcs {
		ts = append(ts, fmt.Sprintf("%s:%d@%s", chaosShareAddr, fiptest.EchoPort, a))
	}
	return ts
}

// checkSourceBuckets: with every bucket served by one host, each source is
// answered by the host serving the bucket the checker computes for it (a
// second of flowcheck client; only its UDP answers count, nothing listens
// on TCP). A mismatch means the checker's hash is not the kernel's.
func (c *chaos) checkSourceBuckets() {
	var srcs []string
	for _, a := range c.shareSrcs {
		srcs = append(srcs, a.String())
	}
	before := make([]uint64, len(c.shareSrcs))
	for k := range c.shareSrcs {
		before[k] = c.ownedBy(c.shareBkts[k])
	}
	out, err := c.l.Run("c", fiptest.BuildFlowCheck(c.t), "client", "-target", fmt.Sprintf("%s:%d", chaosShareAddr, fiptest.EchoPort),
		"-sources", strings.Join(srcs, ","), "-every", "100ms", "-duration", "1s", "-timeout", "300ms", "-json")
	var s flowSummary
	if i := strings.Index(out, "{"); i < 0 || json.Unmarshal([]byte(out[i:]), &s) != nil {
		c.t.Fatalf("flowcheck client: %v: %s", err, fiptest.LastLines(out, 10))
	}
	for k, a := range c.shareSrcs {
		// A planned move may have moved it meanwhile: either owner will do.
		want := before[k] | c.ownedBy(c.shareBkts[k])
		got := responders(s.BySource[a.String()].UDPResponders)
		var set uint64
		for _, h := range got {
			set |= 1 << (fiptest.HostIndex(h) - 1)
		}
		if set == 0 || set&^want != 0 {
			c.t.Fatalf("source %s (bucket %d by the checker's hash) answered by %v, the bucket is served by %s", a, c.shareBkts[k], got, holderNames(want))
		}
	}
}

// bucketConns opens an nftables connection in every host's namespace.
func (c *chaos) bucketConns() ([]*nftables.Conn, error) {
	conns := make([]*nftables.Conn, c.hosts+1)
	for i := 1; i <= c.hosts; i++ {
		ns, err := netns.GetFromName(c.l.NSName(c.host(i)))
		if err != nil {
			return nil, fmt.Errorf("namespace of %s: %w", c.host(i), err)
		}
		// The connection keeps the namespace's fd for its sockets.
		conn, err := nftables.New(nftables.WithNetNSFd(int(ns)))
		if err != nil {
			ns.Close()
			return nil, fmt.Errorf("nftables in %s: %w", c.host(i), err)
		}
		c.nsFDs = append(c.nsFDs, ns)
		conns[i] = conn
	}
	return conns, nil
}

// readBuckets reads one set of a host's table as a bit mask; a missing
// table (no daemon, or one that stopped) is an empty set. Expired elements
// (a stopped or killed daemon's) do not count.
func readBuckets(conn *nftables.Conn, name string) (uint64, error) {
	set := &nftables.Set{Table: &nftables.Table{Name: chaosShareTable, Family: nftables.TableFamilyINet}, Name: name}
	elems, err := conn.GetSetElements(set)
	if err != nil {
		if errors.Is(err, syscall.ENOENT) || strings.Contains(err.Error(), "no such file") {
			return 0, nil
		}
		return 0, err
	}
	var m uint64
	for _, e := range elems {
		if len(e.Key) != 4 || (e.Timeout > 0 && e.Expires <= 0) {
			continue
		}
		if b := binary.NativeEndian.Uint32(e.Key); b < 64 {
			m |= 1 << b
		}
	}
	return m, nil
}

// bucketSampler samples every host's mine and draining sets every
// chaosShareSampleEvery until stop.
func (c *chaos) bucketSampler(stop <-chan struct{}, done chan<- struct{}) {
	defer close(done)
	conns, err := c.bucketConns()
	if err != nil {
		c.t.Errorf("bucket sampler: %v", err)
		return
	}
	tick := time.NewTicker(chaosShareSampleEvery)
	defer tick.Stop()
	errs := 0
	for {
		s := bucketSample{At: time.Now(), Mine: make([]uint64, c.hosts+1), Draining: make([]uint64, c.hosts+1)}
		for i := 1; i <= c.hosts; i++ {
			// A bucket is served from the mine and the incoming sets
			// (incoming: taken by plan, new flows only, out of mine).
			mine, err1 := readBuckets(conns[i], "mine")
			incoming, err2 := readBuckets(conns[i], "incoming")
			var err3 error
			s.Mine[i] = mine | incoming
			s.Draining[i], err3 = readBuckets(conns[i], "draining")
			if err := errors.Join(err1, err2, err3); err != nil {
				if errs++; errs <= 3 {
					c.t.Logf("bucket sampler: sets of %s: %v", c.host(i), err)
				}
			}
		}
		c.mu.Lock()
		c.bucketSamples = append(c.bucketSamples, s)
		c.mu.Unlock()
		select {
		case <-stop:
			return
		case <-tick.C:
		}
	}
}

// ownedBy is the hosts (bit i-1 for hi) that serve bucket b in the latest sample.
func (c *chaos) ownedBy(b int) uint64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(c.bucketSamples) == 0 {
		return 0
	}
	s := c.bucketSamples[len(c.bucketSamples)-1]
	var set uint64
	for i := 1; i <= c.hosts; i++ {
		if s.Mine[i]&(1<<b) != 0 {
			set |= 1 << (i - 1)
		}
	}
	return set
}

// everyBucketOwnedOnce: in the latest sample each bucket is served by one host.
func (c *chaos) everyBucketOwnedOnce() bool {
	for b := 0; b < chaosShareBuckets; b++ {
		if set := c.ownedBy(b); set == 0 || set&(set-1) != 0 {
			return false
		}
	}
	return true
}

// plantSharedOwner adds every bucket, for hold, to host i's mine set by
// hand (its daemon is paused meanwhile): the checker must report two owners.
func (c *chaos) plantSharedOwner(i int, hold time.Duration) error {
	ns, err := netns.GetFromName(c.l.NSName(c.host(i)))
	if err != nil {
		return err
	}
	defer ns.Close()
	conn, err := nftables.New(nftables.WithNetNSFd(int(ns)))
	if err != nil {
		return err
	}
	set, err := conn.GetSetByName(&nftables.Table{Name: chaosShareTable, Family: nftables.TableFamilyINet}, "mine")
	if err != nil {
		return err
	}
	var elems []nftables.SetElement
	for b := 0; b < chaosShareBuckets; b++ {
		elems = append(elems, nftables.SetElement{Key: binary.NativeEndian.AppendUint32(nil, uint32(b)), Timeout: hold})
	}
	if err := conn.SetAddElements(set, elems); err != nil {
		return err
	}
	return conn.Flush()
}

// shareReport evaluates the shared address's invariants over the samples
// and the client's output (udpecho watch's events for the shared targets).
// It returns the violations, each fault's longest outage of a source, and
// lines for the report.
func (c *chaos) shareReport(samples []bucketSample, clientOut string, faults []chaosFault, spans [][]span) ([]violation, []time.Duration, []string) {
	index := map[string]int{}
	var names []string
	for k, t := range c.shareTargets() {
		index[t] = k
		names = append(names, fmt.Sprintf("%s@%s(bucket %d)", chaosShareAddr, c.shareSrcs[k], c.shareBkts[k]))
	}
	w := c.watchEvents(clientOut, index)
	gaps, dups, sent, answered, ends, changes := w.gaps, w.dups, w.sent, w.answered, w.ends, w.changes
	if dir := os.Getenv("FLOATIP_TEST_LOGDIR"); dir != "" {
		c.writeBucketSamples(filepath.Join(dir, fmt.Sprintf("chaos-buckets-%d.txt", c.begin.Unix())), samples)
	}
	var vs []violation
	if ends != len(names) {
		vs = append(vs, violation{At: time.Now(), Kind: "client", VIP: chaosShareAddr,
			Detail: fmt.Sprintf("udpecho watch reported the end of %d sources, want %d", ends, len(names))})
	}
	vs = append(vs, ownerViolations(samples, chaosShareBuckets, faults, spans, c.bounds.TwoHolders, c.bounds.NoHolder)...)
	outages, longest := sharedOutageViolations(gaps, samples, c.shareBkts, faults, names, c.bounds, chaosShareSampleEvery)
	vs = append(vs, outages...)
	vs = append(vs, duplicateViolations(dups, faults, names, c.bounds.TwoHolders)...)
	ndup := 0
	for _, d := range dups {
		ndup += d.Count
	}
	lines := []string{
		fmt.Sprintf("shared %s: %d buckets, %d samples of every host's sets; client: %d sources in buckets %v, %d requests, %d answered, %d duplicate answers in %d episodes, %d responder changes",
			chaosShareAddr, chaosShareBuckets, len(samples), len(names), c.shareBkts, sent, answered, ndup, len(dups), changes),
		fmt.Sprintf("bounds (shared): two owners as two holders, no owner %v, a source's outage as a VIP's, at least %v for a bucket moving by plan",
			c.bounds.NoHolder, c.bounds.PlannedMove),
	}
	return vs, longest, lines
}

// writeBucketSamples keeps the samples (FLOATIP_TEST_LOGDIR): per line the
// time since the start and each host's mine and draining sets in hex.
func (c *chaos) writeBucketSamples(path string, samples []bucketSample) {
	var b strings.Builder
	for _, s := range samples {
		fmt.Fprintf(&b, "+%.3f", s.At.Sub(c.begin).Seconds())
		for i := 1; i <= c.hosts; i++ {
			fmt.Fprintf(&b, " h%d %2d %016x/%016x", i, bits.OnesCount64(s.Mine[i]), s.Mine[i], s.Draining[i])
		}
		b.WriteByte('\n')
	}
	if err := os.WriteFile(path, []byte(b.String()), 0o644); err != nil {
		c.t.Logf("bucket samples: %v", err)
	} else {
		c.t.Logf("bucket samples in %s", path)
	}
}

// closeShare releases the namespace fds of the bucket sampler.
func (c *chaos) closeShare() {
	for _, ns := range c.nsFDs {
		ns.Close()
	}
	c.nsFDs = nil
}
