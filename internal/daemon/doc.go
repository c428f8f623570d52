// Package daemon runs one interface: a single loop that opens the ARP
// (and, with IPv6, NDP) sockets while the link is usable, and hands the
// group its frames, link and address changes, health verdicts, fencing
// results and timer ticks, one at a time, so that the decision core needs
// no lock. It also keeps the reference hosts (References), whose answers
// it reads from the same frames.
//
// It must not decide anything about a VIP: that is the engine's. It knows
// the wire and the kernel only through their packages.
package daemon
