package integration

// Lab tests of `floatip status`: run in each host's namespace, it must name
// the holder (and in a pool the assignee) that really has the address.

import (
	"encoding/json"
	"fmt"
	"strings"
	"syscall"
	"testing"
	"time"

	"floatip/internal/status"

	"floatip/internal/fiptest"
)

// labStatus runs `floatip status --json` in host and decodes it.
func labStatus(l *fiptest.Lab, host string, args ...string) ([]status.Report, error) {
	out, err := l.Run(host, append([]string{l.Binary(), "status", "--json"}, args...)...)
	if err != nil {
		return nil, fmt.Errorf("floatip status in %s: %v\n%s", host, err, out)
	}
	var reps []status.Report
	if err := json.Unmarshal([]byte(out), &reps); err != nil {
		return nil, fmt.Errorf("floatip status --json in %s: %v\n%s", host, err, out)
	}
	return reps, nil
}

// statusMismatch compares one host's report of the VIPs with who really
// holds them (truth: VIP → "h1", "h2", ... or "" for nobody); "" when they
// agree.
func statusMismatch(host string, reps []status.Report, truth map[string]string) string {
	if len(reps) != 1 || reps[0].Interface != "eth0" {
		return fmt.Sprintf("%s: want one report for eth0, got %d", host, len(reps))
	}
	r := reps[0]
	if r.MAC != fiptest.HostMACOf(host) {
		return fmt.Sprintf("%s: report says this node is %q, want %s", host, r.MAC, fiptest.HostMACOf(host))
	}
	if len(r.VIPs) != len(truth) {
		return fmt.Sprintf("%s: %d VIPs in the report, want %d", host, len(r.VIPs), len(truth))
	}
	for _, v := range r.VIPs {
		holder, ok := truth[v.VIP]
		switch {
		case !ok:
			return fmt.Sprintf("%s: unexpected VIP %s", host, v.VIP)
		case v.HeldHere != (holder == host):
			return fmt.Sprintf("%s: %s held_here=%v (state %s), but it is held by %q", host, v.VIP, v.HeldHere, v.State, holder)
		case holder != host && holder != "" && v.Holder != fiptest.HostMACOf(holder):
			return fmt.Sprintf("%s: %s holder %q (state %s), but %s (%s) holds it", host, v.VIP, v.Holder, v.State, holder, fiptest.HostMACOf(holder))
		case holder == host && v.Holder != "":
			return fmt.Sprintf("%s: %s is held here, but the report also names %s", host, v.VIP, v.Holder)
		}
	}
	return ""
}

func TestLabStatusCommand(t *testing.T) {
	t.Parallel()
	l := fiptest.NewLab(t, 2)

	// No daemon: exit 2 and one line that says so.
	for _, args := range [][]string{{"status"}, {"status", "-i", "eth0"}} {
		out, err := l.Run("h1", append([]string{l.Binary()}, args...)...)
		want := "floatip: no floatip daemon in this network namespace\n"
		if len(args) > 1 {
			want = "floatip: no floatip daemon on eth0 in this network namespace (nothing listens on @floatip/eth0)\n"
		}
		if code := exitCodeOf(err); code != 2 || out != want {
			t.Errorf("%v without a daemon: exit %d, output %q; want exit 2 and %q", args, code, out, want)
		}
	}

	_, h2 := startPair(t, l, nil, nil)
	truth := func() map[string]string {
		holder := ""
		for _, h := range []string{"h1", "h2"} {
			if l.HostHasAddr(h, labVIP+"/32") {
				holder = h
			}
		}
		return map[string]string{labVIP: holder}
	}
	agree := func(what string) {
		t.Helper()
		waitStatus(t, 10*time.Second, what+": floatip status on both hosts names the real holder", func() string {
			want := truth()
			for _, h := range []string{"h1", "h2"} {
				reps, err := labStatus(l, h)
				if err != nil {
					return err.Error()
				}
				if bad := statusMismatch(h, reps, want); bad != "" {
					return bad
				}
			}
			return ""
		})
	}
	agree("h1 holds")

	// Once the holder's tagged self-checks are heard, the standby knows
	// its priority; and the holder hears the standby's probes.
	waitStatus(t, 5*time.Second, "each host hears the other", func() string {
		for _, h := range []string{"h1", "h2"} {
			reps, err := labStatus(l, h)
			if err != nil {
				return err.Error()
			}
			r := reps[0]
			other, prio := "h2", 100
			if h == "h2" {
				other, prio = "h1", 200
			}
			if len(r.Peers) != 1 || r.Peers[0].MAC != fiptest.HostMACOf(other) || r.Peers[0].Priority != prio || !r.Healthy {
				return fmt.Sprintf("%s's report: %+v", h, r)
			}
			if v := r.VIPs[0]; h == "h2" && (v.State != "standby" || v.HolderPriority != 200) {
				return fmt.Sprintf("%s's report: %+v", h, r)
			}
		}
		return ""
	})
	table := l.MustRun("h2", l.Binary(), "status")
	t.Logf("floatip status on h2:\n%s", table)
	for _, want := range []string{
		"eth0: this node " + fiptest.HostMAC(2) + ", priority 100, healthy\n",
		"  peers: " + fiptest.HostMAC(1) + " priority 200, heard ",
	} {
		if !strings.Contains(table, want) {
			t.Errorf("h2's table lacks %q:\n%s", want, table)
		}
	}
	if !strings.Contains(table, labVIP+"  standby  ") || !strings.Contains(table, fiptest.HostMAC(1)+" (priority 200)") {
		t.Errorf("h2's table does not show the VIP on standby, held by h1 (priority 200):\n%s", table)
	}
	if out := l.MustRun("h1", l.Binary(), "status", "-i", "eth0"); !strings.Contains(out, "this node\n") || !strings.Contains(out, "active") {
		t.Errorf("h1's table does not show the VIP active, held by this node:\n%s", out)
	}

	// A second daemon on the same interface: a loud line, and it keeps running.
	second := l.StartDaemon("h2", "-i", "eth0", "--no-reference", "192.0.2.60")
	fiptest.WaitFor(t, 5*time.Second, "the second daemon's complaint", func() bool {
		return strings.Contains(second.Logs(), "another floatip daemon already runs on this interface")
	})
	time.Sleep(300 * time.Millisecond)
	if !second.Running() {
		t.Errorf("the second daemon exited:\n%s", second.Logs())
	}
	stopDaemon(t, second)

	// The holder dies: the status follows.
	l.Script("cut", "h1")
	waitActive(t, l, "h2", 5*time.Second)
	if out, err := l.Run("h2", l.Binary(), "status"); err != nil || !strings.Contains(out, labVIP+"  active") {
		t.Errorf("after h1's death, h2's status (%v):\n%s", err, out)
	}
	// The SIGUSR1 line names the node it took over from as such (it is
	// no second holder).
	h2.Signal(syscall.SIGUSR1)
	want := "status: " + labVIP + " on eth0: active since "
	fiptest.WaitFor(t, 5*time.Second, "h2's status line", func() bool { return strings.Contains(h2.Logs(), want) })
	if !strings.Contains(h2.Logs(), "previous holder "+fiptest.HostMAC(1)) {
		t.Errorf("h2's status line does not name h1 as the previous holder:\n%s", fiptest.LastLines(h2.Logs(), 5))
	}
}

// waitStatus polls check (every 200 ms) until it returns ""; on timeout
// the test fails with its last complaint.
func waitStatus(t *testing.T, timeout time.Duration, what string, check func() string) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		bad := check()
		if bad == "" {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s; last: %s", timeout, what, bad)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// stopDaemon ends a daemon with SIGTERM and waits for it.
func stopDaemon(t *testing.T, d *fiptest.Process) {
	t.Helper()
	d.Signal(syscall.SIGTERM)
	if _, err := d.Wait(5 * time.Second); err != nil {
		t.Errorf("stopping %s: %v", d.Name, err)
	}
}

func TestLabStatusPool(t *testing.T) {
	t.Parallel()
	pl := newPoolLab(t, 3, 6)
	hosts := []string{"h1", "h2", "h3"}
	// canonical: the assignment over members is pool.Assign's; otherwise
	// (after a death) it follows the holders.
	check := func(what string, up []string, canonical bool, members ...int) {
		t.Helper()
		fiptest.WaitFor(t, 20*time.Second, what+": the VIPs balanced", func() bool { return pl.balancedOn(members...) })
		want := pl.heldAs()
		if canonical {
			want = pl.assignment(members...)
		}
		waitStatus(t, 10*time.Second, what+": floatip status on every host names the real holder and the assignee", func() string {
			holder := pl.holderOf()
			for _, h := range up {
				reps, err := labStatus(pl.Lab, h)
				if err != nil {
					return err.Error()
				}
				if bad := statusMismatch(h, reps, holder); bad != "" {
					return bad
				}
				r := reps[0]
				if !r.Pool || len(r.Members) != len(members) {
					return fmt.Sprintf("%s: pool %v, members %+v, want %d", h, r.Pool, r.Members, len(members))
				}
				for _, v := range r.VIPs {
					if p := v.Pool; p == nil || p.Assignee != want[v.VIP] || p.AssignedHere != (want[v.VIP] == fiptest.HostMACOf(h)) || !p.AsAssigned {
						return fmt.Sprintf("%s: %s pool status %+v, assigned to %s, held by %s", h, v.VIP, p, want[v.VIP], holder[v.VIP])
					}
				}
			}
			return ""
		})
	}
	check("start", hosts, true, 1, 2, 3)
	table := pl.MustRun("h1", pl.Binary(), "status")
	t.Logf("floatip status on h1:\n%s", table)
	if n := strings.Count(table, "  yes\n"); n != len(pl.vips) {
		t.Errorf("h1's table has %d VIPs held as assigned, want %d:\n%s", n, len(pl.vips), table)
	}
	if !strings.Contains(table, "  pool members (3): ") {
		t.Errorf("h1's table does not list 3 pool members:\n%s", table)
	}

	before := pl.holderOf()
	pl.Script("cut", "h2")
	check("after h2's death", []string{"h1", "h3"}, false, 1, 3)
	pl.survivorsKept("after h2's death", before, "h2")
	pl.checkRunning()
}
