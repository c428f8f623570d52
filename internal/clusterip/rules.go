package clusterip

// The rules of the tables (table.go): the chains at prerouting −300 and
// −150, their matches, and the ARP rewrite.

import (
	"fmt"
	"slices"

	"github.com/google/nftables"
	"github.com/google/nftables/binaryutil"
	"github.com/google/nftables/expr"
	"golang.org/x/sys/unix"
)

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
