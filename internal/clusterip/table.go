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
	"github.com/google/nftables/expr"
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
// not be both Draining and Mine or Incoming.
type Buckets struct{ Mine, Draining, Incoming []int }

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

// build queues the two tables and everything in them.
func (t *Table) build(c *nftables.Conn) error {
	t.inet, t.arp = tables(t.cfg.Interface)
	c.AddTable(t.inet)
	c.AddTable(t.arp)
	for _, name := range []string{counterAccepted, counterDropped} {
		c.AddObj(&nftables.CounterObj{Table: t.inet, Name: name})
	}

	addrs := &nftables.Set{Table: t.inet, Name: setAddrs, KeyType: nftables.TypeIPAddr}
	var elems []nftables.SetElement
	for _, a := range t.cfg.Addrs {
		elems = append(elems, nftables.SetElement{Key: a.AsSlice()})
	}
	if err := c.AddSet(addrs, elems); err != nil {
		return fmt.Errorf("set %s: %w", setAddrs, err)
	}
	ported := &nftables.Set{Table: t.inet, Name: setPorted, KeyType: nftables.TypeInetProto}
	if t.cfg.Hash.ports() > 0 {
		err := c.AddSet(ported, []nftables.SetElement{{Key: []byte{unix.IPPROTO_TCP}}, {Key: []byte{unix.IPPROTO_UDP}}})
		if err != nil {
			return fmt.Errorf("set %s: %w", setPorted, err)
		}
	}
	t.sets = map[string]*nftables.Set{}
	for _, name := range []string{setMine, setDraining, setIncoming} {
		// A plain integer key (not typeof jhash, on which nft 1.0.6
		// crashes), in host byte order as jhash writes it.
		s := &nftables.Set{Table: t.inet, Name: name, KeyType: nftables.TypeInteger, KeyByteOrder: binaryutil.NativeEndian,
			HasTimeout: t.cfg.Lease > 0}
		if err := c.AddSet(s, nil); err != nil {
			return fmt.Errorf("set %s: %w", name, err)
		}
		t.sets[name] = s
	}
	m := matcher{cfg: t.cfg, addrs: addrs, ported: ported}

	raw := c.AddChain(&nftables.Chain{
		Name: chainRaw, Table: t.inet, Type: nftables.ChainTypeFilter,
		Hooknum: nftables.ChainHookPrerouting, Priority: nftables.ChainPriorityRef(-300),
	})
	rule := func(ch *nftables.Chain, parts ...[]expr.Any) {
		c.AddRule(&nftables.Rule{Table: t.inet, Chain: ch, Exprs: slices.Concat(parts...)})
	}
	// They arrive to the cluster MAC, as multicast: make them the host's.
	rule(raw, m.shared(), []expr.Any{
		&expr.Immediate{Register: regData, Data: []byte{unix.PACKET_HOST}},
		&expr.Meta{Key: expr.MetaKeyPKTTYPE, SourceRegister: true, Register: regData},
	})
	for _, b := range m.bucketIn(t.sets[setMine]) {
		rule(raw, m.shared(), b, count(counterAccepted), verdict(expr.VerdictAccept))
	}
	// Draining and incoming buckets: decided after conntrack.
	for _, name := range []string{setDraining, setIncoming} {
		for _, b := range m.bucketIn(t.sets[name]) {
			rule(raw, m.shared(), b, verdict(expr.VerdictAccept))
		}
	}
	rule(raw, m.shared(), count(counterDropped), verdict(expr.VerdictDrop))

	ct := c.AddChain(&nftables.Chain{
		Name: chainConntrack, Table: t.inet, Type: nftables.ChainTypeFilter,
		Hooknum: nftables.ChainHookPrerouting, Priority: nftables.ChainPriorityRef(-150),
	})
	// Draining: only the established TCP flows stay (UDP moves at once).
	for _, b := range m.bucketIn(t.sets[setDraining]) {
		rule(ct, m.shared(), b, l4proto(unix.IPPROTO_TCP), ctState(expr.CtStateBitESTABLISHED|expr.CtStateBitRELATED, expr.CmpOpNeq),
			count(counterAccepted), verdict(expr.VerdictAccept))
	}
	for _, b := range m.bucketIn(t.sets[setDraining]) {
		rule(ct, m.shared(), b, count(counterDropped), verdict(expr.VerdictDrop))
	}
	// Incoming: a TCP packet that is not a SYN and belongs to no
	// connection of this node (conntrack's loose pickup makes it "new",
	// without it it is "invalid") is the old owner's: drop it, or this
	// kernel would answer it with a reset.
	for _, b := range m.bucketIn(t.sets[setIncoming]) {
		rule(ct, m.shared(), b, l4proto(unix.IPPROTO_TCP), ctState(expr.CtStateBitESTABLISHED|expr.CtStateBitRELATED, expr.CmpOpEq),
			[]expr.Any{
				&expr.Payload{OperationType: expr.PayloadLoad, DestRegister: regData, Base: expr.PayloadBaseTransportHeader, Offset: 13, Len: 1},
				&expr.Bitwise{SourceRegister: regData, DestRegister: regData, Len: 1, Mask: []byte{tcpSYN | tcpACK}, Xor: []byte{0}},
				&expr.Cmp{Op: expr.CmpOpNeq, Register: regData, Data: []byte{tcpSYN}},
			},
			count(counterDropped), verdict(expr.VerdictDrop))
	}
	for _, b := range m.bucketIn(t.sets[setIncoming]) {
		rule(ct, m.shared(), b, count(counterAccepted), verdict(expr.VerdictAccept))
	}

	t.buildARP(c)
	return nil
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

func (t *Table) buildARP(c *nftables.Conn) {
	out := c.AddChain(&nftables.Chain{
		Name: chainARPOut, Table: t.arp, Type: nftables.ChainTypeFilter,
		Hooknum: nftables.ChainHookRef(hookARPOut), Priority: nftables.ChainPriorityRef(0),
	})
	in := c.AddChain(&nftables.Chain{
		Name: chainARPIn, Table: t.arp, Type: nftables.ChainTypeFilter,
		Hooknum: nftables.ChainHookRef(hookARPIn), Priority: nftables.ChainPriorityRef(0),
	})
	for _, a := range t.cfg.Addrs {
		// Every ARP this kernel sends from A (its replies for A, its
		// requests from A) carries the cluster MAC as the sender's.
		c.AddRule(&nftables.Rule{Table: t.arp, Chain: out, Exprs: slices.Concat(
			ifname(expr.MetaKeyOIFNAME, t.cfg.Interface),
			arpField(0, arpEthernetIPv4),
			arpField(arpOffSPA, a.AsSlice()),
			[]expr.Any{
				&expr.Immediate{Register: regData, Data: ClusterMAC(a)},
				&expr.Payload{OperationType: expr.PayloadWrite, SourceRegister: regData, Base: expr.PayloadBaseNetworkHeader, Offset: arpOffSHA, Len: 6},
			},
		)})
		// floatip's probes for A (who-has A from 0.0.0.0, tagged) are
		// for floatip's packet socket, which sees them before netfilter:
		// the kernel must not answer each one.
		c.AddRule(&nftables.Rule{Table: t.arp, Chain: in, Exprs: slices.Concat(
			ifname(expr.MetaKeyIIFNAME, t.cfg.Interface),
			arpField(0, arpEthernetIPv4),
			arpField(arpOffOp, []byte{0, 1}),
			arpField(arpOffSPA, []byte{0, 0, 0, 0}),
			arpField(arpOffTPA, a.AsSlice()),
			arpField(arpOffTHA, probeTag),
			verdict(expr.VerdictDrop),
		)})
	}
}

func arpField(off uint32, want []byte) []expr.Any {
	return []expr.Any{
		&expr.Payload{OperationType: expr.PayloadLoad, DestRegister: regData, Base: expr.PayloadBaseNetworkHeader, Offset: off, Len: uint32(len(want))},
		&expr.Cmp{Op: expr.CmpOpEq, Register: regData, Data: want},
	}
}

func ifname(key expr.MetaKey, name string) []expr.Any {
	b := make([]byte, unix.IFNAMSIZ)
	copy(b, name)
	return []expr.Any{
		&expr.Meta{Key: key, Register: regData},
		&expr.Cmp{Op: expr.CmpOpEq, Register: regData, Data: b},
	}
}

func count(name string) []expr.Any {
	return []expr.Any{&expr.Objref{Type: int(nftables.ObjTypeCounter), Name: name}}
}

func verdict(k expr.VerdictKind) []expr.Any {
	return []expr.Any{&expr.Verdict{Kind: k}}
}

func l4proto(p byte) []expr.Any {
	return []expr.Any{
		&expr.Meta{Key: expr.MetaKeyL4PROTO, Register: regData},
		&expr.Cmp{Op: expr.CmpOpEq, Register: regData, Data: []byte{p}},
	}
}

// ctState matches ct state & bits op 0: CmpOpNeq for "any of bits",
// CmpOpEq for "none of bits".
func ctState(bits uint32, op expr.CmpOp) []expr.Any {
	return []expr.Any{
		&expr.Ct{Key: expr.CtKeySTATE, Register: regData},
		&expr.Bitwise{SourceRegister: regData, DestRegister: regData, Len: 4, Mask: binaryutil.NativeEndian.PutUint32(bits), Xor: make([]byte, 4)},
		&expr.Cmp{Op: op, Register: regData, Data: make([]byte, 4)},
	}
}

// matcher builds the expressions that pick a table's packets.
type matcher struct {
	cfg           Config
	addrs, ported *nftables.Set
}

// shared matches an IPv4 packet that came in on the interface for a shared
// address.
func (m matcher) shared() []expr.Any {
	return slices.Concat(ifname(expr.MetaKeyIIFNAME, m.cfg.Interface), []expr.Any{
		&expr.Meta{Key: expr.MetaKeyNFPROTO, Register: regData},
		&expr.Cmp{Op: expr.CmpOpEq, Register: regData, Data: []byte{unix.NFPROTO_IPV4}},
		&expr.Payload{OperationType: expr.PayloadLoad, DestRegister: regData, Base: expr.PayloadBaseNetworkHeader, Offset: 16, Len: 4},
		&expr.Lookup{SourceRegister: regData, SetName: m.addrs.Name, SetID: m.addrs.ID},
	})
}

// bucketIn gives the alternatives (one rule each) that match a packet
// whose bucket is in set. The port hashes read the ports of TCP and UDP
// only; any other protocol (ICMP, whose "ports" would be its type and
// checksum) is hashed by its source address alone. Fragments need no
// case: conntrack's defragmentation (priority −400) has reassembled them.
func (m matcher) bucketIn(set *nftables.Set) [][]expr.Any {
	hash := func(fields ...uint32) []expr.Any {
		// field offsets are in the transport header; the source address
		// always comes first.
		e := []expr.Any{&expr.Payload{OperationType: expr.PayloadLoad, DestRegister: regFields, Base: expr.PayloadBaseNetworkHeader, Offset: 12, Len: 4}}
		for i, off := range fields {
			e = append(e, &expr.Payload{OperationType: expr.PayloadLoad, DestRegister: regFields + 1 + uint32(i), Base: expr.PayloadBaseTransportHeader, Offset: off, Len: 2})
		}
		return append(e,
			&expr.Hash{Type: expr.HashTypeJenkins, SourceRegister: regFields, Length: 4 * uint32(1+len(fields)),
				Modulus: uint32(m.cfg.Buckets), Seed: m.cfg.Seed, DestRegister: regHash},
			&expr.Lookup{SourceRegister: regHash, SetName: set.Name, SetID: set.ID},
		)
	}
	protoIn := func(invert bool) []expr.Any {
		return []expr.Any{
			&expr.Meta{Key: expr.MetaKeyL4PROTO, Register: regData},
			&expr.Lookup{SourceRegister: regData, SetName: m.ported.Name, SetID: m.ported.ID, Invert: invert},
		}
	}
	switch m.cfg.Hash.ports() {
	case 1:
		return [][]expr.Any{slices.Concat(protoIn(false), hash(0)), slices.Concat(protoIn(true), hash())}
	case 2:
		return [][]expr.Any{slices.Concat(protoIn(false), hash(0, 2)), slices.Concat(protoIn(true), hash())}
	}
	return [][]expr.Any{hash()}
}

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
			elems[i] = nftables.SetElement{Key: binaryutil.NativeEndian.PutUint32(uint32(n)), Timeout: t.cfg.Lease}
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
