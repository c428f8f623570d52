package operator

import (
	"context"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"floatip/internal/fiptest"
)

func TestHealthCounter(t *testing.T) {
	cases := []struct {
		name       string
		rise, fall int
		results    string // p = pass, f = fail
		verdicts   string // after each result: H healthy, u unhealthy
	}{
		{"starts unhealthy, rise 2", 2, 2, "ppff", "uHHu"},
		{"rise 1: the first pass is enough", 1, 1, "pfp", "HuH"},
		{"failures at start change nothing", 2, 3, "fffpp", "uuuuH"},
		{"a failure resets the rise", 3, 2, "ppfppp", "uuuuuH"},
		{"a pass resets the fall", 2, 3, "ppffpfff", "uHHHHHHu"},
		{"flapping never settles", 2, 2, "pfpfpfpf", "uuuuuuuu"},
		{"fall 1 is immediate", 2, 1, "ppfpp", "uHuuH"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			c := newHealthCounter(tc.rise, tc.fall)
			prev := false
			for i, r := range tc.results {
				changed := c.observe(r == 'p')
				want := tc.verdicts[i] == 'H'
				if c.healthy != want {
					t.Fatalf("after result %d (%c): healthy=%v, want %v", i, r, c.healthy, want)
				}
				if changed != (want != prev) {
					t.Fatalf("after result %d: changed=%v, but healthy went %v → %v", i, changed, prev, want)
				}
				prev = want
			}
		})
	}
}

// healthProbe is a check whose result the test sets: it exits with the
// number in file.
type healthProbe struct {
	t    *testing.T
	file string
}

func newHealthProbe(t *testing.T) *healthProbe {
	p := &healthProbe{t: t, file: filepath.Join(t.TempDir(), "result")}
	p.set(1)
	return p
}

func (p *healthProbe) set(code int) {
	if err := os.WriteFile(p.file+".tmp", []byte{byte('0' + code)}, 0o644); err != nil {
		p.t.Fatal(err)
	}
	if err := os.Rename(p.file+".tmp", p.file); err != nil {
		p.t.Fatal(err)
	}
}

func (p *healthProbe) argv() []string {
	return []string{"sh", "-c", `echo "result $(cat "$1")"; exit "$(cat "$1")"`, "sh", p.file}
}

// healthChanges collects onChange calls.
type healthChanges struct {
	mu  sync.Mutex
	got []bool
}

func (h *healthChanges) add(v bool) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.got = append(h.got, v)
}

func (h *healthChanges) list() []bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	return append([]bool(nil), h.got...)
}

func TestHealthCheckRun(t *testing.T) {
	probe := newHealthProbe(t)
	var logs fiptest.SyncBuffer
	h := NewHealthCheck(probe.argv(), 20*time.Millisecond, time.Second, 2, 3, false, slog.New(slog.NewTextHandler(&logs, nil)))
	var changes healthChanges
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- h.Run(ctx, changes.add) }()

	// Failing at start: unhealthy already, so no call, one log line.
	time.Sleep(200 * time.Millisecond)
	if got := changes.list(); len(got) != 0 {
		t.Fatalf("onChange%v while the check fails from the start", got)
	}
	probe.set(0)
	fiptest.WaitFor(t, 2*time.Second, "healthy", func() bool { return len(changes.list()) == 1 })
	time.Sleep(100 * time.Millisecond) // more passes: no more calls
	probe.set(1)
	fiptest.WaitFor(t, 2*time.Second, "unhealthy", func() bool { return len(changes.list()) == 2 })
	time.Sleep(100 * time.Millisecond)
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("Run returned %v after cancellation, want nil", err)
		}
	case <-time.After(2 * time.Second):
		t.Fatal("Run did not return after cancellation")
	}

	if got := changes.list(); len(got) != 2 || got[0] != true || got[1] != false {
		t.Errorf("onChange calls %v, want [true false]", got)
	}
	l := logs.String()
	for _, want := range []string{
		`msg="health check failing: not healthy yet"`,
		`msg="health check passing: healthy"`,
		`msg="health check failing: unhealthy"`,
	} {
		if n := strings.Count(l, want); n != 1 {
			t.Errorf("%d lines %s, want 1:\n%s", n, want, l)
		}
	}
	if !strings.Contains(l, `exit=1`) || !strings.Contains(l, `output="result 1"`) {
		t.Errorf("failure lines lack the exit status and output:\n%s", l)
	}
	if strings.Count(l, "\n") != 3 {
		t.Errorf("want exactly 3 lines at info level:\n%s", l)
	}
}

func TestHealthCheckTimeoutIsAFailure(t *testing.T) {
	var logs fiptest.SyncBuffer
	h := NewHealthCheck([]string{"sleep", "10"}, 10*time.Millisecond, 50*time.Millisecond, 1, 1, false, slog.New(slog.NewTextHandler(&logs, nil)))
	ctx, cancel := context.WithTimeout(context.Background(), 400*time.Millisecond)
	defer cancel()
	called := false
	if err := h.Run(ctx, func(bool) { called = true }); err != nil {
		t.Fatal(err)
	}
	if called {
		t.Error("a check that always times out made the host healthy")
	}
	if !strings.Contains(logs.String(), "timed out after 50ms") {
		t.Errorf("timeout not logged:\n%s", logs.String())
	}
}

func TestHealthCheckStopsARunningCheck(t *testing.T) {
	h := NewHealthCheck([]string{"sleep", "30"}, time.Second, 30*time.Second, 1, 1, false, slog.New(slog.DiscardHandler))
	ctx, cancel := context.WithCancel(context.Background())
	time.AfterFunc(100*time.Millisecond, cancel)
	start := time.Now()
	if err := h.Run(ctx, func(bool) {}); err != nil {
		t.Fatal(err)
	}
	if d := time.Since(start); d > 3*time.Second {
		t.Errorf("Run returned %v after cancellation", d)
	}
}

func TestHealthCheckWithoutCommand(t *testing.T) {
	h := NewHealthCheck(nil, time.Second, time.Second, 1, 1, false, slog.New(slog.DiscardHandler))
	if err := h.Run(context.Background(), func(bool) {}); err == nil {
		t.Fatal("Run without a command returned nil")
	}
}

// After a reload the check starts from the previous program's verdict: a
// healthy start calls nothing while the check passes, and a failing check
// still turns it unhealthy after fall failures.
func TestHealthCheckStartsHealthy(t *testing.T) {
	probe := newHealthProbe(t)
	probe.set(0)
	h := NewHealthCheck(probe.argv(), 20*time.Millisecond, time.Second, 2, 3, true, slog.New(slog.DiscardHandler))
	var changes healthChanges
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- h.Run(ctx, changes.add) }()
	defer func() {
		cancel()
		<-done
	}()
	time.Sleep(200 * time.Millisecond)
	if got := changes.list(); len(got) != 0 {
		t.Fatalf("onChange%v while a healthy start keeps passing", got)
	}
	probe.set(1)
	fiptest.WaitFor(t, 2*time.Second, "unhealthy", func() bool { return len(changes.list()) == 1 })
	if got := changes.list(); got[0] {
		t.Errorf("onChange%v, want [false]", got)
	}
}
