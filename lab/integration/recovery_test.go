package integration

// Lab tests of crash recovery (internal/engine/recovery.go): a daemon killed with -9 leaves
// its VIP configured; when it starts again it keeps the VIP only if no other
// node holds it.

import (
	"fmt"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"floatip/internal/fiptest"
)

// frozen tells whether the process is stopped (SIGSTOP): /proc/PID/stat
// field 3 is "T".
func frozen(pid int) bool {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return false
	}
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	return i > 0 && i+2 < len(s) && s[i+2] == 'T'
}

// kill9 kills the daemon with SIGKILL and waits for it to be gone.
func kill9(t *testing.T, d *fiptest.Process) {
	t.Helper()
	d.Signal(syscall.SIGKILL)
	if _, err := d.Wait(5 * time.Second); err != nil {
		t.Fatal(err)
	}
}

// freezeSelf is an operator command that stops its parent, the daemon, right
// where it ran (a hook after the add or the removal, a fence before the add),
// so the test can kill -9 it at that exact point.
const freezeSelf = "sh -c 'kill -STOP $PPID'"

// waitFrozen waits until the daemon stopped itself through freezeSelf.
func waitFrozen(t *testing.T, d *fiptest.Process, within time.Duration) {
	t.Helper()
	fiptest.WaitFor(t, within, d.Name+" to freeze itself", func() bool { return frozen(d.PID()) })
}

// adopted tells whether a daemon adopted a VIP left by an earlier run.
func adopted(d *fiptest.Process) bool {
	return strings.Contains(d.Logs(), "adopting the copy left by an earlier run")
}

// TestLabRestartDropsAStaleCopy: the holder is killed with -9 (its VIP stays
// configured) and cut off, so the standby takes over; when the cut heals
// both hosts have the VIP, and the restarted daemon must find the new holder
// and remove its stale copy without ever pulling the client back.
func TestLabRestartDropsAStaleCopy(t *testing.T) {
	t.Parallel()
	l := fiptest.NewLab(t, 2)
	l.StartEchoServers()
	h1Args := []string{"-i", "eth0", "--priority", "100", labVIP}
	h1 := l.StartDaemon("h1", h1Args...)
	waitActive(t, l, "h1", 5*time.Second)
	// h2 outranks h1 but does not preempt: it stays a standby until h1 fails.
	h2 := l.StartDaemon("h2", "-i", "eth0", "--priority", "200", labVIP)
	waitStandby(t, h2, 5*time.Second)
	// The client talks to the VIP first: announcements update an existing
	// ARP entry but do not create one.
	if !l.ClientPing(labVIP) {
		t.Fatal("setup: the client cannot reach the VIP")
	}

	kill9(t, h1)
	if !l.HostHasAddr("h1", labVIP+"/32") {
		t.Fatal("setup: kill -9 removed the VIP; nothing stale to test")
	}
	l.Script("isolate", "h1")
	waitActive(t, l, "h2", 5*time.Second)
	l.Script("unisolate", "h1")
	time.Sleep(1500 * time.Millisecond)
	if hs := holders(l, 2); len(hs) != 2 {
		t.Fatalf("setup: holders %v, want both (h1's stale copy and h2)", hs)
	}
	fiptest.WaitFor(t, 3*time.Second, "the client to point at h2", func() bool { return l.ClientNeighMAC(labVIP) == fiptest.HostMAC(2) })

	summary := l.UDPClient(5*time.Second, 10*time.Millisecond)
	time.Sleep(500 * time.Millisecond)
	restart := time.Now()
	h1b := l.StartDaemon("h1", h1Args...)
	waitSoleHolder(t, l, 2, "h2", 5*time.Second)
	dropped := time.Since(restart)
	s := <-summary
	if s.Err != nil {
		t.Fatalf("%v\n%s", s.Err, s.Stderr)
	}
	if s.ByResponder["h1"] != 0 || s.LastResponder != "h2" || len(s.Changes) != 0 {
		t.Errorf("client across the restart: answers %v, changes %v; want h2 only (the stale copy must never pull it back)", s.ByResponder, s.Changes)
	}
	if !strings.Contains(h1b.Logs(), "removing the stale copy") || adopted(h1b) || claims(h1b) != 0 {
		t.Errorf("restarted h1 did not simply drop its stale copy:\n%s", h1b.Logs())
	}
	time.Sleep(2 * time.Second)
	waitSoleHolder(t, l, 2, "h2", time.Second)
	if !strings.Contains(h1b.Logs(), "VIP is held") {
		t.Errorf("restarted h1 is not a standby of h2:\n%s", h1b.Logs())
	}
	t.Logf("stale copy removed %v after the restart", dropped.Round(time.Millisecond))
}

// TestLabRestartKeepsARightfulVIP: the holder is killed with -9 and
// restarted while nobody else took the VIP (alone, or with a standby that
// kept seeing the holder's kernel answer): it keeps the VIP, and the client
// never loses it, even while the daemon is dead.
func TestLabRestartKeepsARightfulVIP(t *testing.T) {
	t.Parallel()
	for _, hosts := range []int{1, 2} {
		t.Run(fmt.Sprintf("%d hosts", hosts), func(t *testing.T) {
			l := fiptest.NewLab(t, hosts)
			l.StartEchoServers()
			h1Args := []string{"-i", "eth0", "--priority", "200", labVIP}
			h1 := l.StartDaemon("h1", h1Args...)
			waitActive(t, l, "h1", 5*time.Second)
			var h2 *fiptest.Process
			if hosts == 2 {
				h2 = l.StartDaemon("h2", "-i", "eth0", labVIP)
				waitStandby(t, h2, 5*time.Second)
			}

			var absent atomic.Int64
			stop := make(chan struct{})
			var watch sync.WaitGroup
			watch.Go(func() {
				for {
					select {
					case <-stop:
						return
					case <-time.After(50 * time.Millisecond):
					}
					if !l.HostHasAddr("h1", labVIP+"/32") {
						absent.Add(1)
					}
				}
			})
			summary := l.UDPClient(5*time.Second, 10*time.Millisecond)
			time.Sleep(500 * time.Millisecond)
			kill9(t, h1)
			time.Sleep(time.Second) // the daemon is dead; the kernel still serves the VIP
			restart := time.Now()
			h1b := l.StartDaemon("h1", h1Args...)
			fiptest.WaitFor(t, 5*time.Second, "the restarted h1 to adopt the VIP", func() bool { return adopted(h1b) })
			took := time.Since(restart)
			s := <-summary
			close(stop)
			watch.Wait()
			if n := absent.Load(); n != 0 {
				t.Errorf("the VIP was missing from h1 in %d checks across the restart", n)
			}
			if s.Err != nil {
				t.Fatalf("%v\n%s", s.Err, s.Stderr)
			}
			if s.LongestGapMs > 200 || len(s.Changes) != 0 || s.LastResponder != "h1" {
				t.Errorf("client: longest gap %d ms, changes %v, last answer %q; want h1 throughout", s.LongestGapMs, s.Changes, s.LastResponder)
			}
			waitSoleHolder(t, l, hosts, "h1", time.Second)
			if h2 != nil && claims(h2) != 0 {
				t.Errorf("the standby claimed while the holder's daemon was dead")
			}
			if !strings.Contains(h1b.Logs(), "keeping it while checking") {
				t.Errorf("restarted h1 did not say it found the VIP:\n%s", h1b.Logs())
			}
			t.Logf("adopted %v after the restart; client's longest gap %d ms", took.Round(time.Millisecond), s.LongestGapMs)
		})
	}
}

// TestLabKillMidClaimOrRelease: a daemon killed -9 at a chosen point of a
// claim or a release (it freezes itself there through a hook or the fence,
// then the test kills it) leaves the VIP configured or not; after the
// restarts exactly one host holds it.
func TestLabKillMidClaimOrRelease(t *testing.T) {
	t.Parallel()
	h1Args := []string{"-i", "eth0", "--priority", "200", labVIP}
	h2Args := []string{"-i", "eth0", labVIP}

	// After the add, announcements unfinished: h2 claims on h1's release
	// notice and freezes in its --on-up hook.
	t.Run("claim after the add", func(t *testing.T) {
		l := fiptest.NewLab(t, 2)
		h1, h2 := startPair(t, l, nil, []string{"--on-up=" + freezeSelf})
		h1.Signal(syscall.SIGTERM)
		if _, err := h1.Wait(5 * time.Second); err != nil {
			t.Fatal(err)
		}
		waitFrozen(t, h2, 5*time.Second)
		if !l.HostHasAddr("h2", labVIP+"/32") {
			t.Fatal("setup: h2 froze without the VIP")
		}
		kill9(t, h2)
		// The old holder comes back first: h2's kernel still answers, so it
		// must not claim; then h2 restarts and finds nobody else holding.
		h1b := l.StartDaemon("h1", h1Args...)
		waitStandby(t, h1b, 5*time.Second)
		h2b := l.StartDaemon("h2", h2Args...)
		fiptest.WaitFor(t, 5*time.Second, "h2 to adopt its VIP", func() bool { return adopted(h2b) })
		assertSoleHolder(t, l, "h2")
		if claims(h1b) != 0 {
			t.Errorf("h1 claimed a VIP that h2's kernel kept answering for")
		}
	})

	// Before the add: h1 is killed and cut off without a release notice, h2
	// freezes in its --fence step; the VIP is only h1's stale copy.
	t.Run("claim during the fence", func(t *testing.T) {
		l := fiptest.NewLab(t, 2)
		h1, h2 := startPair(t, l, nil, []string{"--fence=" + freezeSelf})
		kill9(t, h1)
		l.Script("isolate", "h1")
		waitFrozen(t, h2, 5*time.Second)
		if l.HostHasAddr("h2", labVIP+"/32") {
			t.Fatal("setup: h2 froze after adding the VIP")
		}
		kill9(t, h2)
		l.Script("unisolate", "h1")
		h2b := l.StartDaemon("h2", h2Args...)
		waitStandby(t, h2b, 5*time.Second) // h1's kernel answers
		h1b := l.StartDaemon("h1", h1Args...)
		fiptest.WaitFor(t, 5*time.Second, "h1 to adopt its VIP", func() bool { return adopted(h1b) })
		assertSoleHolder(t, l, "h1")
		if claims(h2b) != 0 {
			t.Errorf("h2 claimed a VIP that h1's kernel kept answering for")
		}
	})

	// After the removal, before exit: h1 stops on SIGTERM, removes the VIP,
	// sends its release notice and freezes in its --on-down hook.
	t.Run("release after the removal", func(t *testing.T) {
		l := fiptest.NewLab(t, 2)
		h1, h2 := startPair(t, l, []string{"--on-down=" + freezeSelf}, nil)
		h1.Signal(syscall.SIGTERM)
		waitFrozen(t, h1, 5*time.Second)
		if l.HostHasAddr("h1", labVIP+"/32") {
			t.Fatal("setup: h1 froze before removing the VIP")
		}
		kill9(t, h1)
		waitActive(t, l, "h2", 5*time.Second)
		h1b := l.StartDaemon("h1", h1Args...)
		waitStandby(t, h1b, 5*time.Second)
		assertSoleHolder(t, l, "h2")
		if claims(h1b) != 0 || claims(h2) != 1 {
			t.Errorf("claims: restarted h1 %d, h2 %d", claims(h1b), claims(h2))
		}
	})
}

// assertSoleHolder checks that want alone holds the VIP, stays so for 2 s,
// and that the client reaches it there.
func assertSoleHolder(t *testing.T, l *fiptest.Lab, want string) {
	t.Helper()
	waitSoleHolder(t, l, l.Hosts, want, 2*time.Second)
	time.Sleep(2 * time.Second)
	if hs := holders(l, l.Hosts); len(hs) != 1 || hs[0] != want {
		t.Fatalf("holders %v 2 s later, want %s alone", hs, want)
	}
	if !l.ClientPing(labVIP) {
		t.Fatal("the client cannot reach the VIP")
	}
	if got := l.ClientNeighMAC(labVIP); got != fiptest.HostMACOf(want) {
		t.Errorf("client's cache points at %q, want %s (%s)", got, fiptest.HostMACOf(want), want)
	}
}

// TestLabVIPAddedByHandOnAStandby: an operator adds the VIP by hand on the
// standby (`ip addr add`): its kernel now answers for it, a second holder on
// the wire. The standby's daemon must check it as a copy found at start and
// remove it, since h1 holds the VIP; the client stays with h1.
func TestLabVIPAddedByHandOnAStandby(t *testing.T) {
	t.Parallel()
	l := fiptest.NewLab(t, 2)
	l.StartEchoServers()
	l.StartDaemon("h1", "-i", "eth0", "--priority", "200", labVIP)
	waitActive(t, l, "h1", 5*time.Second)
	h2 := l.StartDaemon("h2", "-i", "eth0", "--priority", "100", labVIP)
	waitStandby(t, h2, 5*time.Second)
	if !l.ClientPing(labVIP) {
		t.Fatal("setup: the client cannot reach the VIP")
	}
	added := time.Now()
	l.MustRun("h2", "ip", "addr", "add", labVIP+"/32", "dev", "eth0")
	waitSoleHolder(t, l, 2, "h1", 3*time.Second)
	t.Logf("the copy added by hand on the standby was removed %v later", time.Since(added).Round(time.Millisecond))
	if !strings.Contains(h2.Logs(), "added to the interface outside floatip") || !strings.Contains(h2.Logs(), "removing the stale copy") {
		t.Errorf("h2 did not check and drop the copy added by hand:\n%s", h2.Logs())
	}
	time.Sleep(time.Second)
	waitSoleHolder(t, l, 2, "h1", time.Second)
	if l.ClientNeighMAC(labVIP) != fiptest.HostMAC(1) {
		t.Errorf("client's ARP cache points at %q, want h1 %s", l.ClientNeighMAC(labVIP), fiptest.HostMAC(1))
	}
	if !strings.Contains(h2.Logs(), "VIP is held") {
		t.Errorf("h2 is not a standby of h1 again:\n%s", h2.Logs())
	}
}
