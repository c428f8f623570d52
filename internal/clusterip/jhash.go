package clusterip

import (
	"encoding/binary"
	"hash/fnv"
	"math/bits"
	"net/netip"
	"slices"
)

// The flow hash in Go, as the tables compute it: which bucket a flow falls
// into, for the tests that check who answers it, and the seed every node
// derives from its shared addresses.

// Seed is the jhash seed of a group's shared addresses: the same on every
// node, whatever the order of --share, and never 0 (with 0 the kernel
// would draw one per node).
func Seed(addrs []netip.Addr) uint32 {
	h := fnv.New32a()
	for _, a := range slices.SortedFunc(slices.Values(addrs), netip.Addr.Compare) {
		b := a.As16()
		h.Write(b[:])
	}
	if h.Sum32() == 0 {
		return 1
	}
	return h.Sum32()
}

// Bucket is nft's "jhash KEY mod n seed s": key is the hashed fields in
// the order the rule loads them (the source address's 4 bytes, then the
// ports', as they are on the wire).
func Bucket(key []byte, n int, seed uint32) int {
	return int(uint64(jhash(key, seed)) * uint64(n) >> 32)
}

// jhash is the kernel's jhash (include/linux/jhash.h) on a little-endian
// machine.
func jhash(k []byte, seed uint32) uint32 {
	a := 0xdeadbeef + uint32(len(k)) + seed
	b, c := a, a
	for len(k) > 12 {
		a += binary.LittleEndian.Uint32(k)
		b += binary.LittleEndian.Uint32(k[4:])
		c += binary.LittleEndian.Uint32(k[8:])
		a -= c
		a ^= bits.RotateLeft32(c, 4)
		c += b
		b -= a
		b ^= bits.RotateLeft32(a, 6)
		a += c
		c -= b
		c ^= bits.RotateLeft32(b, 8)
		b += a
		a -= c
		a ^= bits.RotateLeft32(c, 16)
		c += b
		b -= a
		b ^= bits.RotateLeft32(a, 19)
		a += c
		c -= b
		c ^= bits.RotateLeft32(b, 4)
		b += a
		k = k[12:]
	}
	if len(k) == 0 {
		return c
	}
	var tail [12]byte
	copy(tail[:], k)
	a += binary.LittleEndian.Uint32(tail[0:])
	b += binary.LittleEndian.Uint32(tail[4:])
	c += binary.LittleEndian.Uint32(tail[8:])
	c ^= b
	c -= bits.RotateLeft32(b, 14)
	a ^= c
	a -= bits.RotateLeft32(c, 11)
	b ^= a
	b -= bits.RotateLeft32(a, 25)
	c ^= b
	c -= bits.RotateLeft32(b, 16)
	a ^= c
	a -= bits.RotateLeft32(c, 4)
	b ^= a
	b -= bits.RotateLeft32(a, 14)
	c ^= b
	c -= bits.RotateLeft32(b, 24)
	return c
}
