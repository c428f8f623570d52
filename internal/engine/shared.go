package engine

import (
	"net"
	"net/netip"
	"slices"
	"strings"
	"time"

	"floatip/internal/pool"
	"floatip/internal/wire/frame"
)

// Shared addresses (--share): one address (or a few) served by every
// healthy node at once, CLUSTERIP's model. The address is on every node,
// the kernel answers ARP for it with a cluster multicast MAC, every node
// receives every packet, and a flow hash cut into buckets says which node
// keeps which flow. This file is the decision: who owns which bucket.
//
// Membership is the pool's (poolview.go), on the same wire (sharedmembers.go): every node
// sends a tagged probe for the shared address to the cluster MAC every
// --interval (only the cluster's nodes receive it), flagged "holder" while
// it owns buckets, "stand aside" while its check fails or it is cut off,
// "releasing" when it leaves, "member" once it counts itself one (its own
// hold-down is over). A node not heard for misses × interval (the dead
// time of a single VIP) is dead. A node heard for the first time becomes a
// member at its first frame that says so (or after the hold-down here),
// unless it was heard while nobody served (then it is part of a group
// starting together).
//
// The buckets of the members, the same on every node from the same view:
//   - a death (or a leave) moves only the lost node's buckets (pool.Keep):
//     the survivors' buckets carry live connections and stay put, and the
//     lost node's ones are taken at once;
//   - a join computes the balanced assignment (pool.AssignBuckets), which
//     the newcomer computes too, at the same frame. Its moves are planned:
//     the taker takes the bucket takeDelay later, and for --drain takes new
//     flows only (incoming: a mid-stream packet of the giver's connections
//     is dropped, not picked up by conntrack); the giver keeps taking new
//     flows until giveDelay, half an interval before that, then keeps its
//     established TCP flows (draining) until --drain. New flows of a
//     moving bucket meet nobody for that half interval: a SYN is sent
//     again, a second SYN-ACK from two owners would break the connection.
//     (sharedbuckets.go.)

// BucketTable is the data path of the shared addresses: the addresses on
// the interface and the sets of buckets this node serves (the command
// implements it with internal/clusterip).
type BucketTable interface {
	// Up puts the shared addresses on the interface and joins their
	// multicast groups (the link came up, or an address was removed).
	Up() error
	// SetBuckets replaces what this node serves in one step: mine (new and
	// established flows), draining (established TCP only), incoming (a
	// subset of mine: new flows only). It is called again every interval
	// while the link is up; what is not set again for the dead time may be
	// forgotten (the process died). expire: buckets of mine given by plan,
	// to be served no longer than that from now even if not set again
	// (the process is stopped and cannot give them).
	SetBuckets(mine, draining, incoming []int, expire map[int]time.Duration) error
}

// sharedSender is what the shared view sends on the wire; wire.Port.
type sharedSender interface {
	Probe(vip netip.Addr, tag frame.Tag, dst net.HardwareAddr) error
	AnnounceAs(addr netip.Addr, mac net.HardwareAddr, form frame.AnnounceForm) error
}

// SharedConfig is the shared addresses of one interface.
type SharedConfig struct {
	Addrs      []netip.Addr
	ClusterMAC func(netip.Addr) net.HardwareAddr
	Buckets    int
	HoldDown   time.Duration // a newcomer takes its share after being heard this long
	Drain      time.Duration // planned moves keep established TCP flows this long
	Table      BucketTable
	Send       sharedSender
	Refs       Reachability
	// RenewOffLoop renews the table's lease (the same sets, every
	// interval) on a goroutine: an nftables transaction takes 10 to 20 ms
	// on a busy host, and the loop's VIP notices and claims must not wait
	// for it. A change of the sets waits for it first. Off in the tests,
	// whose simulated LAN runs every node in one goroutine.
	RenewOffLoop bool
}

// sharedNode is what this node knows of another node of the shared group.
type sharedNode struct {
	since    time.Time // start of its continuous presence as a candidate (zero: not)
	last     time.Time // last tagged frame
	priority uint8
	holder   bool          // its last frame said it owns buckets
	member   bool          // its last frame said it counts itself a member
	silence  time.Duration // between its last two frames
	// servedFirst: the first frame heard from it said it owns buckets: it
	// was serving before this node started (a running group), not a node
	// starting with it.
	servedFirst bool
	// digest is the digest of the owners its last frame carried (the
	// tag's high flag bits), and since when it differs from ours;
	// prevDigest the one it carried before.
	digest, prevDigest uint8
	mismatchSince      time.Time
	// countedSince: it has been one of this node's members since then.
	countedSince time.Time
}

// SharedView owns the buckets of an interface's shared addresses. It is a
// scheduled item of the Group and ticks every --interval.
type SharedView struct {
	group *Group
	cfg   SharedConfig
	slot  int

	linkUp, healthy bool
	selfSince       time.Time // this node a candidate since (zero: not)
	lastPeer        time.Time // last frame of another node
	nodes           map[string]*sharedNode
	members         []pool.Member            // sorted by MAC
	owners          map[int]net.HardwareAddr // the assignment of the members
	buckets         []bucket                 // this node's part
	applied         [3][]int                 // last sets given to the table
	nextTick        time.Time
	announceLeft    int
	nextAnnounce    time.Time
	leaving         bool
	served          bool      // this node has been a member since it started
	digest          uint8     // of owners (sharedsync.go)
	lastRun         time.Time // last tick or frame handled: a longer pause is a stall
	joinedAt        time.Time // last change in which a member joined
	failed          bool      // the last SetBuckets failed: try again next tick
	// deferred, while set, collects the table's changes instead of making
	// them (changeTable).
	deferred *[]tableChange
	// renewal is the lease renewal running off the loop (RenewOffLoop),
	// nil when none is; renewing its sets.
	renewal  chan error
	renewing [3][]int
	// takeDue is, per bucket, its owner's planned take (zero: it took
	// the bucket at once): until it is due, the owner does not serve it.
	takeDue []dueTake
	// beforeLoss is the assignment in force before the last loss of a
	// member (sharedsync.go: cameBackServing), lostAt when it was lost.
	beforeLoss sharedAssignment
	lostAt     time.Time
	// ownersKnown: the owners were computed from the ones the others
	// served by (decide's known), not guessed by a joiner.
	ownersKnown bool
}

// deadTime is how long a node may be silent before it is dead: a single
// VIP's.
func (s *SharedView) deadTime() time.Duration {
	return time.Duration(s.group.cfg.Misses) * s.group.cfg.Interval
}

// NewSharedView makes the group serve cfg's shared addresses.
func NewSharedView(g *Group, cfg SharedConfig) *SharedView {
	if cfg.Refs == nil {
		cfg.Refs = EverReachable{}
	}
	s := &SharedView{group: g, cfg: cfg, slot: -1, healthy: true, nodes: map[string]*sharedNode{},
		owners: map[int]net.HardwareAddr{}, buckets: make([]bucket, cfg.Buckets), takeDue: make([]dueTake, cfg.Buckets)}
	g.shared = s
	g.queue.push(s)
	return s
}

// SetInitialHealth says whether the node starts healthy (a --check starts
// unhealthy until it passes).
func (s *SharedView) SetInitialHealth(healthy bool) { s.healthy = healthy }

func (s *SharedView) queueSlot() *int { return &s.slot }

func (s *SharedView) nextWake() time.Time {
	wake := s.nextTick
	for i := range s.buckets {
		for _, t := range []time.Time{s.buckets[i].giveAt, s.buckets[i].takeAt, s.buckets[i].incomingUntil, s.buckets[i].drainUntil} {
			if !t.IsZero() && t.Before(wake) {
				wake = t
			}
		}
	}
	if s.linkUp && s.announceLeft > 0 && s.nextAnnounce.Before(wake) {
		// Only with the link up, when the announcement can go: else the
		// loop would wake for it again and again.
		wake = s.nextAnnounce
	}
	// A member found dead the moment its dead time is over, not at the
	// next interval: a single VIP's failover is no slower.
	for _, m := range s.members {
		if n := s.nodes[string(m.MAC)]; n != nil {
			if dead := n.last.Add(s.deadTime() + time.Millisecond); dead.Before(wake) {
				wake = dead
			}
		}
	}
	return wake
}

// isShared reports whether addr is one of the shared addresses.
func (s *SharedView) isShared(addr netip.Addr) bool { return slices.Contains(s.cfg.Addrs, addr) }

// onEvent takes the interface's changes and the health verdicts.
func (s *SharedView) onEvent(ev MachineEvent, now time.Time) {
	switch ev {
	case EvLinkUp:
		s.linkUp = true
		s.up()
		// Tell the LAN the cluster MAC, as a claim does for a VIP.
		s.announceLeft, s.nextAnnounce = s.group.cfg.AnnounceCount, now
	case EvLinkDown:
		s.linkUp = false
		s.announceLeft = 0
	case EvAddrRemoved, EvResync:
		if s.linkUp && !s.leaving {
			s.up()
		}
		return
	case EvHealthy:
		s.healthy = true
	case EvUnhealthy:
		s.healthy = false
	default:
		return
	}
	s.nextTick = now // decide at once
	s.onTick(now)
}

// up puts the addresses back; a failure is logged and tried again at the
// next change of the link.
func (s *SharedView) up() {
	if err := s.cfg.Table.Up(); err != nil {
		s.group.log.Error("shared address: cannot set the interface up for it", "err", err)
	}
}

// recompute refreshes the members and, when they changed, the owners and
// this node's part.
func (s *SharedView) recompute(now time.Time) {
	ms := s.currentMembers(now)
	if slices.EqualFunc(ms, s.members, sameMember) {
		return
	}
	before := s.owners
	var owners map[int]net.HardwareAddr
	// A node lost right after a join (within the skew of a change between
	// the nodes) is part of that change: the others may see both at once,
	// and take the balanced assignment for both.
	joining := now.Sub(s.joinedAt) < s.joinSkew()
	if back := s.cameBackServing(ms); back != nil {
		// Nodes found dead here serve as before: only their frames were
		// lost, and they serve by the assignment before their death.
		s.adopt(ms, back, now, "shared address: a node found dead came back serving as before: taking its assignment again", movesDone)
		return
	}
	if len(before) > 0 && pool.OnlyLeft(s.members, ms) && !joining {
		s.beforeLoss = sharedAssignment{members: s.members, owners: before, digest: s.digest, known: s.ownersKnown}
		s.lostAt = now
		owners = pool.Keep(bucketNumbers(s.cfg.Buckets), before, ms)
	} else {
		owners = pool.AssignBuckets(s.cfg.Buckets, ms)
	}
	mode := movesPlanned
	for _, m := range ms {
		if !pool.Has(s.members, m.MAC) {
			s.joinedAt = now // a member joined
			if n := s.nodes[string(m.MAC)]; n != nil && n.holder {
				// It serves already (a partition heals): what it is given
				// it likely serves, and a planned give would answer twice.
				mode = movesLoose
			}
		}
	}
	s.adopt(ms, owners, now, "shared address: membership changed", mode)
}

// joinSkew bounds how far apart two nodes see one membership change: the
// hold-down of a newcomer ends on each node's own tick, an interval apart
// at most, and a frame's delivery.
func (s *SharedView) joinSkew() time.Duration { return s.group.cfg.Interval + 50*time.Millisecond }

// adopt makes owners the assignment of members, and this node's part
// follow it, moving as mode says.
func (s *SharedView) adopt(ms []pool.Member, owners map[int]net.HardwareAddr, now time.Time, why string, mode moveMode) {
	before, was := s.owners, s.members
	s.members, s.owners = ms, owners
	for _, m := range ms {
		if n := s.nodes[string(m.MAC)]; n != nil && !pool.Has(was, m.MAC) {
			n.countedSince = now
		}
	}
	s.digest = ownersDigest(owners, s.cfg.Buckets)
	if self := s.group.arp.MAC(); pool.Has(ms, self) {
		s.served = true
	}
	s.decide(before, ms, now, mode)
	names := make([]string, len(ms))
	for i, m := range ms {
		names[i] = m.MAC.String()
	}
	mine, _, _ := s.sets()
	s.group.log.Info(why, "members", strings.Join(names, ","), "buckets_here", len(mine), "buckets", s.cfg.Buckets)
	// Tell the LAN again: a client whose cache went stale hears the cluster MAC.
	s.announceLeft, s.nextAnnounce = 1, now
}

func (s *SharedView) onTick(now time.Time) {
	s.checkStall(now)
	if now.Before(s.nextTick) {
		s.recompute(now) // a member's dead time may be over
		s.timers(now)
		return
	}
	s.nextTick = now.Add(s.group.cfg.Interval)
	s.cfg.Refs.Probe(now)
	if s.candidate(now) {
		if s.selfSince.IsZero() {
			s.selfSince = now
		}
	} else {
		s.selfSince = time.Time{}
	}
	s.recompute(now)
	s.checkAgreement(now)
	s.timers(now)
	// The probe before the lease's renewal (as in apply): a node killed
	// between the two is found dead no earlier than its table stops.
	s.presence(now)
	if s.linkUp {
		s.apply(now, applyRefresh)
	}
}

// shutdown leaves the group: nothing served, then a release notice (the
// others take this node's buckets at once). In this order, or a flow that
// arrives between the two is answered here and by the bucket's new owner.
func (s *SharedView) shutdown(now time.Time) {
	s.leaving = true
	for i := range s.buckets {
		s.buckets[i] = bucket{}
	}
	s.apply(now, applyChanged)
	if s.linkUp && len(s.cfg.Addrs) > 0 {
		s.sendPresence(frame.FlagReleasing) // after the change, even when it is made off the loop
	}
}
