package operator

import (
	"log/slog"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"floatip/internal/fiptest"

	"floatip/internal/event"
)

var hookVIP = netip.MustParseAddr("192.0.2.50")

func hookChange(from, to event.State) event.Change {
	return event.Change{VIP: hookVIP, Interface: "eth0", From: from, To: to, Reason: "test", At: fiptest.T0}
}

func TestHookPick(t *testing.T) {
	r := NewHookRunner([]string{"up"}, []string{"down"}, []string{"change"}, time.Second, slog.New(slog.DiscardHandler))
	cases := []struct {
		from, to       event.State
		upDown, onChng string // hook names, "" for none
	}{
		{event.Standby, event.Claiming, "", "on-change"},
		{event.Standby, event.Fencing, "", "on-change"},
		{event.Fencing, event.Claiming, "", "on-change"},
		{event.Fencing, event.Active, "on-up", "on-change"},
		{event.Claiming, event.Active, "on-up", "on-change"},
		{event.Standby, event.Active, "on-up", "on-change"},
		{event.Active, event.Standby, "on-down", "on-change"},
		{event.Active, event.Yielding, "on-down", "on-change"},
		{event.Yielding, event.Standby, "", "on-change"},
		{event.Claiming, event.Standby, "", "on-change"},
		{event.Active, event.Active, "", ""}, // a fact update, not a transition
		{event.Standby, event.Standby, "", ""},
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
	r = NewHookRunner(nil, []string{}, nil, time.Second, slog.New(slog.DiscardHandler))
	if len(r.laneKinds()) != 0 {
		t.Errorf("no hooks configured, but lanes %v", r.laneKinds())
	}
	if _, argv := r.pickHook(laneUpDown, hookChange(event.Claiming, event.Active)); argv != nil {
		t.Errorf("unconfigured on-up picked: %q", argv)
	}
}

func TestHookEnvironment(t *testing.T) {
	c := hookChange(event.Claiming, event.Active)
	c.Holder = net.HardwareAddr{2, 0, 0, 0, 0, 1}
	c.Reason = "holder silent"
	got := strings.Join(ChangeEnv(c), "\n")
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
	if env := ChangeEnv(c); env[4] != "FLOATIP_HOLDER=" {
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
	var logs fiptest.SyncBuffer
	r := NewHookRunner(hookScript(updown, "up", "0"), hookScript(updown, "down", "0"), hookScript(changes, "change", "0"),
		5*time.Second, slog.New(slog.NewTextHandler(&logs, nil)))

	up := hookChange(event.Claiming, event.Active)
	up.Holder = net.HardwareAddr{2, 0, 0, 0, 0, 9}
	r.StateChanged(up)
	fiptest.WaitFor(t, 5*time.Second, "on-up and on-change", func() bool { return len(readHookLines(t, updown)) == 1 && len(readHookLines(t, changes)) == 1 })
	r.StateChanged(hookChange(event.Active, event.Standby))
	r.Wait()

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
	r.StateChanged(hookChange(event.Standby, event.Active))
	time.Sleep(100 * time.Millisecond)
	if n := len(readHookLines(t, updown)); n != 2 {
		t.Errorf("a hook ran after wait: %d runs", n)
	}
}

func TestHookNeverBlocksAndTimesOut(t *testing.T) {
	var logs fiptest.SyncBuffer
	r := NewHookRunner([]string{"sh", "-c", "echo starting; sleep 30"}, nil, nil, 300*time.Millisecond, slog.New(slog.NewTextHandler(&logs, nil)))
	start := time.Now()
	r.StateChanged(hookChange(event.Claiming, event.Active))
	if d := time.Since(start); d > 100*time.Millisecond {
		t.Errorf("stateChanged blocked for %v", d)
	}
	r.Wait()
	if d := time.Since(start); d < 300*time.Millisecond || d > 5*time.Second {
		t.Errorf("wait returned after %v; want the 300ms timeout", d)
	}
	if l := logs.String(); !strings.Contains(l, "hook timed out and was killed") || !strings.Contains(l, "output=starting") || !strings.Contains(l, "exit=-1") {
		t.Errorf("timeout not logged with output and exit:\n%s", l)
	}
}

func TestHookFailureIsLogged(t *testing.T) {
	var logs fiptest.SyncBuffer
	r := NewHookRunner(nil, nil, []string{"sh", "-c", "echo oops >&2; exit 3"}, 5*time.Second, slog.New(slog.NewTextHandler(&logs, nil)))
	r.StateChanged(hookChange(event.Standby, event.Claiming))
	r.Wait()
	if l := logs.String(); !strings.Contains(l, `msg="hook failed" hook=on-change`) || !strings.Contains(l, "exit=3") || !strings.Contains(l, "output=oops") {
		t.Errorf("failure not logged with exit and output:\n%s", l)
	}

	logs = fiptest.SyncBuffer{}
	r = NewHookRunner([]string{"/nonexistent/hook"}, nil, nil, 5*time.Second, slog.New(slog.NewTextHandler(&logs, nil)))
	r.StateChanged(hookChange(event.Claiming, event.Active))
	r.Wait()
	if l := logs.String(); !strings.Contains(l, "hook failed") || !strings.Contains(l, "/nonexistent/hook") {
		t.Errorf("missing hook not logged:\n%s", l)
	}
}

// TestHookCoalescesABurst: changes that come while a run is busy are merged
// into one pending run from the last reported state to the newest.
func TestHookCoalescesABurst(t *testing.T) {
	dir := t.TempDir()
	changes, updown := filepath.Join(dir, "change"), filepath.Join(dir, "updown")
	var logs fiptest.SyncBuffer
	r := NewHookRunner(hookScript(updown, "up", "0.3"), hookScript(updown, "down", "0"), hookScript(changes, "change", "0.3"),
		5*time.Second, slog.New(slog.NewTextHandler(&logs, nil)))
	r.StateChanged(hookChange(event.Claiming, event.Active)) // runs at once: on-up, on-change
	r.StateChanged(hookChange(event.Active, event.Yielding)) // pending
	r.StateChanged(hookChange(event.Yielding, event.Standby))
	r.StateChanged(hookChange(event.Standby, event.Claiming)) // pending is now active→claiming
	r.Wait()

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
	r := NewHookRunner(hookScript(file, "up", "0.3"), hookScript(file, "down", "0"), nil, 5*time.Second, slog.New(slog.DiscardHandler))
	r.StateChanged(hookChange(event.Standby, event.Active))
	r.StateChanged(hookChange(event.Active, event.Standby))
	r.StateChanged(hookChange(event.Standby, event.Active))
	r.Wait()
	if got := readHookLines(t, file); len(got) != 1 || !strings.HasPrefix(got[0], "up active standby") {
		t.Errorf("runs %q, want only the first on-up", got)
	}
}

// TestHookLanesOfVIPsAreIndependent: a slow hook of one VIP does not delay
// another VIP's hook.
func TestHookLanesOfVIPsAreIndependent(t *testing.T) {
	file := filepath.Join(t.TempDir(), "up")
	argv := []string{"sh", "-c", `[ "$FLOATIP_VIP" = 192.0.2.50 ] && sleep 2; echo "$FLOATIP_VIP" >> "$1"`, "sh", file}
	r := NewHookRunner(argv, nil, nil, 5*time.Second, slog.New(slog.DiscardHandler))
	defer r.Wait()
	r.StateChanged(hookChange(event.Claiming, event.Active))
	other := hookChange(event.Claiming, event.Active)
	other.VIP = netip.MustParseAddr("192.0.2.51")
	r.StateChanged(other)
	fiptest.WaitFor(t, time.Second, "the other VIP's hook", func() bool { return len(readHookLines(t, file)) == 1 })
	if got := readHookLines(t, file); got[0] != "192.0.2.51" {
		t.Errorf("first run for %s, want 192.0.2.51", got[0])
	}
}
