// Package pool is the assignment of --spread and of a shared address's
// buckets (--share): which node should hold each VIP of a pool, or each
// bucket of the flow hash, as a pure function of the members and the keys,
// so that every node computes the same answer from the same view.
//
// It must not know about frames, clocks, the group view or the machines
// that act on its answer.
package pool

import (
	"bytes"
	"cmp"
	"encoding/binary"
	"hash/fnv"
	"net"
	"net/netip"
	"slices"
)

// Member is one node of the assignment: its MAC and its weight (the
// --priority).
type Member struct {
	MAC    net.HardwareAddr
	Weight int
}

// score is the rendezvous score of a (node, key) pair: FNV-1a over the MAC
// and the key's bytes, finished with a 64-bit mixer so that neighbouring
// keys spread. Every node computes the same number.
func score(mac net.HardwareAddr, key []byte) uint64 {
	h := fnv.New64a()
	h.Write(mac)
	h.Write(key)
	x := h.Sum64()
	x ^= x >> 33
	x *= 0xff51afd7ed558ccd
	x ^= x >> 33
	x *= 0xc4ceb9fe1a85ec53
	x ^= x >> 33
	return x
}

// addrKey is a VIP's key: its 16-byte form.
func addrKey(a netip.Addr) []byte {
	b := a.As16()
	return b[:]
}

// bucketKey is a bucket's key: "bucket" and its number, so that bucket
// scores never coincide with an address's.
func bucketKey(b int) []byte {
	return binary.BigEndian.AppendUint32([]byte("bucket"), uint32(b))
}

// Assign spreads vips over members: bounded-load rendezvous hashing.
// Each member's quota is its weight's share of the VIPs, rounded down, and
// the remainder (the VIPs that do not divide evenly) goes one each to the
// members that fill up first. The (VIP, member) pairs are taken in order of
// falling score, and a pair is kept while its VIP is unassigned and its
// member has room. With equal weights every member gets ⌊M/N⌋ or ⌈M/N⌉.
// The result depends only on the members and the VIPs, not on their order
// or on who holds what, so every node computes the same one, and a whole
// group restarted puts every VIP back where it was.
func Assign(vips []netip.Addr, members []Member) map[netip.Addr]net.HardwareAddr {
	return assign(vips, addrKey, members)
}

// AssignBuckets is Assign for the buckets 0..n-1 of a shared address.
func AssignBuckets(n int, members []Member) map[int]net.HardwareAddr {
	buckets := make([]int, n)
	for i := range buckets {
		buckets[i] = i
	}
	return assign(buckets, bucketKey, members)
}

// quotas is each member's share of n keys by weight, rounded down, and the
// number of keys left over by the rounding.
func quotas(n int, members []Member) (quota []int, extra int) {
	total := 0
	for _, m := range members {
		total += max(m.Weight, 1)
	}
	quota = make([]int, len(members))
	extra = n
	for i, m := range members {
		quota[i] = n * max(m.Weight, 1) / total
		extra -= quota[i]
	}
	return quota, extra
}

func assign[K comparable](keys []K, keyBytes func(K) []byte, members []Member) map[K]net.HardwareAddr {
	out := make(map[K]net.HardwareAddr, len(keys))
	if len(members) == 0 || len(keys) == 0 {
		return out
	}
	quota, extra := quotas(len(keys), members)
	type pair struct {
		score  uint64
		member int
		key    K
		bytes  []byte
	}
	pairs := make([]pair, 0, len(keys)*len(members))
	for _, k := range keys {
		kb := keyBytes(k)
		for i, m := range members {
			pairs = append(pairs, pair{score(m.MAC, kb), i, k, kb})
		}
	}
	slices.SortFunc(pairs, func(a, b pair) int {
		if c := cmp.Compare(b.score, a.score); c != 0 {
			return c
		}
		if c := bytes.Compare(members[a.member].MAC, members[b.member].MAC); c != 0 {
			return c
		}
		return bytes.Compare(a.bytes, b.bytes)
	})
	load := make([]int, len(members))
	for _, p := range pairs {
		if _, done := out[p.key]; done {
			continue
		}
		switch {
		case load[p.member] < quota[p.member]:
		case load[p.member] == quota[p.member] && extra > 0:
			extra--
		default:
			continue
		}
		load[p.member]++
		out[p.key] = members[p.member].MAC
	}
	return out
}

// Has reports whether mac is one of members.
func Has(members []Member, mac net.HardwareAddr) bool {
	return slices.ContainsFunc(members, func(m Member) bool { return bytes.Equal(m.MAC, mac) })
}

// OnlyLeft reports whether the change from before to after is members
// leaving and nothing else: no member joined and no weight changed.
func OnlyLeft(before, after []Member) bool {
	if len(after) >= len(before) {
		return false
	}
	for _, a := range after {
		if !slices.ContainsFunc(before, func(b Member) bool { return bytes.Equal(a.MAC, b.MAC) && a.Weight == b.Weight }) {
			return false
		}
	}
	return true
}

// Keep is the assignment after members left (or died): every key whose
// owner is still a member stays with it, because a survivor's keys carry
// live connections, and only the keys of the members that left move. They
// go one at a time, in the order of keys, to the member furthest below its
// weighted share (the lower MAC on a tie), so that members that were
// balanced before stay balanced: with equal weights, ⌊M/N⌋ or ⌈M/N⌉ each
// whenever the survivors held at most ⌈M/N⌉ each. Like Assign, it depends
// only on its inputs, so the nodes that saw the same assignment before
// compute the same one after.
func Keep[K comparable](keys []K, before map[K]net.HardwareAddr, members []Member) map[K]net.HardwareAddr {
	out := make(map[K]net.HardwareAddr, len(keys))
	if len(members) == 0 {
		return out
	}
	load := make([]int, len(members))
	var orphans []K
	for _, k := range keys {
		i := slices.IndexFunc(members, func(m Member) bool { return bytes.Equal(m.MAC, before[k]) })
		if i < 0 {
			orphans = append(orphans, k)
			continue
		}
		out[k] = members[i].MAC
		load[i]++
	}
	for _, k := range orphans {
		best := 0
		for i := 1; i < len(members); i++ {
			// load/weight compared without division: li/wi < lb/wb.
			li, wi := load[i], max(members[i].Weight, 1)
			lb, wb := load[best], max(members[best].Weight, 1)
			if c := cmp.Compare(li*wb, lb*wi); c < 0 || c == 0 && bytes.Compare(members[i].MAC, members[best].MAC) < 0 {
				best = i
			}
		}
		out[k] = members[best].MAC
		load[best]++
	}
	return out
}
