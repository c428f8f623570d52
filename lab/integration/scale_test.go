package integration

// Lab test of scale (issue 9): 3 hosts share 256 VIPs; the holder dies,
// and every VIP answers the client again from the new holder; a partition
// heal leaves exactly one holder per VIP.

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"floatip/internal/fiptest"
)

// scaleVIPs are n addresses in 198.51.100.0/24 and, past 254, 203.0.113.0/24.
func scaleVIPs(n int) []string {
	vips := make([]string, 0, n)
	for i := 1; len(vips) < n; i++ {
		if i <= 254 {
			vips = append(vips, fmt.Sprintf("198.51.100.%d", i))
		} else {
			vips = append(vips, fmt.Sprintf("203.0.113.%d", i-254))
		}
	}
	return vips
}

// heldVIPs maps each host h1..hN to the VIPs (of vips) on its eth0.
func heldVIPs(l *fiptest.Lab, n int, vips []string) map[string][]string {
	want := map[string]bool{}
	for _, v := range vips {
		want[v+"/32"] = true
	}
	held := map[string][]string{}
	for i := 1; i <= n; i++ {
		h := fmt.Sprintf("h%d", i)
		out, err := l.Run(h, "ip", "-o", "-4", "addr", "show", "dev", "eth0")
		if err != nil {
			continue
		}
		for _, line := range strings.Split(out, "\n") {
			f := strings.Fields(line)
			for j := 0; j+1 < len(f); j++ {
				if f[j] == "inet" && want[f[j+1]] {
					held[h] = append(held[h], strings.TrimSuffix(f[j+1], "/32"))
				}
			}
		}
	}
	return held
}

// holdersPerVIP counts, for each VIP, the hosts holding it.
func holdersPerVIP(held map[string][]string) map[string]int {
	count := map[string]int{}
	for _, vs := range held {
		for _, v := range vs {
			count[v]++
		}
	}
	return count
}

// clientUnreached pings every VIP from the client at once and returns those
// that did not answer, or that answered from another MAC than wantMAC.
func clientUnreached(l *fiptest.Lab, vips []string, wantMAC string) []string {
	l.T.Helper()
	for _, v := range vips {
		fiptest.RequireLabAddr(l.T, v)
	}
	// 32 at a time, so that one call stays well inside the lab's 10 s limit.
	script := `printf '%s\n' "$@" | xargs -P 32 -I{} sh -c 'ping -n -q -c 1 -W 1 {} >/dev/null 2>&1 || echo "noanswer {}"'`
	var out string
	for start := 0; start < len(vips); start += 64 {
		chunk := vips[start:min(start+64, len(vips))]
		o, err := l.Run("c", append([]string{"bash", "-c", script, "ping-all"}, chunk...)...)
		if err != nil {
			l.T.Fatalf("pinging the VIPs from the client: %v\n%s", err, o)
		}
		out += o
	}
	out += l.MustRun("c", "ip", "neigh", "show", "dev", "eth0")
	bad := map[string]bool{}
	neigh := map[string]string{}
	for _, line := range strings.Split(out, "\n") {
		f := strings.Fields(line)
		switch {
		case len(f) == 2 && f[0] == "noanswer":
			bad[f[1]] = true
		case len(f) >= 3:
			for j := 0; j+1 < len(f); j++ {
				if f[j] == "lladdr" {
					neigh[f[0]] = f[j+1]
				}
			}
		}
	}
	var unreached []string
	for _, v := range vips {
		if bad[v] || neigh[v] != wantMAC {
			unreached = append(unreached, v)
		}
	}
	return unreached
}

func TestLabScale256VIPs(t *testing.T) {
	t.Parallel()
	const hosts = 3
	vips := scaleVIPs(256)
	l := fiptest.NewLab(t, hosts)
	// The client needs a route to the VIPs outside 192.0.2.0/24: through the LAN.
	for _, p := range []string{"198.51.100.0/24", "203.0.113.0/24"} {
		l.MustRun("c", "ip", "route", "add", p, "dev", "eth0")
	}
	for i := 1; i <= hosts; i++ {
		l.MustRun(fmt.Sprintf("h%d", i), "ip", "route", "add", "192.0.2.100/32", "dev", "eth0")
	}
	daemons := map[string]*fiptest.Process{}
	for i := 1; i <= hosts; i++ {
		h := fmt.Sprintf("h%d", i)
		args := append([]string{"-i", "eth0", "--priority", fmt.Sprint(250 - 50*i)}, vips...)
		daemons[h] = l.StartDaemon(h, args...)
	}
	fiptest.WaitFor(t, 30*time.Second, "h1 to hold all 256 VIPs and nobody else any", func() bool {
		held := heldVIPs(l, hosts, vips)
		return len(held["h1"]) == len(vips) && len(held["h2"])+len(held["h3"]) == 0
	})
	if bad := clientUnreached(l, vips, fiptest.HostMAC(1)); len(bad) > 0 {
		t.Fatalf("%d VIPs not reached at h1 from the client: %v", len(bad), bad)
	}

	// The holder dies: h2 takes every VIP, and the client reaches all of them there.
	l.Script("cut", "h1")
	fiptest.WaitFor(t, 20*time.Second, "h2 to hold all 256 VIPs", func() bool {
		return len(heldVIPs(l, hosts, vips)["h2"]) == len(vips)
	})
	fiptest.WaitFor(t, 20*time.Second, "the client to reach all 256 VIPs at h2", func() bool {
		return len(clientUnreached(l, vips, fiptest.HostMAC(2))) == 0
	})
	if got := len(heldVIPs(l, hosts, vips)["h3"]); got != 0 {
		t.Errorf("h3 (lower priority) claimed %d VIPs while h2 was alive", got)
	}

	// h1 comes back as a standby (it released the VIPs when its carrier
	// went). Then a real partition: h2, the holder, is isolated with
	// carrier up, h1 takes every VIP over, and the heal must leave one
	// holder per VIP: h1, the better rank.
	l.Script("heal", "h1")
	fiptest.WaitFor(t, 20*time.Second, "h1 to be back without VIPs", func() bool {
		held := heldVIPs(l, hosts, vips)
		return len(held["h1"]) == 0 && len(held["h2"]) == len(vips)
	})
	time.Sleep(2 * time.Second) // h1's standby learns the holder
	l.Script("isolate", "h2")
	fiptest.WaitFor(t, 20*time.Second, "h1 to take every VIP from the isolated h2", func() bool {
		return len(heldVIPs(l, hosts, vips)["h1"]) == len(vips)
	})
	if held := heldVIPs(l, hosts, vips); len(held["h2"]) != len(vips) {
		t.Fatalf("the isolated h2 holds %d VIPs, the test needs a split brain of all of them", len(held["h2"]))
	}
	l.Script("unisolate", "h2")
	fiptest.WaitFor(t, 30*time.Second, "one holder per VIP after the heal", func() bool {
		count := holdersPerVIP(heldVIPs(l, hosts, vips))
		for _, v := range vips {
			if count[v] != 1 {
				return false
			}
		}
		return true
	})
	held := heldVIPs(l, hosts, vips)
	if len(held["h1"]) != len(vips) {
		t.Errorf("after the heal h1 (the best) holds %d VIPs, h2 %d, h3 %d", len(held["h1"]), len(held["h2"]), len(held["h3"]))
	}
	fiptest.WaitFor(t, 20*time.Second, "the client to reach all 256 VIPs at h1", func() bool {
		return len(clientUnreached(l, vips, fiptest.HostMAC(1))) == 0
	})
	for h, d := range daemons {
		if !d.Running() {
			t.Errorf("%s's daemon exited: %s", h, fiptest.LastLines(d.Logs(), 20))
		}
	}
}
