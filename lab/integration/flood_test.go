package integration

// Lab test of bad input from the LAN: a flood of foreign ARP for the VIP
// (lab/arpflood, about 10 000 frames/s from another lab host, with
// malformed frames and invalid floatip tags) against a holder.

import (
	"encoding/json"
	"fmt"
	"os"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"floatip/internal/engine"

	"floatip/internal/fiptest"
)

// labMetric reads one sample of host's metrics endpoint at 127.0.0.1:9810
// (a counter of labVIP on eth0, or any sample named in full).
func labMetric(t *testing.T, l *fiptest.Lab, host, sample string) float64 {
	t.Helper()
	out := l.MustRun(host, "bash", "-c", `exec 3<>/dev/tcp/127.0.0.1/9810; printf 'GET /metrics HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n' >&3; cat <&3`)
	m := regexp.MustCompile(`(?m)^` + regexp.QuoteMeta(sample) + ` ([0-9.e+]+)\r?$`).FindStringSubmatch(out)
	if m == nil {
		t.Fatalf("no sample %s in the metrics of %s:\n%s", sample, host, out)
	}
	v, err := strconv.ParseFloat(m[1], 64)
	if err != nil {
		t.Fatal(err)
	}
	return v
}

// cpuTicks is the user and system CPU time of a process, in clock ticks
// (USER_HZ, 100 per second on Linux).
func cpuTicks(t *testing.T, pid int) (user, system int) {
	t.Helper()
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		t.Fatal(err)
	}
	// The fields after the command name, which is in parentheses.
	f := strings.Fields(string(b[strings.LastIndexByte(string(b), ')')+2:]))
	utime, _ := strconv.Atoi(f[11])
	stime, _ := strconv.Atoi(f[12])
	return utime, stime
}

type floodSummary struct {
	Sent       int            `json:"sent"`
	Errors     int            `json:"errors"`
	FirstError string         `json:"first_error"`
	DurationMs int64          `json:"duration_ms"`
	Rate       float64        `json:"frames_per_second"`
	ByKind     map[string]int `json:"by_kind"`
}

// TestLabForeignARPFlood: 25 s of foreign ARP for the VIP at 10 000
// frames/s, each frame from a new random MAC: the holder keeps the VIP (the
// client is answered by it throughout), defends at most once per
// DEFEND_INTERVAL (and does defend), logs a bounded number of lines, and its
// CPU stays bounded. The flood goes to the holder's MAC: broadcast
// gratuitous ARP from foreign MACs would poison the client's cache whatever
// the holder does, and the test is about the holder.
//
// Not parallel: the flood's CPU cost must not disturb the timing of other
// fiptest.Lab tests, nor theirs the CPU figure.
func TestLabForeignARPFlood(t *testing.T) {
	const floodFor = 25 * time.Second
	const sample = `floatip_announcements_total{vip="192.0.2.50",interface="eth0"}`
	l := fiptest.NewLab(t, 2)
	l.StartEchoServer("h1", fmt.Sprintf("%s:%d", labVIP, fiptest.EchoPort))
	h1 := l.StartDaemon("h1", "-i", "eth0", "--priority", "200", "--refresh", "0",
		"--metrics-listen", "127.0.0.1:9810", labVIP)
	waitActive(t, l, "h1", 5*time.Second)
	// The claim's five announcements are over before counting defences.
	fiptest.WaitFor(t, 10*time.Second, "the claim's announcements", func() bool { return labMetric(t, l, "h1", sample) >= 5 })
	if !l.ClientPing(labVIP) {
		t.Fatal("client cannot reach the VIP before the flood")
	}
	flooder := fiptest.BuildARPFlood(t)

	announced := labMetric(t, l, "h1", sample)
	logLines := strings.Count(h1.Logs(), "\n")
	client := l.UDPClient(floodFor+3*time.Second, 20*time.Millisecond)
	time.Sleep(time.Second)

	user0, sys0 := cpuTicks(t, h1.PID())
	start := time.Now()
	flood := l.StartProcess("h2", "arpflood", flooder, "-i", "eth0", "-vip", labVIP, "-to", fiptest.HostMAC(1),
		"-rate", "10000", "-duration", floodFor.String())
	lost := 0
	for !flood.Exited() && time.Since(start) < floodFor+10*time.Second {
		if !l.HostHasAddr("h1", labVIP+"/32") {
			lost++
		}
		time.Sleep(500 * time.Millisecond)
	}
	code, err := flood.Wait(5 * time.Second)
	elapsed := time.Since(start)
	user1, sys1 := cpuTicks(t, h1.PID())
	share := func(ticks int) float64 { return float64(ticks) / 100 / elapsed.Seconds() } // of one core
	cpu := share(user1 - user0 + sys1 - sys0)
	defences := labMetric(t, l, "h1", sample) - announced
	floodLines := strings.Count(h1.Logs(), "\n") - logLines
	if err != nil || code != 0 {
		t.Fatalf("arpflood: exit %d, %v\n%s", code, err, flood.Logs())
	}
	var fs floodSummary
	out := strings.TrimSpace(flood.Logs())
	if err := json.Unmarshal([]byte(out[strings.LastIndexByte(out, '\n')+1:]), &fs); err != nil {
		t.Fatalf("arpflood summary: %v\n%s", err, out)
	}
	s := <-client
	if s.Err != nil {
		t.Fatalf("%v\n%s", s.Err, s.Stderr)
	}
	t.Logf("flood: %d frames in %d ms (%.0f frames/s, %d send errors), by kind %v", fs.Sent, fs.DurationMs, fs.Rate, fs.Errors, fs.ByKind)
	t.Logf("holder: CPU %.1f%% of a core (user %.1f%%, system %.1f%%) over %v, %v defences, %d log lines; client: %d/%d answered, longest gap %d ms",
		100*cpu, 100*share(user1-user0), 100*share(sys1-sys0), elapsed.Round(time.Millisecond), defences, floodLines, s.Answered, s.Sent, s.LongestGapMs)

	// The flood happened, at a real rate, with every kind of frame.
	if fs.Rate < 2000 || len(fs.ByKind) < 11 {
		t.Fatalf("flood too weak to test anything: %.0f frames/s, kinds %v (first error %q)", fs.Rate, fs.ByKind, fs.FirstError)
	}
	// The holder kept the VIP, and the client was answered by it throughout.
	if lost > 0 || !l.HostHasAddr("h1", labVIP+"/32") {
		t.Errorf("h1 lost the VIP during the flood (%d of the checks every 500 ms)", lost)
	}
	if s.Answered < s.Sent*95/100 || s.ByResponder["h1"] != s.Answered || s.LongestGapMs > 1000 {
		t.Errorf("client during the flood: %+v", s)
	}
	if got := l.ClientNeighMAC(labVIP); got != fiptest.HostMAC(1) {
		t.Errorf("client's ARP entry for the VIP is %q, want h1 %s", got, fiptest.HostMAC(1))
	}
	// RFC 5227: it defends, but never more than once per DEFEND_INTERVAL.
	if max := float64(int(elapsed/engine.DefendInterval) + 1); defences < 1 || defences > max {
		t.Errorf("%v defences in %v of flood, want 1..%v", defences, elapsed, max)
	}
	// Logs: a handful of lines, not one per frame or per MAC.
	if floodLines > 20 {
		t.Errorf("%d log lines during the flood:\n%s", floodLines, fiptest.LastLines(h1.Logs(), floodLines))
	}
	// CPU: a generous bound; the figure is in the log above.
	if cpu > 0.75 {
		t.Errorf("holder used %.0f%% of a core during the flood", 100*cpu)
	}
}
