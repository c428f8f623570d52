package operator

import (
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"floatip/internal/fiptest"
)

func TestFenceOutcomes(t *testing.T) {
	cases := []struct {
		name    string
		argv    []string
		timeout time.Duration
		wantErr []string // substrings; none: success
		is      error    // errors.Is target, if any
	}{
		{"exit 0", []string{"true"}, 5 * time.Second, nil, nil},
		{"exit 0 with output", []string{"sh", "-c", "echo fenced"}, 5 * time.Second, nil, nil},
		{"exit status", []string{"sh", "-c", "echo 'ipmi: no route' >&2; exit 3"}, 5 * time.Second,
			[]string{"fence: sh failed: exit status 3", `output: "ipmi: no route"`}, nil},
		{"not found in PATH", []string{"floatip-no-such-fence"}, 5 * time.Second,
			[]string{"cannot run floatip-no-such-fence", "not found"}, exec.ErrNotFound},
		{"no such file", []string{"/nonexistent/fence"}, 5 * time.Second,
			[]string{"cannot run /nonexistent/fence", "no such file", "(no output)"}, nil},
		{"timeout", []string{"sh", "-c", "echo trying; sleep 30"}, 200 * time.Millisecond,
			[]string{"sh timed out after 200ms and was killed", `output: "trying"`}, context.DeadlineExceeded},
		{"killed by a signal", []string{"sh", "-c", "kill -9 $$"}, 5 * time.Second,
			[]string{"sh failed: signal: killed"}, nil},
		{"no command", nil, 5 * time.Second, []string{"fence: no command given"}, nil},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			start := time.Now()
			err := RunFence(context.Background(), tc.argv, nil, tc.timeout)
			if d := time.Since(start); d > tc.timeout+2*time.Second {
				t.Errorf("took %v with a %v timeout", d, tc.timeout)
			}
			if tc.wantErr == nil {
				if err != nil {
					t.Fatalf("err = %v, want nil", err)
				}
				return
			}
			if err == nil {
				t.Fatalf("err = nil, want %q", tc.wantErr)
			}
			for _, s := range tc.wantErr {
				if !strings.Contains(err.Error(), s) {
					t.Errorf("err %q lacks %q", err, s)
				}
			}
			if tc.is != nil && !errors.Is(err, tc.is) {
				t.Errorf("err %q is not %v", err, tc.is)
			}
		})
	}
}

func TestFenceGetsItsEnvironment(t *testing.T) {
	t.Setenv("NOTIFY_SOCKET", "/run/systemd/notify")
	t.Setenv("FLOATIP_TEST_INHERITED", "yes")
	env := []string{"FLOATIP_VIP=192.0.2.50", "FLOATIP_HOLDER=02:00:00:00:00:01"}
	script := `[ "$FLOATIP_VIP" = 192.0.2.50 ] && [ "$FLOATIP_HOLDER" = 02:00:00:00:00:01 ] && [ "$FLOATIP_TEST_INHERITED" = yes ] && [ -z "${NOTIFY_SOCKET+x}" ]`
	if err := RunFence(context.Background(), []string{"sh", "-c", script}, env, 5*time.Second); err != nil {
		t.Fatalf("fence did not see FLOATIP_* and the daemon's environment without NOTIFY_SOCKET: %v", err)
	}
}

// TestFenceTimeoutKillsTheProcessGroup: what the command started dies too.
func TestFenceTimeoutKillsTheProcessGroup(t *testing.T) {
	pidFile := filepath.Join(t.TempDir(), "pid")
	argv := []string{"sh", "-c", `sleep 30 & echo $! > "$1"; wait`, "sh", pidFile}
	err := RunFence(context.Background(), argv, nil, 300*time.Millisecond)
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("err = %v, want a timeout", err)
	}
	b, err := os.ReadFile(pidFile)
	if err != nil {
		t.Fatal(err)
	}
	pid, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil {
		t.Fatal(err)
	}
	fiptest.WaitFor(t, 2*time.Second, "the background sleep to die", func() bool { return !processAlive(pid) })
}

// processAlive: the process exists and is not a zombie (an orphan may wait
// for a reaper that never comes in a container).
func processAlive(pid int) bool {
	if err := syscall.Kill(pid, 0); err != nil {
		return false
	}
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return false
	}
	_, rest, _ := strings.Cut(string(b), ") ")
	return !strings.HasPrefix(rest, "Z")
}

func TestFenceInterruptedByShutdown(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	err := RunFence(ctx, []string{"sleep", "30"}, nil, 30*time.Second)
	if err == nil || !strings.Contains(err.Error(), "sleep interrupted") {
		t.Fatalf("err = %v, want 'interrupted'", err)
	}
}

// TestFenceBackgroundChildDoesNotHoldIt: a command that exits 0 but leaves a
// child holding its output succeeds, without waiting for the child.
func TestFenceBackgroundChildDoesNotHoldIt(t *testing.T) {
	start := time.Now()
	err := RunFence(context.Background(), []string{"sh", "-c", "sleep 3 & echo done"}, nil, 10*time.Second)
	if err != nil {
		t.Fatalf("err = %v, want nil", err)
	}
	if d := time.Since(start); d > 2500*time.Millisecond {
		t.Errorf("waited %v for the background child", d)
	}
}

func TestFenceOutputTail(t *testing.T) {
	cases := []struct {
		writes []string
		limit  int
		want   string
	}{
		{[]string{"abc"}, 8, "abc"},
		{[]string{"abc", "def"}, 8, "abcdef"},
		{[]string{"abcd", "efgh"}, 8, "abcdefgh"},
		{[]string{"abcd", "efghi"}, 8, "…bcdefghi"},
		{[]string{"0123456789"}, 8, "…23456789"},
		{[]string{"x", "0123456789"}, 8, "…23456789"},
		{[]string{"01234567"}, 8, "01234567"},
		{[]string{"  line\n"}, 8, "line"},
	}
	for _, tc := range cases {
		b := &tailBuffer{limit: tc.limit}
		for _, w := range tc.writes {
			if n, err := b.Write([]byte(w)); n != len(w) || err != nil {
				t.Fatalf("Write(%q) = %d, %v", w, n, err)
			}
		}
		if got := b.String(); got != tc.want {
			t.Errorf("writes %q, limit %d: %q, want %q", tc.writes, tc.limit, got, tc.want)
		}
	}
	// A command's output is cut to outputTail bytes, keeping the end.
	err := RunFence(context.Background(), []string{"sh", "-c", "head -c 5000 /dev/zero | tr '\\0' a; echo END; exit 1"}, nil, 5*time.Second)
	if err == nil || !strings.Contains(err.Error(), `aaaaEND"`) || len(err.Error()) > outputTail+200 {
		t.Errorf("err (%d bytes) should end with the output's last KiB: %.200q", len(err.Error()), err)
	}
}
