package system

import (
	"encoding/binary"
	"net"
	"net/netip"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netlink/nl"
	"golang.org/x/sys/unix"
)

// The IPv6 side of the connection reset. vishvananda/netlink lists IPv6
// sockets (SocketDiagTCP(AF_INET6)) but destroys IPv4 ones only, so the
// SOCK_DESTROY request for an IPv6 socket is built here: the same
// inet_diag_req_v2 the library sends for IPv4, with family AF_INET6 and
// 16-byte addresses.

// inetDiagReq6 is struct inet_diag_req_v2 (linux/inet_diag.h) for one IPv6
// TCP socket.
type inetDiagReq6 struct {
	local, remote netip.AddrPort
}

const sizeofInetDiagReq = 56 // 4 + 4 + sockid (2 + 2 + 16 + 16 + 4 + 8)

func (r inetDiagReq6) Len() int { return sizeofInetDiagReq }

// Serialize is the request as the kernel reads it (nl.NetlinkRequestData).
func (r inetDiagReq6) Serialize() []byte {
	b := make([]byte, sizeofInetDiagReq)
	b[0], b[1] = unix.AF_INET6, unix.IPPROTO_TCP
	binary.NativeEndian.PutUint32(b[4:], 0xfff) // every state
	binary.BigEndian.PutUint16(b[8:], r.local.Port())
	binary.BigEndian.PutUint16(b[10:], r.remote.Port())
	src, dst := r.local.Addr().As16(), r.remote.Addr().As16()
	copy(b[12:28], src[:])
	copy(b[28:44], dst[:])
	// interface 0 (any); cookie INET_DIAG_NOCOOKIE
	binary.NativeEndian.PutUint32(b[48:], nl.TCPDIAG_NOCOOKIE)
	binary.NativeEndian.PutUint32(b[52:], nl.TCPDIAG_NOCOOKIE)
	return b
}

// destroyTCP6 destroys one IPv6 TCP socket (as ss -K).
func destroyTCP6(c tcpConn) error {
	req := nl.NewNetlinkRequest(nl.SOCK_DESTROY, unix.NLM_F_ACK)
	req.AddData(inetDiagReq6{local: c.local, remote: c.remote})
	_, err := req.Execute(unix.NETLINK_INET_DIAG, 0)
	return err
}

// localRoute6 is the local-table route the kernel adds with an IPv6
// address (`local VIP dev IFACE table local proto kernel metric 0`).
func localRoute6(index int, vip netip.Addr) *netlink.Route {
	return &netlink.Route{LinkIndex: index, Dst: &net.IPNet{IP: vip.AsSlice(), Mask: net.CIDRMask(128, 128)},
		Table: unix.RT_TABLE_LOCAL, Type: unix.RTN_LOCAL, Protocol: unix.RTPROT_KERNEL}
}
