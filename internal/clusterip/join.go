package clusterip

import (
	"fmt"
	"io"
	"net"
	"net/netip"
	"sync"

	"golang.org/x/sys/unix"
)

// Join makes the interface a member of Group(addr), in the current network
// namespace, so that IGMP-snooping switches forward the cluster MAC here
// and the NIC accepts it. The membership ends when the returned closer is
// closed, or when the process dies (it is a socket's).
func Join(iface string, addr netip.Addr) (io.Closer, error) {
	group := Group(addr)
	if !group.IsValid() {
		return nil, fmt.Errorf("join the group of %v: not an IPv4 address", addr)
	}
	ifi, err := net.InterfaceByName(iface)
	if err != nil {
		return nil, fmt.Errorf("join %v on %s: %w", group, iface, err)
	}
	fd, err := unix.Socket(unix.AF_INET, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, unix.IPPROTO_UDP)
	if err != nil {
		return nil, fmt.Errorf("join %v on %s: socket: %w", group, iface, err)
	}
	mreq := &unix.IPMreqn{Multiaddr: group.As4(), Ifindex: int32(ifi.Index)}
	if err := unix.SetsockoptIPMreqn(fd, unix.IPPROTO_IP, unix.IP_ADD_MEMBERSHIP, mreq); err != nil {
		unix.Close(fd)
		return nil, fmt.Errorf("join %v on %s: %w", group, iface, err)
	}
	return &membership{fd: fd}, nil
}

// membership is a socket that holds one group membership.
type membership struct {
	once sync.Once
	fd   int
	err  error
}

func (m *membership) Close() error {
	m.once.Do(func() { m.err = unix.Close(m.fd) })
	return m.err
}
