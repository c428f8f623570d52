package main

import (
	"log/slog"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

var hookVIP = netip.MustParseAddr("192.0.2.50")

func hookChange(from, to vipState) stateChange {
	return stateChange{VIP: hookVIP, Interface: "eth0", From: from, To: to, Reason: "test", At: t0}
}

func TestHookPick(t *testing.T) {
	r := newHookRunner([]string{"up"}, []string{"down"}, []string{"change"}, time.Second, slog.New(slog.DiscardHandler))
	cases := []struct {
		from, to       vipState
		upDown, onChng string // hook names, "" for none
	}{
		{stateStandby, stateClaiming, "", "on-change"},
		{stateStandby, stateFencing, "", "on-change"},
		{stateFencing, stateClaiming, "", "on-change"},
		{stateFencing, stateActive, "on-up", "on-change"},
		{stateClaiming, stateActive, "on-up", "on-change"},
		{stateStandby, stateActive, "on-up", "on-change"},
		{stateActive, stateStandby, "on-down", "on-change"},
		{stateActive, stateYielding, "on-down", "on-change"},
		{stateYielding, stateStandby, "", "on-change"},
		{stateClaiming, stateStandby, "", "on-change"},
		{stateActive, stateActive, "", ""}, // a fact update, not a transition
		{stateStandby, stateStandby, "", ""},
	}
	for _, tc := range cases {
		c := hookChange(tc.from, tc.to)
		if got, _ := r.pickHook(laneUpDown, c); got != tc.upDown {
			t.Errorf("%s→%s: up/down lane runs %q, want %q", tc.from, tc.to, got, tc.upDown)
		}
		if got, _ := r.pickHook(laneChange, c); got != tc.onChng {
			t.Errorf("%s→%s: change lane runs %q, want %q", tc.from, tc.to, got, tc.onChng)
		}
	}
	// A hook that is not configured is not run.
	r = newHookRunner(nil, []string{}, nil, time.Second, slog.New(slog.DiscardHandler))
	if len(r.laneKinds()) != 0 {
		t.Errorf("no hooks configured, but lanes %v", r.laneKinds())
	}
	if _, argv := r.pickHook(laneUpDown, hookChange(stateClaiming, stateActive)); argv != nil {
		t.Errorf("unconfigured on-up picked: %q", argv)
	}
}

func TestHookEnvironment(t *testing.T) {
	c := hookChange(stateClaiming, stateActive)
	c.Holder = net.HardwareAddr{2, 0, 0, 0, 0, 1}
	c.Reason = "holder silent"
	got := strings.Join(changeEnv(c), "\n")
	want := strings.Join([]string{
		"FLOATIP_STATE=active",
		"FLOATIP_PREVIOUS_STATE=claiming",
		"FLOATIP_VIP=192.0.2.50",
		"FLOATIP_INTERFACE=eth0",
		"FLOATIP_HOLDER=02:00:00:00:00:01",
		"FLOATIP_REASON=holder silent",
	}, "\n")
	if got != want {
		t.Errorf("env:\n%s\nwant:\n%s", got, want)
	}
	c.Holder = nil
	if env := changeEnv(c); env[4] != "FLOATIP_HOLDER=" {
		t.Errorf("no holder: %q, want empty FLOATIP_HOLDER", env[4])
	}
}

// hookScript is an argv that appends "name state previous vip iface holder
// reason" to file, after sleeping.
func hookScript(file, name string, sleep string) []string {
	return []string{"sh", "-c", `sleep "$3"; echo "$2 $FLOATIP_STATE $FLOATIP_PREVIOUS_STATE $FLOATIP_VIP $FLOATIP_INTERFACE $FLOATIP_HOLDER $FLOATIP_REASON" >> "$1"`, "sh", file, name, sleep}
}

func readHookLines(t *testing.T, file string) []string {
	t.Helper()
	b, err := os.ReadFile(file)
	if os.IsNotExist(err) {
		return nil
	}
	if err != nil {
		t.Fatal(err)
	}
	if strings.TrimSpace(string(b)) == "" {
		return nil // created by the shell's >>, not written yet
	}
	return strings.Split(strings.TrimSpace(string(b)), "\n")
}

func TestHookRunsOnUpDownChange(t *testing.T) {
	dir := t.TempDir()
	updown, changes := filepath.Join(dir, "updown"), filepath.Join(dir, "change")
	var logs syncBuffer
	r := newHookRunner(hookScript(updown, "up", "0"), hookScript(updown, "down", "0"), hookScript(changes, "change", "0"),
		5*time.Second, slog.New(slog.NewTextHandler(&logs, nil)))

	up := hookChange(stateClaiming, stateActive)
	up.Holder = net.HardwareAddr{2, 0, 0, 0, 0, 9}
	r.stateChanged(up)
	waitFor(t, 5*time.Second, "on-up and on-change", func() bool { return len(readHookLines(t, updown)) == 1 && len(readHookLines(t, changes)) == 1 })
	r.stateChanged(hookChange(stateActive, stateStandby))
	r.wait()

	if got, want := strings.Join(readHookLines(t, updown), "\n"),
		"up active claiming 192.0.2.50 eth0 02:00:00:00:00:09 test\ndown standby active 192.0.2.50 eth0  test"; got != want {
		t.Errorf("on-up/on-down runs:\n%s\nwant:\n%s", got, want)
	}
	if got, want := strings.Join(readHookLines(t, changes), "\n"),
		"change active claiming 192.0.2.50 eth0 02:00:00:00:00:09 test\nchange standby active 192.0.2.50 eth0  test"; got != want {
		t.Errorf("on-change runs:\n%s\nwant:\n%s", got, want)
	}
	if n := strings.Count(logs.String(), "msg=\"hook finished\""); n != 4 {
		t.Errorf("%d 'hook finished' lines, want 4:\n%s", n, logs.String())
	}
	if !strings.Contains(logs.String(), "hook=on-down vip=192.0.2.50 state=standby previous_state=active exit=0 duration=") {
		t.Errorf("on-down log line lacks its fields:\n%s", logs.String())
	}

	// After wait, nothing runs any more.
	r.stateChanged(hookChange(stateStandby, stateActive))
	time.Sleep(100 * time.Millisecond)
	if n := len(readHookLines(t, updown)); n != 2 {
		t.Errorf("a hook ran after wait: %d runs", n)
	}
}

func TestHookNeverBlocksAndTimesOut(t *testing.T) {
	var logs syncBuffer
	r := newHookRunner([]string{"sh", "-c", "echo starting; sleep 30"}, nil, nil, 300*time.Millisecond, slog.New(slog.NewTextHandler(&logs, nil)))
	start := time.Now()
	r.stateChanged(hookChange(stateClaiming, stateActive))
	if d := time.Since(start); d > 100*time.Millisecond {
		t.Errorf("stateChanged blocked for %v", d)
	}
	r.wait()
	if d := time.Since(start); d < 300*time.Millisecond || d > 5*time.Second {
		t.Errorf("wait returned after %v; want the 300ms timeout", d)
	}
	if l := logs.String(); !strings.Contains(l, "hook timed out and was killed") || !strings.Contains(l, "output=starting") || !strings.Contains(l, "exit=-1") {
		t.Errorf("timeout not logged with output and exit:\n%s", l)
	}
}

func TestHookFailureIsLogged(t *testing.T) {
	var logs syncBuffer
	r := newHookRunner(nil, nil, []string{"sh", "-c", "echo oops >&2; exit 3"}, 5*time.Second, slog.New(slog.NewTextHandler(&logs, nil)))
	r.stateChanged(hookChange(stateStandby, stateClaiming))
	r.wait()
	if l := logs.String(); !strings.Contains(l, `msg="hook failed" hook=on-change`) || !strings.Contains(l, "exit=3") || !strings.Contains(l, "output=oops") {
		t.Errorf("failure not logged with exit and output:\n%s", l)
	}

	logs = syncBuffer{}
	r = newHookRunner([]string{"/nonexistent/hook"}, nil, nil, 5*time.Second, slog.New(slog.NewTextHandler(&logs, nil)))
	r.stateChanged(hookChange(stateClaiming, stateActive))
	r.wait()
	if l := logs.String(); !strings.Contains(l, "hook failed") || !strings.Contains(l, "/nonexistent/hook") {
		t.Errorf("missing hook not logged:\n%s", l)
	}
}

// TestHookCoalescesABurst: changes that come while a run is busy are merged
// into one pending run from the last reported state to the newest.
func TestHookCoalescesABurst(t *testing.T) {
	dir := t.TempDir()
	changes, updown := filepath.Join(dir, "change"), filepath.Join(dir, "updown")
	var logs syncBuffer
	r := newHookRunner(hookScript(updown, "up", "0.3"), hookScript(updown, "down", "0"), hookScript(changes, "change", "0.3"),
		5*time.Second, slog.New(slog.NewTextHandler(&logs, nil)))
	r.stateChanged(hookChange(stateClaiming, stateActive)) // runs at once: on-up, on-change
	r.stateChanged(hookChange(stateActive, stateYielding)) // pending
	r.stateChanged(hookChange(stateYielding, stateStandby))
	r.stateChanged(hookChange(stateStandby, stateClaiming)) // pending is now active→claiming
	r.wait()

	if got, want := strings.Join(readHookLines(t, changes), "\n"),
		"change active claiming 192.0.2.50 eth0  test\nchange claiming active 192.0.2.50 eth0  test"; got != want {
		t.Errorf("on-change runs:\n%s\nwant:\n%s", got, want)
	}
	// The up/down lane: on-up, then one on-down for the merged active→claiming.
	if got, want := strings.Join(readHookLines(t, updown), "\n"),
		"up active claiming 192.0.2.50 eth0  test\ndown claiming active 192.0.2.50 eth0  test"; got != want {
		t.Errorf("on-up/on-down runs:\n%s\nwant:\n%s", got, want)
	}
	if !strings.Contains(logs.String(), "hook skipped") {
		t.Errorf("superseded runs not logged:\n%s", logs.String())
	}
}

// TestHookCoalescedRoundTripRunsNothing: active→standby→active during an
// on-up leaves the lane where the last run left it.
func TestHookCoalescedRoundTripRunsNothing(t *testing.T) {
	file := filepath.Join(t.TempDir(), "updown")
	r := newHookRunner(hookScript(file, "up", "0.3"), hookScript(file, "down", "0"), nil, 5*time.Second, slog.New(slog.DiscardHandler))
	r.stateChanged(hookChange(stateStandby, stateActive))
	r.stateChanged(hookChange(stateActive, stateStandby))
	r.stateChanged(hookChange(stateStandby, stateActive))
	r.wait()
	if got := readHookLines(t, file); len(got) != 1 || !strings.HasPrefix(got[0], "up active standby") {
		t.Errorf("runs %q, want only the first on-up", got)
	}
}

// TestHookLanesOfVIPsAreIndependent: a slow hook of one VIP does not delay
// another VIP's hook.
func TestHookLanesOfVIPsAreIndependent(t *testing.T) {
	file := filepath.Join(t.TempDir(), "up")
	argv := []string{"sh", "-c", `[ "$FLOATIP_VIP" = 192.0.2.50 ] && sleep 2; echo "$FLOATIP_VIP" >> "$1"`, "sh", file}
	r := newHookRunner(argv, nil, nil, 5*time.Second, slog.New(slog.DiscardHandler))
	defer r.wait()
	r.stateChanged(hookChange(stateClaiming, stateActive))
	other := hookChange(stateClaiming, stateActive)
	other.VIP = netip.MustParseAddr("192.0.2.51")
	r.stateChanged(other)
	waitFor(t, time.Second, "the other VIP's hook", func() bool { return len(readHookLines(t, file)) == 1 })
	if got := readHookLines(t, file); got[0] != "192.0.2.51" {
		t.Errorf("first run for %s, want 192.0.2.51", got[0])
	}
}
