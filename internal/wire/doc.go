// Package wire is floatip on the LAN: the raw ARP and neighbour-discovery
// sockets, the BPF filters that sort their frames, the translation of an
// NDP message into the same frame.Frame as an ARP packet (so that
// everything above sees one vocabulary for IPv4 and IPv6), and the Port
// through which the machines send. The frames themselves are its
// subpackage frame.
//
// It must not know about decisions: who holds a VIP, states, peers or
// timing beyond a socket's deadlines. Nor does it touch addresses or routes.
package wire
