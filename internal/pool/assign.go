// Package pool is the assignment of --spread: which node should hold each
// VIP of a pool, as a pure function of the members and the VIPs, so that
// every node computes the same answer from the same view.
//
// It must not know about frames, clocks, the group view or the machines
// that act on its answer.
package pool

import (
	"bytes"
	"cmp"
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

// poolScore is the rendezvous score of a (node, VIP) pair: FNV-1a over the
// MAC and the address, finished with a 64-bit mixer so that neighbouring
// addresses spread. Every node computes the same number.
func poolScore(mac net.HardwareAddr, vip netip.Addr) uint64 {
	h := fnv.New64a()
	h.Write(mac)
	b := vip.As16()
	h.Write(b[:])
	x := h.Sum64()
	x ^= x >> 33
	x *= 0xff51afd7ed558ccd
	x ^= x >> 33
	x *= 0xc4ceb9fe1a85ec53
	x ^= x >> 33
	return x
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
	out := make(map[netip.Addr]net.HardwareAddr, len(vips))
	if len(members) == 0 || len(vips) == 0 {
		return out
	}
	total := 0
	for _, m := range members {
		total += max(m.Weight, 1)
	}
	quota := make([]int, len(members))
	extra := len(vips)
	for i, m := range members {
		quota[i] = len(vips) * max(m.Weight, 1) / total
		extra -= quota[i]
	}
	type pair struct {
		score  uint64
		member int
		vip    netip.Addr
	}
	pairs := make([]pair, 0, len(vips)*len(members))
	for i, m := range members {
		for _, v := range vips {
			pairs = append(pairs, pair{poolScore(m.MAC, v), i, v})
		}
	}
	slices.SortFunc(pairs, func(a, b pair) int {
		if c := cmp.Compare(b.score, a.score); c != 0 {
			return c
		}
		if c := bytes.Compare(members[a.member].MAC, members[b.member].MAC); c != 0 {
			return c
		}
		return a.vip.Compare(b.vip)
	})
	load := make([]int, len(members))
	for _, p := range pairs {
		if _, done := out[p.vip]; done {
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
		out[p.vip] = members[p.member].MAC
	}
	return out
}
