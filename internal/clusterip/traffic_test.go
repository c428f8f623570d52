package clusterip

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

const (
	udpPort = 7007
	tcpPort = 7008
	seed    = 0x5eed
	nBucket = 8
)

var (
	vip     = netip.MustParseAddr("192.0.2.80")
	vipUDP  = &net.UDPAddr{IP: vip.AsSlice(), Port: udpPort}
	vipTCP  = &net.TCPAddr{IP: vip.AsSlice(), Port: tcpPort}
	sources []netip.Addr // the client's 32 addresses
)

func init() {
	for i := 100; i < 132; i++ {
		sources = append(sources, netip.AddrFrom4([4]byte{192, 0, 2, byte(i)}))
	}
}

// lan is a bridge in its own namespace with two nodes that share
// 192.0.2.80 and a client with 32 addresses, each on the bridge by a veth.
type lan struct {
	br, client *netns
	nodes      []*netns
	tables     []*Table
	names      []string
}

func newLAN(t *testing.T) *lan {
	t.Helper()
	pid := os.Getpid()
	l := &lan{br: newNetns(t, fmt.Sprintf("fipt-clip-br-%d", pid)), names: []string{"n1", "n2"}}
	l.br.ip(t, "link", "add", "br0", "type", "bridge")
	l.br.ip(t, "link", "set", "br0", "up")
	plug := func(n *netns, port string) {
		// The veth is born in the node's namespace, its peer in the bridge's.
		n.ip(t, "link", "add", "eth0", "type", "veth", "peer", "name", port, "netns", l.br.name)
		l.br.ip(t, "link", "set", port, "master", "br0", "up")
		n.ip(t, "link", "set", "eth0", "up")
	}
	for i, name := range l.names {
		n := newNetns(t, fmt.Sprintf("fipt-clip-%d-%s", pid, name))
		plug(n, name)
		n.ip(t, "addr", "add", fmt.Sprintf("192.0.2.%d/24", i+1), "dev", "eth0")
		n.ip(t, "addr", "add", vip.String()+"/32", "dev", "eth0")
		l.nodes = append(l.nodes, n)
	}
	l.client = newNetns(t, fmt.Sprintf("fipt-clip-%d-c", pid))
	plug(l.client, "c")
	var batch strings.Builder
	for _, s := range sources {
		fmt.Fprintf(&batch, "addr add %s/24 dev eth0\n", s)
	}
	f, err := os.CreateTemp(t.TempDir(), "addrs")
	if err != nil {
		t.Fatal(err)
	}
	f.WriteString(batch.String())
	f.Close()
	l.client.ip(t, "-batch", f.Name())
	return l
}

// open opens a Table on each node and starts its servers: UDP and TCP on
// the shared address, answering with the node's name.
func (l *lan) open(t *testing.T, h Hash) {
	t.Helper()
	for _, tb := range l.tables {
		tb.Close()
	}
	l.tables = nil
	for _, n := range l.nodes {
		tb, err := Open(Config{Interface: "eth0", Addrs: []netip.Addr{vip}, Buckets: nBucket, Hash: h, Seed: seed}, n.fd)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { tb.Close() })
		l.tables = append(l.tables, tb)
	}
}

func (l *lan) serve(t *testing.T) {
	t.Helper()
	for i, n := range l.nodes {
		name := l.names[i]
		var uc *net.UDPConn
		var tl *net.TCPListener
		err := n.do(func() (err error) {
			if uc, err = net.ListenUDP("udp4", vipUDP); err != nil {
				return err
			}
			tl, err = net.ListenTCP("tcp4", vipTCP)
			return err
		})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { uc.Close(); tl.Close() })
		go func() {
			buf := make([]byte, 1500)
			for {
				k, from, err := uc.ReadFromUDP(buf)
				if err != nil {
					return
				}
				uc.WriteToUDP(append([]byte(name+" "), buf[:k]...), from)
			}
		}()
		go func() {
			for {
				c, err := tl.Accept()
				if err != nil {
					return
				}
				go func() {
					defer c.Close()
					r := bufio.NewScanner(c)
					for r.Scan() {
						fmt.Fprintf(c, "%s %s\n", name, r.Text())
					}
				}()
			}
		}()
	}
}

func (l *lan) set(t *testing.T, node int, b Buckets) {
	t.Helper()
	if err := l.tables[node].Set(b); err != nil {
		t.Fatal(err)
	}
}

// answer is who answered one UDP probe from a source and port.
type answer struct {
	src   netip.AddrPort
	nodes []string
}

// probe sends a UDP datagram from each source to the shared address and
// collects every answer to it, within bounded time.
func (l *lan) probe(t *testing.T) []answer {
	t.Helper()
	conns := make([]*net.UDPConn, len(sources))
	err := l.client.do(func() error {
		for i, s := range sources {
			c, err := net.ListenUDP("udp4", &net.UDPAddr{IP: s.AsSlice()})
			if err != nil {
				return err
			}
			conns[i] = c
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	answers := make([]answer, len(sources))
	var wg sync.WaitGroup
	for i, c := range conns {
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer c.Close()
			answers[i].src = c.LocalAddr().(*net.UDPAddr).AddrPort()
			buf := make([]byte, 1500)
			// The first datagram may wait for ARP: up to 5 tries; once
			// one is answered, wait a little longer for a second answer.
			for try := 0; try < 5 && len(answers[i].nodes) == 0; try++ {
				msg := fmt.Sprintf("try%d", try)
				c.WriteToUDP([]byte(msg), vipUDP)
				deadline := time.Now().Add(400 * time.Millisecond)
				for time.Now().Before(deadline) {
					c.SetReadDeadline(deadline)
					k, _, err := c.ReadFromUDP(buf)
					if err != nil {
						break
					}
					if node, got, _ := strings.Cut(string(buf[:k]), " "); got == msg {
						if len(answers[i].nodes) == 0 {
							deadline = time.Now().Add(300 * time.Millisecond)
						}
						answers[i].nodes = append(answers[i].nodes, node)
					}
				}
			}
		}()
	}
	wg.Wait()
	return answers
}

// expect checks that each probe was answered once, by want(its source).
func expect(t *testing.T, answers []answer, want func(netip.AddrPort) string) map[string]int {
	t.Helper()
	count := map[string]int{}
	for _, a := range answers {
		w := want(a.src)
		if len(a.nodes) != 1 || a.nodes[0] != w {
			t.Errorf("%v answered by %v; want %s alone", a.src, a.nodes, w)
		}
		if len(a.nodes) > 0 {
			count[a.nodes[0]]++
		}
	}
	return count
}

func bySource(split int) func(netip.AddrPort) string {
	return func(s netip.AddrPort) string {
		if Bucket(s.Addr().AsSlice(), nBucket, seed) < split {
			return "n1"
		}
		return "n2"
	}
}

func bySourcePort(split int) func(netip.AddrPort) string {
	return func(s netip.AddrPort) string {
		key := binary.BigEndian.AppendUint16(s.Addr().AsSlice(), s.Port())
		key = append(key, 0, 0) // nft pads each field of a concatenation to 4 bytes
		if Bucket(key, nBucket, seed) < split {
			return "n1"
		}
		return "n2"
	}
}

func span(from, to int) []int {
	var b []int
	for i := from; i < to; i++ {
		b = append(b, i)
	}
	return b
}

// dial opens a TCP connection from src to the shared address and says who
// answers on it.
type tcpConn struct {
	c net.Conn
	r *bufio.Reader
}

func (l *lan) dial(t *testing.T, src netip.Addr) *tcpConn {
	t.Helper()
	var c net.Conn
	err := l.client.do(func() (err error) {
		d := net.Dialer{LocalAddr: &net.TCPAddr{IP: src.AsSlice()}, Timeout: 3 * time.Second}
		c, err = d.Dial("tcp4", vipTCP.String())
		return err
	})
	if err != nil {
		t.Fatalf("connect from %v: %v", src, err)
	}
	t.Cleanup(func() { c.Close() })
	return &tcpConn{c: c, r: bufio.NewReader(c)}
}

func (c *tcpConn) who(msg string) (string, error) {
	c.c.SetDeadline(time.Now().Add(3 * time.Second))
	if _, err := fmt.Fprintln(c.c, msg); err != nil {
		return "", err
	}
	line, err := c.r.ReadString('\n')
	if err != nil {
		return "", err
	}
	node, got, _ := strings.Cut(strings.TrimSpace(line), " ")
	if got != msg {
		return "", fmt.Errorf("answer %q to %q", line, msg)
	}
	return node, nil
}

func (l *lan) counters(t *testing.T, node int) (accepted, dropped uint64) {
	t.Helper()
	a, d, err := l.tables[node].Counters()
	if err != nil {
		t.Fatal(err)
	}
	return a, d
}

func TestSharedAddressTraffic(t *testing.T) {
	needRoot(t)
	l := newLAN(t)
	l.open(t, HashSource)
	l.serve(t)
	l.set(t, 0, Buckets{Mine: span(0, 4)})
	l.set(t, 1, Buckets{Mine: span(4, 8)})

	// Each source is answered once, by the node that owns its bucket.
	count := expect(t, l.probe(t), bySource(4))
	t.Logf("split 0-3/4-7: %v", count)
	if count["n1"] == 0 || count["n2"] == 0 {
		t.Errorf("one node answered every source: %v", count)
	}
	neigh := l.client.ip(t, "neigh", "show", vip.String(), "dev", "eth0")
	if !strings.Contains(neigh, "lladdr "+ClusterMAC(vip).String()) {
		t.Errorf("the client's neighbour entry for %v is not the cluster MAC %v: %q", vip, ClusterMAC(vip), neigh)
	}
	for i := range l.nodes {
		if a, d := l.counters(t, i); a == 0 || d == 0 {
			t.Errorf("%s counted accepted %d, dropped %d: want both > 0", l.names[i], a, d)
		}
	}

	// A planned move of n2's buckets to n1: n2 drains, n1 takes them in.
	// A TCP connection opened before it stays with n2, a new one goes to
	// n1, UDP moves at once.
	var src netip.Addr
	for _, s := range sources {
		if Bucket(s.AsSlice(), nBucket, seed) >= 4 {
			src = s
			break
		}
	}
	old := l.dial(t, src)
	if who, err := old.who("before"); err != nil || who != "n2" {
		t.Fatalf("connection from %v before the move: answered by %q, %v; want n2", src, who, err)
	}
	l.set(t, 0, Buckets{Mine: span(0, 4), Incoming: span(4, 8)})
	l.set(t, 1, Buckets{Draining: span(4, 8)})
	_, dropped0 := l.counters(t, 0)
	for i := range 3 {
		if who, err := old.who(fmt.Sprint("during", i)); err != nil || who != "n2" {
			t.Fatalf("the old connection during the drain: answered by %q, %v; want n2", who, err)
		}
	}
	if _, dropped := l.counters(t, 0); dropped == dropped0 {
		t.Error("n1 dropped none of the old connection's mid-stream packets")
	}
	if who, err := l.dial(t, src).who("new"); err != nil || who != "n1" {
		t.Errorf("a new connection from %v during the drain: answered by %q, %v; want n1", src, who, err)
	}
	expect(t, l.probe(t), func(netip.AddrPort) string { return "n1" })

	// The drain ends: every bucket is n1's.
	l.set(t, 0, Buckets{Mine: span(0, 8)})
	l.set(t, 1, Buckets{})
	expect(t, l.probe(t), func(netip.AddrPort) string { return "n1" })

	// Source and port: the same sources, split by port too.
	l.open(t, HashSourcePort)
	l.set(t, 0, Buckets{Mine: span(0, 4)})
	l.set(t, 1, Buckets{Mine: span(4, 8)})
	count = expect(t, l.probe(t), bySourcePort(4))
	t.Logf("source-port split 0-3/4-7: %v", count)

	// The ARP probes: the kernel answers an untagged probe for the shared
	// address with the cluster MAC, and a floatip-tagged one not at all.
	for _, c := range []struct {
		tha  net.HardwareAddr
		want int
	}{{net.HardwareAddr{0, 0, 0, 0, 0, 0}, 2}, {net.HardwareAddr{'f', 'i', 'p', 1, 100, 0}, 0}} {
		shas, err := l.arpProbe(vip, c.tha)
		if err != nil {
			t.Fatal(err)
		}
		if len(shas) != c.want {
			t.Errorf("probe with target hardware address %v: %d answers (%v); want %d", c.tha, len(shas), shas, c.want)
		}
		for _, sha := range shas {
			if sha != ClusterMAC(vip).String() {
				t.Errorf("an answer to a probe for %v came from %s; want the cluster MAC", vip, sha)
			}
		}
	}
	for _, tb := range l.tables {
		if err := tb.Close(); err != nil {
			t.Error(err)
		}
	}
	for _, n := range l.nodes {
		if out := n.exec(t, "nft", "list", "ruleset"); strings.TrimSpace(out) != "" {
			t.Errorf("%s's ruleset after Close:\n%s", n.name, out)
		}
	}
}

// arpProbe sends an RFC 5227 probe for addr from the client (sender IP
// 0.0.0.0, the given target hardware address) and gives the sender MACs
// of the answers seen within 500 ms.
func (l *lan) arpProbe(addr netip.Addr, tha net.HardwareAddr) ([]string, error) {
	var fd int
	var ifi *net.Interface
	err := l.client.do(func() (err error) {
		if ifi, err = net.InterfaceByName("eth0"); err != nil {
			return err
		}
		fd, err = unix.Socket(unix.AF_PACKET, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, int(htons(unix.ETH_P_ARP)))
		if err != nil {
			return err
		}
		return unix.Bind(fd, &unix.SockaddrLinklayer{Protocol: htons(unix.ETH_P_ARP), Ifindex: ifi.Index})
	})
	if err != nil {
		return nil, err
	}
	defer unix.Close(fd)
	p := slices.Concat([]byte{0, 1, 8, 0, 6, 4, 0, 1}, ifi.HardwareAddr, []byte{0, 0, 0, 0}, tha, addr.AsSlice())
	to := &unix.SockaddrLinklayer{Protocol: htons(unix.ETH_P_ARP), Ifindex: ifi.Index, Halen: 6, Addr: [8]byte{0xff, 0xff, 0xff, 0xff, 0xff, 0xff}}
	if err := unix.Sendto(fd, p, 0, to); err != nil {
		return nil, err
	}
	var shas []string
	deadline := time.Now().Add(500 * time.Millisecond)
	buf := make([]byte, 1500)
	for {
		left := time.Until(deadline)
		if left <= 0 {
			return shas, nil
		}
		tv := unix.NsecToTimeval(left.Nanoseconds())
		if err := unix.SetsockoptTimeval(fd, unix.SOL_SOCKET, unix.SO_RCVTIMEO, &tv); err != nil {
			return nil, err
		}
		n, _, err := unix.Recvfrom(fd, buf, 0)
		if errors.Is(err, unix.EAGAIN) || errors.Is(err, unix.EINTR) {
			continue
		}
		if err != nil {
			return nil, err
		}
		f := buf[:n]
		// A reply (op 2) from addr to 0.0.0.0.
		if n >= 28 && f[7] == 2 && netip.AddrFrom4([4]byte(f[14:18])) == addr && netip.AddrFrom4([4]byte(f[24:28])).IsUnspecified() {
			shas = append(shas, net.HardwareAddr(f[8:14]).String())
		}
	}
}

func htons(v uint16) uint16 { return v<<8 | v>>8 }
