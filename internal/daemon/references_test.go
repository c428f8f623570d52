package daemon

import (
	"io"
	"log/slog"
	"net/netip"
	"testing"
	"time"

	"floatip/internal/fiptest"
	"floatip/internal/wire/frame"

	"github.com/mdlayher/arp"
)

type countingSender struct{ sent []netip.Addr }

func (c *countingSender) ProbeAddress(ip netip.Addr) error {
	c.sent = append(c.sent, ip)
	return nil
}

func TestReferenceWatchHeardAt(t *testing.T) {
	ref := netip.MustParseAddr("192.0.2.1")
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	sender := &countingSender{}
	r := &References{explicit: []netip.Addr{ref}, sender: sender, minGap: 50 * time.Millisecond, log: log}
	if at, asked := r.HeardAt(fiptest.T0); !asked || !at.IsZero() {
		t.Fatalf("before any answer: %v %v, want zero, asked", at, asked)
	}
	r.Probe(fiptest.T0)
	r.Probe(fiptest.T0.Add(10 * time.Millisecond)) // rate-limited
	if len(sender.sent) != 1 || sender.sent[0] != ref {
		t.Errorf("probes sent %v, want one to %s", sender.sent, ref)
	}
	answer := &frame.Frame{Packet: fiptest.ARP(arp.OperationReply, "02:00:00:00:00:fe", ref, "02:00:00:00:00:09", frame.ZeroIPv4)}
	answer.Received = fiptest.T0.Add(1 * time.Millisecond)
	r.saw(*answer)
	other := &frame.Frame{Packet: fiptest.ARP(arp.OperationReply, "02:00:00:00:00:fd", netip.MustParseAddr("192.0.2.2"), "02:00:00:00:00:09", frame.ZeroIPv4)}
	other.Received = fiptest.T0.Add(5 * time.Millisecond)
	r.saw(*other) // not a reference
	if at, asked := r.HeardAt(fiptest.T0.Add(10 * time.Millisecond)); !asked || !at.Equal(fiptest.T0.Add(time.Duration(1)*time.Millisecond)) {
		t.Errorf("after the answer: %v %v, want %v, asked", at, asked, fiptest.T0.Add(time.Duration(1)*time.Millisecond))
	}
	none := &References{sender: sender, log: log} // --no-reference-like: no gateway, none given
	if _, asked := none.HeardAt(fiptest.T0); asked {
		t.Error("a watch with no reference hosts says it asked")
	}
}
