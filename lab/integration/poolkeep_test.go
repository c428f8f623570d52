package integration

// Lab test of the rule that a death in a pool (--spread) moves only the
// dead node's VIPs: a VIP held by a survivor keeps its holder, and so its
// clients' connections.

import (
	"fmt"
	"slices"
	"testing"
	"time"

	"floatip/internal/fiptest"
)

// newPoolLabMACs is newPoolLab with host hI's eth0 on macs[I-1] instead of
// the lab's MAC, set before the daemons start.
func newPoolLabMACs(t *testing.T, macs []string, vips int) *poolLab {
	l := fiptest.NewLab(t, len(macs))
	l.MustRun("c", "ip", "route", "add", "198.51.100.0/24", "dev", "eth0")
	pl := &poolLab{Lab: l, n: len(macs), vips: scaleVIPs(vips), daemons: map[string]*fiptest.Process{}, macs: map[string]string{}}
	for i, mac := range macs {
		h := fmt.Sprintf("h%d", i+1)
		l.MustRun(h, "sh", "-c", "ip link set dev eth0 down && ip link set dev eth0 address "+mac+" && ip link set dev eth0 up")
		pl.macs[h] = mac
	}
	for i := 1; i <= len(macs); i++ {
		pl.Start(i)
	}
	return pl
}

// 5 hosts × 16 VIPs with MACs other than the lab's. The host whose death
// would reshuffle the most survivors' VIPs under the canonical assignment
// dies: "crash" kills its daemon with -9 and cuts its link (the host is
// gone), "kill9" kills only the daemon (its kernel keeps the addresses and
// answers for them; the survivors find it gone by its silence). Throughout,
// no survivor's VIP gets another holder; each of the dead host's VIPs gets
// one holder among the survivors, 4 VIPs each, and the client reaches every
// VIP there. The host comes back: the canonical assignment again.
func TestLabPoolDeathKeepsSurvivors(t *testing.T) {
	t.Parallel()
	for _, mode := range []string{"crash", "kill9"} {
		t.Run(mode, func(t *testing.T) {
			t.Parallel()
			testLabPoolDeathKeeps(t, mode)
		})
	}
}

func testLabPoolDeathKeeps(t *testing.T, mode string) {
	pl := newPoolLabMACs(t, fiptest.SeededMACs(3, 5), 16)
	all := []int{1, 2, 3, 4, 5}
	fiptest.WaitFor(t, 30*time.Second, "16 VIPs balanced over 5 hosts", func() bool { return pl.balancedOn(all...) })
	want5 := pl.assignment(all...)
	pl.onAssignees("start", want5)
	fiptest.WaitFor(t, 15*time.Second, "the client to reach every VIP at its holder", func() bool { return len(pl.clientReachesAll()) == 0 })
	before := pl.holderOf()

	// The victim: the host whose death the canonical assignment of the
	// survivors would answer with the most moves between survivors.
	victim, most := 0, -1
	for _, d := range all {
		survivors := slices.DeleteFunc(slices.Clone(all), func(i int) bool { return i == d })
		want4 := pl.assignment(survivors...)
		n := 0
		for v, h := range before {
			if h != fmt.Sprintf("h%d", d) && pl.macOf(h) != want4[v] {
				n++
			}
		}
		if n > most {
			victim, most = d, n
		}
	}
	dead := fmt.Sprintf("h%d", victim)
	survivors := slices.DeleteFunc(slices.Clone(all), func(i int) bool { return i == victim })
	t.Logf("killing %s (%s), whose death the canonical assignment would answer with %d moves between survivors", dead, mode, most)

	// Where each VIP is held, among the survivors only (after kill -9 the
	// dead host's kernel keeps its copies).
	onSurvivors := func() map[string][]string {
		out := map[string][]string{}
		for h, vs := range heldVIPs(pl.Lab, pl.n, pl.vips) {
			if h == dead {
				continue
			}
			for _, v := range vs {
				out[v] = append(out[v], h)
			}
		}
		return out
	}
	settled := func(held map[string][]string) bool {
		for _, v := range pl.vips {
			if len(held[v]) != 1 {
				return false
			}
		}
		return true
	}
	checkKept := func(held map[string][]string, since time.Duration) {
		t.Helper()
		for v, h := range before {
			if h != dead && !slices.Equal(held[v], []string{h}) {
				t.Fatalf("%v after the kill: %s, held by the survivor %s, is on %v", since.Round(time.Millisecond), v, h, held[v])
			}
		}
	}

	killed := time.Now()
	kill9(t, pl.daemons[dead])
	if mode == "crash" {
		pl.Script("cut", dead)
	}
	var back time.Duration
	for time.Since(killed) < 30*time.Second {
		held := onSurvivors()
		checkKept(held, time.Since(killed))
		if settled(held) {
			back = time.Since(killed)
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	if back == 0 {
		t.Fatalf("%s's VIPs not held by one survivor each 30s after the kill: %v", dead, onSurvivors())
	}
	t.Logf("%s's %d VIPs held by the survivors %v after the kill", dead, len(heldOf(before, dead)), back.Round(time.Millisecond))
	// And nothing moves afterwards: no planned move undoes it.
	for end := time.Now().Add(8 * time.Second); time.Now().Before(end); time.Sleep(250 * time.Millisecond) {
		checkKept(onSurvivors(), time.Since(killed))
	}
	held := onSurvivors()
	if !settled(held) {
		t.Fatalf("after the kill: %v", held)
	}
	load := map[string]int{}
	for _, hs := range held {
		load[hs[0]]++
	}
	for _, i := range survivors {
		if h := fmt.Sprintf("h%d", i); load[h] != 4 {
			t.Errorf("after the kill %s holds %d VIPs, want 4 (%v)", h, load[h], load)
		}
	}
	// The client reaches each VIP at its survivor.
	byHost := map[string][]string{}
	for v, hs := range held {
		byHost[hs[0]] = append(byHost[hs[0]], v)
	}
	var unreached []string
	defer func() {
		if t.Failed() && len(unreached) > 0 {
			t.Logf("last unreached: %v", unreached)
		}
	}()
	fiptest.WaitFor(t, 15*time.Second, "the client to reach every VIP at its survivor", func() bool {
		unreached = nil
		for h, vs := range byHost {
			unreached = append(unreached, clientUnreached(pl.Lab, vs, pl.macOf(h))...)
		}
		return len(unreached) == 0
	})
	// What the survivors' `floatip status` says: the four of them are the
	// members, and every VIP is assigned to its holder, on every survivor.
	var disagree string
	defer func() {
		if t.Failed() && disagree != "" {
			t.Logf("last status mismatch: %s", disagree)
		}
	}()
	fiptest.WaitFor(t, 10*time.Second, "every survivor's status to show each VIP assigned to its holder", func() bool {
		disagree = ""
		for _, i := range survivors {
			h := fmt.Sprintf("h%d", i)
			reps, err := labStatus(pl.Lab, h)
			if err != nil || len(reps) != 1 {
				disagree = fmt.Sprintf("%s: %v %v", h, err, reps)
				return false
			}
			if len(reps[0].Members) != len(survivors) {
				disagree = fmt.Sprintf("%s: members %v", h, reps[0].Members)
				return false
			}
			for _, v := range reps[0].VIPs {
				if v.Pool == nil || v.Pool.Assignee != pl.macOf(held[v.VIP][0]) || !v.Pool.AsAssigned {
					disagree = fmt.Sprintf("%s: %s assigned to %+v, held by %s", h, v.VIP, v.Pool, held[v.VIP][0])
					return false
				}
			}
		}
		return true
	})
	pl.checkRunningExcept(dead)

	// The dead host comes back: after its hold-down, the canonical
	// assignment over all five, by planned moves.
	if mode == "crash" {
		pl.Script("heal", dead)
	}
	pl.Start(victim)
	fiptest.WaitFor(t, 40*time.Second, "16 VIPs on their canonical assignees over 5 hosts again", func() bool {
		if !pl.balancedOn(all...) {
			return false
		}
		holder := pl.holderOf()
		for _, v := range pl.vips {
			if pl.macOf(holder[v]) != want5[v] {
				return false
			}
		}
		return true
	})
	pl.onAssignees("after the rejoin", want5)
	fiptest.WaitFor(t, 15*time.Second, "the client to reach every VIP at its holder", func() bool { return len(pl.clientReachesAll()) == 0 })
	pl.checkRunning()
}

// checkRunningExcept is checkRunning for every daemon but host's.
func (pl *poolLab) checkRunningExcept(host string) {
	for h, d := range pl.daemons {
		if h != host && !d.Running() {
			pl.T.Errorf("%s's daemon exited: %s", h, fiptest.LastLines(d.Logs(), 20))
		}
	}
}
