// Package clusterip is the kernel side of a shared address, CLUSTERIP's
// model on nftables: one IPv4 address on every node of a group at once,
// answered in ARP with a cluster multicast MAC so that every node receives
// every packet, each node keeping only the flows whose hash falls into the
// buckets it is told to serve.
//
// It builds and maintains floatip's own nftables tables for one interface
// (over netlink, never the nft command), reads their counters, and joins
// the multicast group of the cluster MAC. It must not know who decides the
// buckets or why: no decisions, no frames, no engine. It imports no other
// floatip package.
//
// The tables, both named floatip_IFACE, are the only things it touches (no
// sysctl, no other table):
//   - inet: at prerouting −300, before conntrack (so that other nodes'
//     flows leave no conntrack entries here), a packet for a shared address
//     is made the host's (it came to the multicast MAC), hashed into its
//     bucket and accepted if the bucket is mine, draining or incoming, else
//     dropped; at −150, after conntrack, a draining bucket keeps only
//     established TCP, an incoming one drops mid-stream TCP that is no
//     connection of this node's. Named counters "accepted" and "dropped"
//     count each packet once. The ct expressions load conntrack in the
//     namespace.
//   - arp: at output, the sender hardware address of every ARP from a
//     shared address becomes its cluster MAC; at input, floatip's own tagged
//     probes for a shared address are dropped, so the kernel does not answer
//     each one (floatip's packet socket sees them before netfilter).
package clusterip

import (
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/google/nftables"
	"github.com/google/nftables/binaryutil"
	"golang.org/x/sys/unix"
)

// Config is one interface's shared addresses and how their flows are hashed.
type Config struct {
	Interface string       // e.g. "eth0"
	Addrs     []netip.Addr // the shared IPv4 addresses on this interface (all share one bucket space)
	Buckets   int          // number of buckets B (jhash ... mod B); 2..1024
	Hash      Hash
	Seed      uint32 // jhash seed; same on every node; not 0 (the kernel would pick a random one)
	// Lease: a bucket not set again (Set) for this long is no longer
	// served, so that a process killed with -9 stops serving its buckets
	// about when the other nodes take them; 0: kept until the next Set.
	Lease time.Duration
}

// Buckets is what this node serves: Mine (new and established flows),
// Draining (buckets moving away: established TCP flows only, until the
// drain ends), Incoming (buckets moving in: new flows only; mid-stream TCP
// packets of the old owner's connections are dropped). A bucket in Incoming
// is served for new flows whether or not it is also in Mine; a bucket may
// not be both Draining and Mine or Incoming. Expire shortens the lease of
// some buckets of Mine or Incoming (a planned give: the kernel stops
// serving them then, even if the process is stopped and cannot).
type Buckets struct {
	Mine, Draining, Incoming []int
	Expire                   map[int]time.Duration
}

// The names of the objects in the tables.
const (
	tablePrefix = "floatip_"

	setAddrs    = "addrs"    // the shared addresses
	setPorted   = "ported"   // the protocols whose ports the port hashes read
	setMine     = "mine"     // buckets served for every flow
	setDraining = "draining" // buckets served for established TCP only
	setIncoming = "incoming" // buckets served for new flows only

	counterAccepted = "accepted"
	counterDropped  = "dropped"

	chainRaw       = "raw"       // prerouting −300, before conntrack
	chainConntrack = "conntrack" // prerouting −150, after conntrack
	chainARPOut    = "arp_out"
	chainARPIn     = "arp_in"
)

// Registers: regData for a compared value, regHash for the bucket, and
// from regFields on, one 32-bit register per hashed field (the way nft
// lays out a concatenation: each field padded to 4 bytes).
const (
	regData   = unix.NFT_REG_1
	regHash   = unix.NFT_REG_2
	regFields = unix.NFT_REG32_08
)

// Table is one interface's nftables tables of shared addresses. There is
// one per interface and network namespace: a second Open of the same
// interface replaces the first's tables, and the first's methods then act
// on the second's.
type Table struct {
	mu     sync.Mutex
	cfg    Config
	ns     int
	inet   *nftables.Table
	arp    *nftables.Table
	sets   map[string]*nftables.Set // mine, draining, incoming
	closed bool
}

// Check reports (one clear error) when the kernel has no nf_tables, or
// when this process may not use it.
func Check() error {
	c, err := nftables.New()
	if err == nil {
		_, err = c.ListTables()
	}
	if errors.Is(err, unix.EPERM) {
		return fmt.Errorf("nf_tables: not permitted (needs CAP_NET_ADMIN): %w", err)
	}
	if err != nil {
		return fmt.Errorf("nf_tables not available: %w", err)
	}
	return nil
}

func conn(ns int) (*nftables.Conn, error) {
	if ns != 0 {
		return nftables.New(nftables.WithNetNSFd(ns))
	}
	return nftables.New()
}

func tables(iface string) (inet, arp *nftables.Table) {
	return &nftables.Table{Name: tablePrefix + iface, Family: nftables.TableFamilyINet},
		&nftables.Table{Name: tablePrefix + iface, Family: nftables.TableFamilyARP}
}

// remove queues the deletion of both tables, present or not: adding a
// table that exists is no error, and deleting the one just added leaves
// nothing, so the batch succeeds either way.
func remove(c *nftables.Conn, iface string) {
	inet, arp := tables(iface)
	for _, t := range []*nftables.Table{inet, arp} {
		c.AddTable(t)
		c.DelTable(t)
	}
}

// RemoveLeftovers deletes this interface's tables if present (nil if none).
func RemoveLeftovers(iface string, ns int) error {
	if err := checkInterface(iface); err != nil {
		return err
	}
	c, err := conn(ns)
	if err != nil {
		return fmt.Errorf("nftables: %w", err)
	}
	remove(c, iface)
	if err := c.Flush(); err != nil {
		return fmt.Errorf("remove the tables %s%s: %w", tablePrefix, iface, err)
	}
	return nil
}

func checkInterface(iface string) error {
	if iface == "" || len(iface) >= unix.IFNAMSIZ || strings.ContainsAny(iface, "/ \t\n\x00") {
		return fmt.Errorf("invalid interface name %q", iface)
	}
	return nil
}

func (cfg *Config) check() error {
	if err := checkInterface(cfg.Interface); err != nil {
		return err
	}
	if len(cfg.Addrs) == 0 {
		return errors.New("no shared address")
	}
	for _, a := range cfg.Addrs {
		if !a.Unmap().Is4() {
			return fmt.Errorf("shared address %v is not IPv4", a)
		}
	}
	if cfg.Buckets < 2 || cfg.Buckets > 1024 {
		return fmt.Errorf("buckets %d: want 2..1024", cfg.Buckets)
	}
	if cfg.Hash < HashSource || cfg.Hash > HashSourcePortDestPort {
		return fmt.Errorf("unknown hash %v", cfg.Hash)
	}
	if cfg.Seed == 0 {
		// The kernel's jhash takes a missing seed, which is how seed 0
		// goes over netlink, as "pick a random one": each node would
		// hash differently.
		return errors.New("hash seed 0: the kernel would pick a random seed on each node")
	}
	return nil
}

// Open removes any leftover of this interface's tables (from a process
// killed with -9), then creates them with every bucket dropped (empty
// sets), in one transaction. ns: 0 for the current network namespace, else
// an fd of a network namespace.
func Open(cfg Config, ns int) (*Table, error) {
	cfg.Addrs = slices.Clone(cfg.Addrs)
	for i, a := range cfg.Addrs {
		cfg.Addrs[i] = a.Unmap()
	}
	slices.SortFunc(cfg.Addrs, netip.Addr.Compare)
	cfg.Addrs = slices.Compact(cfg.Addrs)
	if err := cfg.check(); err != nil {
		return nil, fmt.Errorf("clusterip: %w", err)
	}
	c, err := conn(ns)
	if err != nil {
		return nil, fmt.Errorf("nftables: %w", err)
	}
	t := &Table{cfg: cfg, ns: ns}
	remove(c, cfg.Interface)
	if err := t.build(c); err != nil {
		return nil, err
	}
	if err := c.Flush(); err != nil {
		return nil, fmt.Errorf("create the tables %s%s: %w", tablePrefix, cfg.Interface, err)
	}
	return t, nil
}

// The ARP family's hooks (linux/netfilter_arp.h), which x/sys/unix lacks.
const (
	hookARPIn  nftables.ChainHook = 0 // NF_ARP_IN
	hookARPOut nftables.ChainHook = 1 // NF_ARP_OUT
)

const (
	tcpSYN = 0x02
	tcpACK = 0x10
)

// The ARP header of IPv4 over Ethernet: hardware type 1, protocol 0x0800,
// lengths 6 and 4; then the operation (offset 6), the sender's hardware
// (8) and protocol (14) addresses, the target's (18, 24).
var arpEthernetIPv4 = []byte{0, 1, 8, 0, 6, 4}

const (
	arpOffOp  = 6
	arpOffSHA = 8
	arpOffSPA = 14
	arpOffTHA = 18
	arpOffTPA = 24
)

// floatip's tag in the target hardware address of its probes: 'f' 'i' 'p'
// and version 1.
var probeTag = []byte{'f', 'i', 'p', 1}

// Set replaces the three sets in one netlink transaction.
func (t *Table) Set(b Buckets) error {
	mine, draining, incoming, err := t.check(b)
	if err != nil {
		return fmt.Errorf("clusterip: %w", err)
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.closed {
		return errors.New("clusterip: table closed")
	}
	c, err := conn(t.ns)
	if err != nil {
		return fmt.Errorf("nftables: %w", err)
	}
	for name, buckets := range map[string][]int{setMine: mine, setDraining: draining, setIncoming: incoming} {
		s := t.sets[name]
		c.FlushSet(s)
		if len(buckets) == 0 {
			continue
		}
		elems := make([]nftables.SetElement, len(buckets))
		for i, n := range buckets {
			timeout := t.cfg.Lease
			if e, ok := b.Expire[n]; ok && timeout > 0 && name != setDraining {
				timeout = min(timeout, max(e, time.Millisecond)) // the kernel's timeouts are in ms, and 0 is none
			}
			elems[i] = nftables.SetElement{Key: binaryutil.NativeEndian.PutUint32(uint32(n)), Timeout: timeout}
		}
		if err := c.SetAddElements(s, elems); err != nil {
			return fmt.Errorf("set %s: %w", name, err)
		}
	}
	if err := c.Flush(); err != nil {
		return fmt.Errorf("set the buckets of %s%s: %w", tablePrefix, t.cfg.Interface, err)
	}
	return nil
}

// check gives the kernel's three sets of b: each bucket once, Incoming
// taken out of Mine.
func (t *Table) check(b Buckets) (mine, draining, incoming []int, err error) {
	const (
		inMine = 1 << iota
		inDraining
		inIncoming
	)
	seen := make([]int, t.cfg.Buckets)
	for _, s := range []struct {
		list []int
		flag int
	}{{b.Mine, inMine}, {b.Draining, inDraining}, {b.Incoming, inIncoming}} {
		for _, n := range s.list {
			if n < 0 || n >= t.cfg.Buckets {
				return nil, nil, nil, fmt.Errorf("bucket %d out of range 0..%d", n, t.cfg.Buckets-1)
			}
			seen[n] |= s.flag
		}
	}
	for n, f := range seen {
		switch {
		case f&inDraining != 0 && f != inDraining:
			return nil, nil, nil, fmt.Errorf("bucket %d is draining and also mine or incoming", n)
		case f&inIncoming != 0:
			incoming = append(incoming, n)
		case f&inDraining != 0:
			draining = append(draining, n)
		case f&inMine != 0:
			mine = append(mine, n)
		}
	}
	return mine, draining, incoming, nil
}

// Counters are packets for the shared addresses that this node accepted
// (its buckets, including draining established flows) and dropped (others'
// buckets, mid-stream packets of moved flows), since Open.
func (t *Table) Counters() (accepted, dropped uint64, err error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.closed {
		return 0, 0, errors.New("clusterip: table closed")
	}
	c, err := conn(t.ns)
	if err != nil {
		return 0, 0, fmt.Errorf("nftables: %w", err)
	}
	objs, err := c.GetObjects(t.inet)
	if err != nil {
		return 0, 0, fmt.Errorf("read the counters of %s%s: %w", tablePrefix, t.cfg.Interface, err)
	}
	found := 0
	for _, o := range objs {
		if co, ok := o.(*nftables.CounterObj); ok {
			switch co.Name {
			case counterAccepted:
				accepted, found = co.Packets, found+1
			case counterDropped:
				dropped, found = co.Packets, found+1
			}
		}
	}
	if found != 2 {
		return 0, 0, fmt.Errorf("counters of %s%s: missing (table removed behind floatip's back?)", tablePrefix, t.cfg.Interface)
	}
	return accepted, dropped, nil
}

// Close deletes the tables; nothing of floatip stays in the ruleset.
// Closing again is no error.
func (t *Table) Close() error {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.closed {
		return nil
	}
	if err := RemoveLeftovers(t.cfg.Interface, t.ns); err != nil {
		return err
	}
	t.closed = true
	return nil
}
