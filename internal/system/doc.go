// Package system is floatip's side of the kernel, through netlink and a few
// system calls: the VIP's address on the interface, the watch on the link
// and its addresses, the reset of a VIP's TCP connections before it goes,
// the default gateway, the IPv6 switches, and the loop's wake-up timer.
//
// It must not know about VIP states, frames or decisions: the machines
// reach it only through small interfaces (an address to add and remove).
package system
