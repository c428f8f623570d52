package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"os"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"floatip/internal/status"

	"floatip/internal/engine"

	"floatip/internal/fiptest"

	"floatip/internal/event"
)

var controlTestN atomic.Int64

// controlTestName is an interface name of this test process alone: the
// unit tests share the host's network namespace with everything else.
func controlTestName() string {
	return fmt.Sprintf("t%d-%d", os.Getpid()%1000000, controlTestN.Add(1))
}

// serveTestControl runs a status server for a node on a fresh control
// socket; loop says whether the daemon's loop runs (answers calls).
func serveTestControl(t *testing.T, name string, loop bool) *fiptest.SyncBuffer {
	t.Helper()
	logs := &fiptest.SyncBuffer{}
	log := slog.New(slog.NewTextHandler(logs, nil))
	ln := status.ListenControl(name, log)
	if ln == nil {
		t.Fatalf("no control socket:\n%s", logs)
	}
	board := status.NewBoard(nil)
	board.StateChanged(event.Change{VIP: fiptest.VIPs(1)[0], Interface: name, From: event.Standby, To: event.Active, At: fiptest.T0})
	calls := make(chan func(time.Time)) // the loop's calls, as the daemon's
	inLoop := func(ctx context.Context, fn func(now time.Time)) bool {
		select {
		case calls <- fn:
			return true
		case <-ctx.Done():
			return false
		}
	}
	facts := func() engine.Facts {
		return engine.Facts{MAC: fiptest.MustMAC("02:00:00:00:00:09"), Priority: 150, Healthy: true}
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		done <- status.ServeHTTP(ctx, status.NewHTTPServer(status.NewServer(name, "test", inLoop, facts, board).Handler(), log), ln, "control socket")
	}()
	if loop {
		go func() {
			for {
				select {
				case fn := <-calls:
					fn(fiptest.T0.Add(time.Minute))
				case <-ctx.Done():
					return
				}
			}
		}()
	}
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("serve: %v", err)
		}
	})
	return logs
}

// The command asks the daemon over its abstract socket: no root needed.
func TestStatusOverTheControlSocket(t *testing.T) {
	name := controlTestName()
	logs := serveTestControl(t, name, true)

	var stdout, stderr bytes.Buffer
	if code := run(context.Background(), []string{"status", "-i", name, "--json"}, &stdout, &stderr); code != exitOK {
		t.Fatalf("exit %d: %s", code, stderr.String())
	}
	var reps []status.Report
	if err := json.Unmarshal(stdout.Bytes(), &reps); err != nil {
		t.Fatalf("%v:\n%s", err, stdout.String())
	}
	if len(reps) != 1 || reps[0].Interface != name || reps[0].Priority != 150 || len(reps[0].VIPs) != 1 ||
		reps[0].VIPs[0].State != "active" || !reps[0].Now.Equal(fiptest.T0.Add(time.Minute)) {
		t.Errorf("report: %+v", reps)
	}

	stdout.Reset()
	if code := run(context.Background(), []string{"status", "-i", name}, &stdout, &stderr); code != exitOK ||
		!strings.Contains(stdout.String(), "198.51.100.1  active  ") {
		t.Errorf("exit %d, table:\n%s%s", code, stdout.String(), stderr.String())
	}

	// A second daemon on the same interface: one loud line, no socket.
	if ln := status.ListenControl(name, slog.New(slog.NewTextHandler(logs, nil))); ln != nil {
		ln.Close()
		t.Error("a second control socket of the same name")
	}
	if !strings.Contains(logs.String(), "level=ERROR msg=\"another floatip daemon already runs on this interface") {
		t.Errorf("no complaint about the second daemon:\n%s", logs)
	}
}

func TestStatusWithoutADaemon(t *testing.T) {
	name := controlTestName()
	var stdout, stderr bytes.Buffer
	code := run(context.Background(), []string{"status", "-i", name}, &stdout, &stderr)
	want := "floatip: no floatip daemon on " + name + " in this network namespace (nothing listens on @floatip/" + name + ")\n"
	if code != exitError || stderr.String() != want || stdout.Len() != 0 {
		t.Errorf("exit %d, stdout %q, stderr %q; want 2 and %q", code, stdout.String(), stderr.String(), want)
	}
	stderr.Reset()
	if code := run(context.Background(), []string{"status", "-i", "a/b"}, io.Discard, &stderr); code != exitError || !strings.Contains(stderr.String(), "not a valid interface name") {
		t.Errorf("a bad name: exit %d, %q", code, stderr.String())
	}
}

// A daemon whose loop does not answer: 503 after status.LoopTimeout, an
// error, exit 2.
func TestStatusLoopNotAnswering(t *testing.T) {
	name := controlTestName()
	serveTestControl(t, name, false)
	start := time.Now()
	_, err := status.Fetch(context.Background(), name)
	if err == nil || !strings.Contains(err.Error(), "503 Service Unavailable") {
		t.Errorf("got %v, want a 503", err)
	}
	if took := time.Since(start); took < status.LoopTimeout || took > status.ClientTimeout {
		t.Errorf("took %v, want the loop's timeout %v", took, status.LoopTimeout)
	}
}
