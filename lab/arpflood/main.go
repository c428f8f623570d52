// Command arpflood sends a bounded flood of foreign ARP for a floating IP
// on a lab LAN, to check that floatip's holder keeps it:
//
//	arpflood -i eth0 -vip 192.0.2.50 -to 02:00:00:00:00:01 -rate 10000 -duration 25s
//
// Every frame has a new random sender MAC (unicast, locally administered).
// The kinds, in turn: gratuitous ARP claiming the VIP, replies for the VIP
// (to the VIP, and as a kernel answers a probe), probes with floatip tags
// that outrank the holder, that it outranks, that say "releasing", that
// carry a bad version or priority 0, and malformed frames (short, wrong
// hardware type, wrong hardware address length). Frames go to the -to MAC
// (default broadcast) through a datagram packet socket, so the kernel
// builds the Ethernet header with this host's own MAC.
//
// Lab safety: the VIP must be in a documentation range and the interface
// must carry an address in one (a lab host); the rate and the duration are
// capped. It prints a JSON summary on stdout when done.
package main

import (
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"math/rand/v2"
	"net"
	"net/netip"
	"os"
	"os/signal"
	"syscall"
	"time"

	"floatip/lab/labnet"

	"github.com/mdlayher/packet"
	"golang.org/x/sys/unix"
)

const (
	maxRate     = 50000
	maxDuration = 5 * time.Minute
)

// kinds are the frames of the flood, sent in turn.
var kinds = []string{
	"gratuitous", "reply", "answer",
	"tag-outranks", "tag-outranked", "tag-releasing", "tag-bad-version", "tag-priority-0",
	"short", "bad-hardware-type", "bad-hardware-length",
}

type summary struct {
	Interface  string         `json:"interface"`
	VIP        string         `json:"vip"`
	To         string         `json:"to"`
	Sent       int            `json:"sent"`
	Errors     int            `json:"errors"`
	FirstError string         `json:"first_error,omitempty"`
	DurationMs int64          `json:"duration_ms"`
	Rate       float64        `json:"frames_per_second"`
	ByKind     map[string]int `json:"by_kind"`
}

func main() {
	ifname := flag.String("i", "", "interface (on the lab LAN)")
	vipFlag := flag.String("vip", "", "the floating IP to flood about (documentation ranges only)")
	toFlag := flag.String("to", "ff:ff:ff:ff:ff:ff", "Ethernet destination of the frames")
	rate := flag.Int("rate", 10000, fmt.Sprintf("frames per second, at most %d", maxRate))
	duration := flag.Duration("duration", 10*time.Second, fmt.Sprintf("how long, at most %v", maxDuration))
	seed := flag.Uint64("seed", uint64(time.Now().UnixNano()), "random seed")
	flag.Parse()
	if err := run(*ifname, *vipFlag, *toFlag, *rate, *duration, *seed); err != nil {
		fmt.Fprintln(os.Stderr, "arpflood:", err)
		os.Exit(1)
	}
}

func run(ifname, vipText, toText string, rate int, duration time.Duration, seed uint64) error {
	vip, err := netip.ParseAddr(vipText)
	if err != nil || !vip.Is4() || !labnet.InRanges(vip) {
		return fmt.Errorf("-vip %q: want an IPv4 address in 192.0.2.0/24, 198.51.100.0/24 or 203.0.113.0/24", vipText)
	}
	to, err := net.ParseMAC(toText)
	if err != nil || len(to) != 6 {
		return fmt.Errorf("-to %q: want an Ethernet MAC", toText)
	}
	if rate < 1 || rate > maxRate || duration <= 0 || duration > maxDuration {
		return fmt.Errorf("-rate must be 1..%d and -duration at most %v", maxRate, maxDuration)
	}
	ifi, err := net.InterfaceByName(ifname)
	if err != nil {
		return err
	}
	if !labHost(ifi) {
		return fmt.Errorf("%s has no address in a documentation range: not a lab host", ifname)
	}
	conn, err := packet.Listen(ifi, packet.Datagram, unix.ETH_P_ARP, nil)
	if err != nil {
		return fmt.Errorf("open packet socket on %s: %w", ifname, err)
	}
	defer conn.Close()

	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	ctx, cancel := context.WithTimeout(ctx, duration)
	defer cancel()

	r := rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15))
	s := summary{Interface: ifname, VIP: vip.String(), To: to.String(), ByKind: map[string]int{}}
	dst := &packet.Addr{HardwareAddr: to}
	start := time.Now()
	for i := 0; ctx.Err() == nil; {
		// Send what is due by now, then sleep a millisecond: the rate holds
		// on average without a timer per frame.
		due := int(time.Since(start).Seconds() * float64(rate))
		for ; i < due && ctx.Err() == nil; i++ {
			kind := kinds[i%len(kinds)]
			if _, err := conn.WriteTo(flood(r, kind, vip, to), dst); err != nil {
				s.Errors++
				if s.FirstError == "" {
					s.FirstError = err.Error()
				}
				if errors.Is(err, unix.ENXIO) || errors.Is(err, unix.ENODEV) {
					return fmt.Errorf("send on %s: %w", ifname, err)
				}
				continue
			}
			s.Sent++
			s.ByKind[kind]++
		}
		time.Sleep(time.Millisecond)
	}
	elapsed := time.Since(start)
	s.DurationMs = elapsed.Milliseconds()
	s.Rate = float64(s.Sent) / elapsed.Seconds()
	return json.NewEncoder(os.Stdout).Encode(s)
}

// labHost tells whether the interface carries an address in a
// documentation range.
func labHost(ifi *net.Interface) bool {
	addrs, err := ifi.Addrs()
	if err != nil {
		return false
	}
	for _, a := range addrs {
		if n, ok := a.(*net.IPNet); ok {
			if ip, ok := netip.AddrFromSlice(n.IP.To4()); ok && labnet.InRanges(ip) {
				return true
			}
		}
	}
	return false
}

func randomMAC(r *rand.Rand) []byte {
	b := make([]byte, 6)
	for i := range b {
		b[i] = byte(r.UintN(256))
	}
	b[0] = b[0]&0xfc | 0x02 // unicast, locally administered
	return b
}

// arpPayload builds an ARP payload with any field values, valid or not.
func arpPayload(htype uint16, op uint16, sha []byte, spa netip.Addr, tha []byte, tpa netip.Addr) []byte {
	b := make([]byte, 0, 8+2*len(sha)+8)
	b = binary.BigEndian.AppendUint16(b, htype)
	b = binary.BigEndian.AppendUint16(b, unix.ETH_P_IP)
	b = append(b, byte(len(sha)), 4)
	b = binary.BigEndian.AppendUint16(b, op)
	s4, t4 := spa.As4(), tpa.As4()
	b = append(b, sha...)
	b = append(b, s4[:]...)
	b = append(b, tha...)
	return append(b, t4[:]...)
}

func flood(r *rand.Rand, kind string, vip netip.Addr, to []byte) []byte {
	const request, reply = 1, 2
	sha := randomMAC(r)
	zero := netip.IPv4Unspecified()
	broadcast := []byte{0xff, 0xff, 0xff, 0xff, 0xff, 0xff}
	tag := func(version, priority, flags byte) []byte { return []byte{'f', 'i', 'p', version, priority, flags} }
	switch kind {
	case "gratuitous":
		return arpPayload(1, request, sha, vip, broadcast, vip)
	case "reply":
		return arpPayload(1, reply, sha, vip, sha, vip)
	case "answer":
		return arpPayload(1, reply, sha, vip, to, zero)
	case "tag-outranks":
		return arpPayload(1, request, sha, zero, tag(1, 255, 0x01), vip)
	case "tag-outranked":
		return arpPayload(1, request, sha, zero, tag(1, 1, 0x01), vip)
	case "tag-releasing":
		return arpPayload(1, request, sha, zero, tag(1, 200, 0x02), vip)
	case "tag-bad-version":
		return arpPayload(1, request, sha, zero, tag(9, 255, 0x01), vip)
	case "tag-priority-0":
		return arpPayload(1, request, sha, zero, tag(1, 0, 0x01), vip)
	case "short":
		full := arpPayload(1, request, sha, vip, broadcast, vip)
		return full[:1+r.IntN(len(full)-1)]
	case "bad-hardware-type":
		return arpPayload(6, request, sha, vip, broadcast, vip) // IEEE 802, not Ethernet
	default: // "bad-hardware-length": 8-byte hardware addresses
		return arpPayload(1, request, append(sha, 0, 0), vip, append(broadcast, 0, 0), vip)
	}
}
