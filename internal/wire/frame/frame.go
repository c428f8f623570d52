// Package frame is the vocabulary of floatip on the LAN: a received frame
// (an ARP packet, or an NDP message translated into one), the floatip tag
// that a probe carries in its target hardware address, and the probes and
// announcements floatip sends, byte for byte as arping sends them. It is
// all the decision core (internal/engine) knows of the wire.
//
// It must not know about sockets (internal/wire) or decisions.
package frame

import (
	"bytes"
	"fmt"
	"net"
	"net/netip"
	"time"

	"github.com/mdlayher/arp"
)

// AnnounceForm says which unsolicited ARP packets a claim sends.
type AnnounceForm string

const (
	FormRequest AnnounceForm = "request" // as `arping -U`: op request, THA ff:ff:ff:ff:ff:ff
	FormReply   AnnounceForm = "reply"   // as `arping -A`: op reply, THA = own MAC
	FormBoth    AnnounceForm = "both"    // a request and a reply each round
)

// The addresses a probe and an announcement are made of.
var (
	BroadcastMAC = net.HardwareAddr{0xff, 0xff, 0xff, 0xff, 0xff, 0xff}
	ZeroMAC      = net.HardwareAddr{0, 0, 0, 0, 0, 0}
	ZeroIPv4     = netip.IPv4Unspecified()
)

// The in-band floatip tag. RFC 5227 says a probe's target hardware address
// is ignored by receivers and SHOULD be zero; floatip puts its priority
// there so that standbys and holders learn each other's rank without a
// protocol of their own. Layout of the six THA bytes:
//
//	'f' 'i' 'p' version priority flags
//
// Every other device sees an ordinary, valid ARP probe.
const (
	TagVersion     = 1
	FlagHolder     = 0x01 // the sender holds the VIP (an active node's self-check)
	FlagReleasing  = 0x02 // the sender is giving the VIP up right now
	FlagStandAside = 0x04 // the sender will not take the VIP (its health check fails)
	// FlagMember: a shared address's node (--share) counts itself one of
	// the members that own the buckets; the high four bits then carry the
	// digest of its owners.
	FlagMember = 0x08
)

// Tag is what a floatip probe says about its sender.
type Tag struct {
	Priority uint8
	Flags    uint8
}

// HardwareAddr is the tag as a probe's target hardware address.
func (t Tag) HardwareAddr() net.HardwareAddr {
	return net.HardwareAddr{'f', 'i', 'p', TagVersion, t.Priority, t.Flags}
}

// ParseTag reads a floatip tag from a probe's THA; ok is false for an
// ordinary probe (arping -D, a DHCP client, any RFC 5227 host).
func ParseTag(tha net.HardwareAddr) (Tag, bool) {
	if len(tha) != 6 || tha[0] != 'f' || tha[1] != 'i' || tha[2] != 'p' || tha[3] != TagVersion || tha[4] == 0 {
		return Tag{}, false
	}
	return Tag{Priority: tha[4], Flags: tha[5]}, true
}

// ProbePacket builds an RFC 5227 probe for vip: a request with sender IP
// 0.0.0.0, so that no neighbour's cache learns anything from it. tag may be
// nil for a plain probe (THA zero, as the RFC recommends).
func ProbePacket(mac net.HardwareAddr, vip netip.Addr, tag *Tag) (*arp.Packet, error) {
	tha := ZeroMAC
	if tag != nil {
		tha = tag.HardwareAddr()
	}
	return arp.NewPacket(arp.OperationRequest, mac, ZeroIPv4, tha, vip)
}

// AnnouncePacket builds one unsolicited ARP for vip, byte for byte as iputils
// arping sends it: `-U` is a request whose THA is broadcast, `-A` a reply
// whose THA is the sender's own MAC; sender IP = target IP = vip.
func AnnouncePacket(mac net.HardwareAddr, vip netip.Addr, reply bool) (*arp.Packet, error) {
	if reply {
		return arp.NewPacket(arp.OperationReply, mac, vip, mac, vip)
	}
	return arp.NewPacket(arp.OperationRequest, mac, vip, BroadcastMAC, vip)
}

// AnnouncePackets returns the packets of one announcement round in form.
func AnnouncePackets(mac net.HardwareAddr, vip netip.Addr, form AnnounceForm) ([]*arp.Packet, error) {
	var replies []bool
	switch form {
	case FormRequest:
		replies = []bool{false}
	case FormReply:
		replies = []bool{true}
	case FormBoth:
		replies = []bool{false, true}
	default:
		return nil, fmt.Errorf("unknown announcement form %q", form)
	}
	pkts := make([]*arp.Packet, 0, len(replies))
	for _, reply := range replies {
		p, err := AnnouncePacket(mac, vip, reply)
		if err != nil {
			return nil, err
		}
		pkts = append(pkts, p)
	}
	return pkts, nil
}

// Frame is one ARP packet received on the interface.
type Frame struct {
	Packet   *arp.Packet
	Received time.Time
}

// FromOther reports whether the frame was sent by a MAC other than ours.
func (f Frame) FromOther(own net.HardwareAddr) bool {
	return !bytes.Equal(f.Packet.SenderHardwareAddr, own)
}

// HolderEvidence reports whether an ARP packet shows that a node other than
// own holds vip: any request or reply with vip as the sender address.
func HolderEvidence(f Frame, vip netip.Addr, own net.HardwareAddr) bool {
	return f.Packet.SenderIP == vip && f.FromOther(own)
}

// IsGratuitous reports whether the packet announces its sender address
// (SPA = TPA): the form of arping -U/-A and of floatip's own claims.
func IsGratuitous(f Frame) bool { return f.Packet.SenderIP == f.Packet.TargetIP }
