package operator

import (
	"context"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"floatip/internal/fiptest"
)

// notifyListener is a stand-in for systemd's notify socket.
type notifyListener struct {
	t    *testing.T
	conn *net.UnixConn
	name string
}

func listenNotify(t *testing.T, name string) *notifyListener {
	t.Helper()
	conn, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: name, Net: "unixgram"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	return &notifyListener{t: t, conn: conn, name: name}
}

// next returns the next datagram, or "" after timeout.
func (l *notifyListener) next(timeout time.Duration) string {
	l.t.Helper()
	buf := make([]byte, 4096)
	if err := l.conn.SetReadDeadline(time.Now().Add(timeout)); err != nil {
		l.t.Fatal(err)
	}
	n, err := l.conn.Read(buf)
	if err != nil {
		return ""
	}
	return string(buf[:n])
}

func envOf(m map[string]string) func(string) string {
	return func(k string) string { return m[k] }
}

func TestNotifierPathSocket(t *testing.T) {
	l := listenNotify(t, filepath.Join(t.TempDir(), "notify"))
	n := notifierFromEnv(envOf(map[string]string{"NOTIFY_SOCKET": l.name}), os.Getpid(), slog.New(slog.DiscardHandler))
	if n == nil {
		t.Fatal("no notifier with NOTIFY_SOCKET set")
	}
	steps := []struct {
		send func() error
		want string
	}{
		{n.Ready, "READY=1"},
		{func() error { return n.status("192.0.2.50 on eth0: active since 12:03:04") }, "STATUS=192.0.2.50 on eth0: active since 12:03:04"},
		{func() error { return n.status("a: active\nb: standby\n") }, "STATUS=a: active; b: standby"},
		{func() error { return n.status("x\nREADY=1") }, "STATUS=x; READY=1"}, // no injected assignment
		{n.Stopping, "STOPPING=1"},
	}
	for _, s := range steps {
		if err := s.send(); err != nil {
			t.Fatalf("sending %q: %v", s.want, err)
		}
		if got := l.next(time.Second); got != s.want {
			t.Errorf("datagram %q, want %q", got, s.want)
		}
	}
}

func TestNotifierAbstractSocket(t *testing.T) {
	name := fmt.Sprintf("@floatip-test-%d-%d", os.Getpid(), rand.Uint64())
	l := listenNotify(t, name)
	n := notifierFromEnv(envOf(map[string]string{"NOTIFY_SOCKET": name}), os.Getpid(), slog.New(slog.DiscardHandler))
	if err := n.Ready(); err != nil {
		t.Fatal(err)
	}
	if got := l.next(time.Second); got != "READY=1" {
		t.Errorf("datagram %q, want READY=1", got)
	}
}

func TestNotifierWithoutSystemd(t *testing.T) {
	for _, env := range []map[string]string{
		{},
		{"WATCHDOG_USEC": "1000000"},         // a watchdog without a socket
		{"NOTIFY_SOCKET": "vsock:2:1234"},    // not supported here
		{"NOTIFY_SOCKET": "relative/notify"}, // sd_notify refuses it too
	} {
		n := notifierFromEnv(envOf(env), os.Getpid(), slog.New(slog.DiscardHandler))
		if n != nil {
			t.Errorf("env %v: got a notifier, want nil", env)
		}
		// Every method of a nil notifier is a no-op.
		if err := n.Ready(); err != nil {
			t.Error(err)
		}
		if err := n.status("x"); err != nil {
			t.Error(err)
		}
		if err := n.Stopping(); err != nil {
			t.Error(err)
		}
		n.Post("x")
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
		if err := n.Run(ctx); err != nil || ctx.Err() == nil {
			t.Errorf("nil Run returned %v before ctx ended (%v)", err, ctx.Err())
		}
		cancel()
	}
}

func TestNotifierWatchdogPeriod(t *testing.T) {
	log := slog.New(slog.DiscardHandler)
	cases := []struct {
		usec, wpid string
		want       time.Duration
	}{
		{"", "", 0},
		{"10000000", "", 5 * time.Second},
		{"10000000", "4242", 5 * time.Second}, // ours
		{"10000000", "1", 0},                  // another process's
		{"0", "", 0},
		{"ten", "", 0},
		{"-5", "", 0},
	}
	for _, tc := range cases {
		if got := watchdogPeriod(tc.usec, tc.wpid, 4242, log); got != tc.want {
			t.Errorf("WATCHDOG_USEC=%q WATCHDOG_PID=%q: %v, want %v", tc.usec, tc.wpid, got, tc.want)
		}
	}
}

func TestNotifierRunPingsAndPostsStatus(t *testing.T) {
	l := listenNotify(t, filepath.Join(t.TempDir(), "notify"))
	n := notifierFromEnv(envOf(map[string]string{"NOTIFY_SOCKET": l.name, "WATCHDOG_USEC": "100000"}), os.Getpid(), slog.New(slog.DiscardHandler))
	if n.watchdog != 50*time.Millisecond {
		t.Fatalf("watchdog period %v, want 50ms", n.watchdog)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- n.Run(ctx) }()

	start := time.Now()
	if got := l.next(time.Second); got != "WATCHDOG=1" {
		t.Fatalf("first datagram %q, want WATCHDOG=1 at once", got)
	}
	pings := 1
	for time.Since(start) < 230*time.Millisecond {
		if l.next(100*time.Millisecond) == "WATCHDOG=1" {
			pings++
		}
	}
	if pings < 3 || pings > 6 { // 5 expected; slack for a loaded machine
		t.Errorf("%d pings in 230ms at a 50ms period", pings)
	}

	// Posted statuses reach systemd from Run; posting never blocks.
	n.Post("first")
	n.Post("second")
	var statuses []string
	// Pings keep coming: read for a while, keeping the statuses.
	for deadline := time.Now().Add(300 * time.Millisecond); time.Now().Before(deadline); {
		if got := l.next(100 * time.Millisecond); strings.HasPrefix(got, "STATUS=") {
			statuses = append(statuses, got)
		}
	}
	if len(statuses) == 0 || statuses[len(statuses)-1] != "STATUS=second" {
		t.Errorf("statuses %q, want the last to be STATUS=second", statuses)
	}

	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(time.Second):
		t.Fatal("Run did not return after cancellation")
	}
}

func TestNotifierRunWithoutWatchdogSendsNoPings(t *testing.T) {
	l := listenNotify(t, filepath.Join(t.TempDir(), "notify"))
	n := notifierFromEnv(envOf(map[string]string{"NOTIFY_SOCKET": l.name, "WATCHDOG_USEC": "100000", "WATCHDOG_PID": "1"}), os.Getpid(), slog.New(slog.DiscardHandler))
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	go n.Run(ctx)
	if got := l.next(300 * time.Millisecond); got != "" {
		t.Errorf("datagram %q with the watchdog meant for pid 1", got)
	}
}

func TestNotifierReportsAFailureOnce(t *testing.T) {
	var logs fiptest.SyncBuffer
	dir := t.TempDir()
	n := notifierFromEnv(envOf(map[string]string{"NOTIFY_SOCKET": filepath.Join(dir, "gone"), "WATCHDOG_USEC": "40000"}), os.Getpid(), slog.New(slog.NewTextHandler(&logs, nil)))
	if err := n.Ready(); err == nil || !strings.Contains(err.Error(), "gone") {
		t.Errorf("ready to a missing socket: %v", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 150*time.Millisecond)
	defer cancel()
	if err := n.Run(ctx); err != nil {
		t.Fatalf("Run gave up: %v", err)
	}
	if c := strings.Count(logs.String(), "systemd notification failed"); c != 1 {
		t.Errorf("%d failure lines, want 1:\n%s", c, logs.String())
	}
}
