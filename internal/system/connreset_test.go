package system

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/netip"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

var testVIP = netip.MustParseAddr("192.0.2.50")

func conn(local, remote string, state uint8) tcpConn {
	return tcpConn{local: netip.MustParseAddrPort(local), remote: netip.MustParseAddrPort(remote), state: state}
}

func TestConnsToReset(t *testing.T) {
	vip := netip.MustParseAddr("192.0.2.50")
	all := []tcpConn{
		conn("192.0.2.50:5432", "192.0.2.100:40000", tcpEstablished),    // yes
		conn("192.0.2.50:5432", "192.0.2.101:40001", tcpCloseWait),      // yes: the peer still waits
		conn("192.0.2.50:5432", "192.0.2.102:40002", tcpFinWait1),       // yes
		conn("192.0.2.50:5432", "192.0.2.103:40003", tcpSynRecv),        // yes
		conn("192.0.2.50:41000", "198.51.100.7:443", tcpSynSent),        // yes: outgoing from the VIP
		conn("192.0.2.50:5432", "0.0.0.0:0", tcpListen),                 // no: the server keeps listening
		conn("192.0.2.50:5432", "192.0.2.104:40004", tcpTimeWait),       // no: nobody to tell
		conn("192.0.2.50:5432", "192.0.2.105:40005", tcpClose),          // no
		conn("192.0.2.11:22", "192.0.2.100:40006", tcpEstablished),      // no: the host's own address
		conn("192.0.2.51:5432", "192.0.2.100:40007", tcpEstablished),    // no: another VIP
		conn("0.0.0.0:5432", "0.0.0.0:0", tcpListen),                    // no
		conn("192.0.2.50:5432", "192.0.2.106:40008", tcpLastAck),        // yes
		conn("192.0.2.50:5432", "192.0.2.107:40009", tcpClosing),        // yes
		conn("192.0.2.50:5432", "192.0.2.108:40010", tcpFinWait2),       // yes
		conn("192.0.2.50:5432", "192.0.2.109:40011", tcpEstablished+20), // no: unknown state
	}
	var got []string
	for _, c := range connsToReset(all, func(a netip.Addr) bool { return a == vip }) {
		got = append(got, c.remote.String())
	}
	want := []string{"192.0.2.100:40000", "192.0.2.101:40001", "192.0.2.102:40002", "192.0.2.103:40003",
		"198.51.100.7:443", "192.0.2.106:40008", "192.0.2.107:40009", "192.0.2.108:40010"}
	if !slices.Equal(got, want) {
		t.Errorf("reset %v\nwant  %v", got, want)
	}
}

// world records, in order, what the reset and the removal do to the host.
type world struct {
	events     []string
	conns      [][]tcpConn // what each listing returns (the last one repeats)
	lists      int
	destroyErr error
	removeErr  error
	gateErr    error
}

func (w *world) tcpConns(bool) ([]tcpConn, error) {
	w.events = append(w.events, "list")
	i := min(w.lists, len(w.conns)-1)
	w.lists++
	return w.conns[i], nil
}

func (w *world) destroy(c tcpConn) error {
	if w.destroyErr != nil {
		return w.destroyErr
	}
	w.events = append(w.events, "destroy "+c.remote.String())
	return nil
}

type worldGate struct{ w *world }

func (g worldGate) close(netip.Addr) error {
	g.w.events = append(g.w.events, "gate closed")
	return g.w.gateErr
}

func (g worldGate) reopen(netip.Addr) error {
	g.w.events = append(g.w.events, "gate reopened")
	return nil
}

type worldAddr struct{ w *world }

func (a worldAddr) Add() error {
	a.w.events = append(a.w.events, "add")
	return nil
}

func (a worldAddr) Remove() error {
	a.w.events = append(a.w.events, "remove")
	return a.w.removeErr
}

func newWorld(conns ...[]tcpConn) (*world, *ConnResetter, *bytes.Buffer) {
	w := &world{conns: conns}
	var logs bytes.Buffer
	r := &ConnResetter{log: slog.New(slog.NewTextHandler(&logs, nil)), gate: worldGate{w},
		sockets: w}
	return w, r, &logs
}

var (
	c1    = conn("192.0.2.50:5432", "192.0.2.100:40000", tcpEstablished)
	c2    = conn("192.0.2.50:5432", "192.0.2.101:40001", tcpEstablished)
	other = conn("192.0.2.11:22", "192.0.2.100:40002", tcpEstablished)
)

// The order that makes the RSTs leave and no reconnect land here: stop
// delivery, reset, then remove the address.
func TestResetThenRemove(t *testing.T) {
	w, r, logs := newWorld([]tcpConn{c1, other, c2}, []tcpConn{other})
	addr := WithConnReset(worldAddr{w}, r, testVIP)
	if err := addr.Remove(); err != nil {
		t.Fatal(err)
	}
	want := []string{"gate closed", "list", "destroy 192.0.2.100:40000", "destroy 192.0.2.101:40001", "list", "remove"}
	if !slices.Equal(w.events, want) {
		t.Errorf("events %q\nwant   %q", w.events, want)
	}
	if n := strings.Count(logs.String(), "\n"); n != 1 || !strings.Contains(logs.String(), "connections=2") {
		t.Errorf("want one log line with the count, got:\n%s", logs.String())
	}
	// Adding is untouched.
	w.events = nil
	if err := addr.Add(); err != nil || !slices.Equal(w.events, []string{"add"}) {
		t.Errorf("add: %v, events %q", err, w.events)
	}
}

// A connection that arrives during a pass is caught by the next; passes
// are bounded.
func TestResetPasses(t *testing.T) {
	w, r, _ := newWorld([]tcpConn{c1}, []tcpConn{c2}, nil)
	r.Reset(testVIP)
	want := []string{"gate closed", "list", "destroy 192.0.2.100:40000", "list", "destroy 192.0.2.101:40001", "list"}
	if !slices.Equal(w.events, want) {
		t.Errorf("events %q\nwant   %q", w.events, want)
	}
	w, r, _ = newWorld([]tcpConn{c1}) // the kernel keeps listing it
	r.Reset(testVIP)
	if w.lists != maxResetPasses {
		t.Errorf("%d listings, want at most %d", w.lists, maxResetPasses)
	}
}

func TestResetFailedRemovalReopens(t *testing.T) {
	w, r, _ := newWorld(nil)
	w.removeErr = errors.New("netlink says no")
	addr := WithConnReset(worldAddr{w}, r, testVIP)
	if err := addr.Remove(); err == nil {
		t.Fatal("the removal error was swallowed")
	}
	want := []string{"gate closed", "list", "remove", "gate reopened"}
	if !slices.Equal(w.events, want) {
		t.Errorf("events %q\nwant   %q", w.events, want)
	}
	// A gate that could not close is not reopened, and the reset goes on.
	w, r, logs := newWorld([]tcpConn{c1})
	w.gateErr, w.removeErr = errors.New("no route"), errors.New("netlink says no")
	_ = WithConnReset(worldAddr{w}, r, testVIP).Remove()
	if slices.Contains(w.events, "gate reopened") || !slices.Contains(w.events, "destroy 192.0.2.100:40000") {
		t.Errorf("events %q", w.events)
	}
	if !strings.Contains(logs.String(), "cannot stop new connections") {
		t.Errorf("no warning about the gate:\n%s", logs.String())
	}
}

// Without the kernel option or the capability: one warning, the release
// goes on, and later releases do not try again.
func TestResetUnavailable(t *testing.T) {
	for _, errno := range []error{unix.EOPNOTSUPP, unix.EPERM} {
		t.Run(errno.Error(), func(t *testing.T) {
			w, r, logs := newWorld([]tcpConn{c1})
			w.destroyErr = fmt.Errorf("netlink: %w", errno)
			addr := WithConnReset(worldAddr{w}, r, testVIP)
			for range 3 {
				if err := addr.Remove(); err != nil {
					t.Fatal(err)
				}
			}
			if got := strings.Count(strings.Join(w.events, " "), "remove"); got != 3 {
				t.Errorf("%d removals, want 3: %q", got, w.events)
			}
			if w.lists != 1 {
				t.Errorf("%d listings, want 1 (no retry after 'unavailable')", w.lists)
			}
			if n := strings.Count(logs.String(), "cannot reset"); n != 1 {
				t.Errorf("%d warnings, want 1:\n%s", n, logs.String())
			}
		})
	}
	// A socket closed between the listing and the destroy is no failure.
	w, r, logs := newWorld([]tcpConn{c1}, nil)
	w.destroyErr = unix.ENOENT
	r.Reset(testVIP)
	if !strings.Contains(logs.String(), "connections=0") || strings.Contains(logs.String(), "level=WARN") {
		t.Errorf("ENOENT on destroy:\n%s", logs.String())
	}
}

// VIPs released at once (SIGTERM, a failing check) share their listings:
// the resets asked for while one runs are served by the next, so 16 VIPs
// list the sockets a few times, not 16 times, and each VIP's connections
// are still reset, and counted for it.
func TestResetsAskedTogetherShareTheListings(t *testing.T) {
	const vips = 16
	socks := &liveSockets{}
	var want []netip.Addr
	for i := range vips {
		vip := netip.AddrFrom4([4]byte{192, 0, 2, byte(50 + i)})
		want = append(want, vip)
		socks.conns = append(socks.conns,
			tcpConn{local: netip.AddrPortFrom(vip, 5432), remote: netip.MustParseAddrPort("192.0.2.100:40000"), state: tcpEstablished},
			tcpConn{local: netip.AddrPortFrom(vip, 5432), remote: netip.MustParseAddrPort("192.0.2.101:40000"), state: tcpCloseWait})
	}
	socks.conns = append(socks.conns, other)
	r := &ConnResetter{log: slog.New(slog.NewTextHandler(io.Discard, nil)), gate: openGate{}, sockets: socks}
	r.working = true // another VIP's listing runs: the 16 wait for the next
	counts := make(chan int, vips)
	for _, vip := range want {
		go func() { counts <- must(r.resetTogether(vip)) }()
	}
	for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(time.Millisecond) {
		r.mu.Lock()
		queued := len(r.queue)
		r.mu.Unlock()
		if queued == vips {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d of %d resets queued after 5 s", queued, vips)
		}
	}
	go r.serve() // the other listing is over
	for range vips {
		if n := <-counts; n != 2 {
			t.Errorf("a VIP's reset counted %d connections, want 2", n)
		}
	}
	socks.mu.Lock()
	defer socks.mu.Unlock()
	if socks.lists != 2 {
		t.Errorf("%d listings for %d VIPs asked for together, want 2 (a pass that destroys is checked by one more)", socks.lists, vips)
	}
	if len(socks.conns) != 1 || socks.conns[0] != other {
		t.Errorf("left %v, want only the host's own connection", socks.conns)
	}
}

func must(n int, err error) int {
	if err != nil {
		panic(err)
	}
	return n
}

// liveSockets is a socket table whose destroyed sockets are gone from the
// next listing.
type liveSockets struct {
	mu    sync.Mutex
	conns []tcpConn
	lists int
}

func (l *liveSockets) tcpConns(bool) ([]tcpConn, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.lists++
	return slices.Clone(l.conns), nil
}

func (l *liveSockets) destroy(c tcpConn) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	i := slices.Index(l.conns, c)
	if i < 0 {
		return unix.ENOENT
	}
	l.conns = slices.Delete(l.conns, i, i+1)
	return nil
}

type openGate struct{}

func (openGate) close(netip.Addr) error  { return nil }
func (openGate) reopen(netip.Addr) error { return nil }
