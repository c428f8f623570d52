// Package operator runs what the operator plugs into floatip: the health
// check (--check), the hooks (--on-up, --on-down, --on-change), fencing
// (--fence), and systemd's notify protocol. Commands run without a shell,
// in a process group of their own, with a bounded tail of their output.
//
// It must not know about frames, the interface's loop or how a VIP's
// machine decides: it learns of state changes as an event.Observer.
package operator

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"time"
)

// Operator commands (health check, hooks, fencing) all run the same way:
// argv executed directly (no shell), stdin from /dev/null, in a process group
// of their own that is killed as a whole on timeout, combined output kept
// as a bounded tail for the log.

// outputTail is how much of a command's combined output is kept: enough for
// an error message, never a memory or log-line hazard.
const outputTail = 1024

// pipeGrace bounds the wait for the output pipes after the command exited
// or was killed: a background child that inherited them must not hold the
// caller (exec.Cmd.WaitDelay).
const pipeGrace = time.Second

// cmdResult is what one run of an operator command did.
type cmdResult struct {
	err      error // nil only on exit 0; says what happened otherwise
	exitCode int   // -1 if it did not exit by itself (not started, signal, timeout)
	timedOut bool
	duration time.Duration
	output   string // tail of stdout+stderr, at most outputTail bytes (plus a marker)
}

// runCommand runs argv with extraEnv added to the daemon's environment,
// killed with its whole process group after timeout or when ctx ends.
func runCommand(ctx context.Context, argv []string, extraEnv []string, timeout time.Duration) cmdResult {
	if len(argv) == 0 || argv[0] == "" {
		return cmdResult{err: errors.New("no command given"), exitCode: -1}
	}
	tctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	out := &tailBuffer{limit: outputTail}
	cmd := exec.CommandContext(tctx, argv[0], argv[1:]...)
	cmd.Env = commandEnv(os.Environ(), extraEnv)
	cmd.Stdout, cmd.Stderr = out, out // same pointer: exec serialises the writes
	// A group of its own: the timeout kills what the command started too,
	// and a Ctrl-C on the daemon's terminal does not reach it directly.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.Cancel = func() error {
		if err := syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL); err != nil {
			return os.ErrProcessDone
		}
		return nil
	}
	cmd.WaitDelay = pipeGrace

	start := time.Now()
	err := cmd.Run()
	res := cmdResult{exitCode: -1, duration: time.Since(start), output: out.String()}
	if cmd.ProcessState != nil {
		res.exitCode = cmd.ProcessState.ExitCode()
	}
	name := argv[0]
	switch {
	case err == nil:
	case errors.Is(err, exec.ErrWaitDelay) && res.exitCode == 0:
		// Exited 0 but left a background child holding the output: the
		// command itself succeeded.
	case ctx.Err() != nil:
		res.err = fmt.Errorf("%s interrupted: %w", name, ctx.Err())
	case tctx.Err() != nil:
		res.timedOut = true
		res.exitCode = -1
		res.err = fmt.Errorf("%s timed out after %s and was killed: %w", name, timeout, context.DeadlineExceeded)
	case cmd.ProcessState == nil:
		// Never started: not found, not executable, bad interpreter.
		res.err = fmt.Errorf("cannot run %s: %w", name, err)
	default:
		// "exit status 3" or "signal: killed".
		res.err = fmt.Errorf("%s failed: %w", name, err)
	}
	return res
}

// systemdPerProcess are the variables systemd means for the daemon alone:
// a child that inherited them could send notifications or feel bound to the
// watchdog on its behalf.
var systemdPerProcess = []string{"NOTIFY_SOCKET", "WATCHDOG_USEC", "WATCHDOG_PID", "LISTEN_FDS", "LISTEN_PID", "LISTEN_FDNAMES"}

// commandEnv is base without systemd's per-process variables, then extra
// (later entries win in exec, so extra overrides base).
func commandEnv(base, extra []string) []string {
	env := make([]string, 0, len(base)+len(extra))
	for _, kv := range base {
		name, _, _ := strings.Cut(kv, "=")
		drop := false
		for _, s := range systemdPerProcess {
			if name == s {
				drop = true
				break
			}
		}
		if !drop {
			env = append(env, kv)
		}
	}
	return append(env, extra...)
}

// tailBuffer keeps the last limit bytes written to it.
type tailBuffer struct {
	limit     int
	buf       []byte
	truncated bool
}

func (b *tailBuffer) Write(p []byte) (int, error) {
	n := len(p)
	if len(p) >= b.limit {
		b.truncated = b.truncated || len(b.buf) > 0 || len(p) > b.limit
		b.buf = append(b.buf[:0], p[len(p)-b.limit:]...)
		return n, nil
	}
	if over := len(b.buf) + len(p) - b.limit; over > 0 {
		b.truncated = true
		b.buf = append(b.buf[:0], b.buf[over:]...)
	}
	b.buf = append(b.buf, p...)
	return n, nil
}

// String is the kept output without surrounding blank space, marked when
// the beginning was cut.
func (b *tailBuffer) String() string {
	s := strings.TrimSpace(string(b.buf))
	if b.truncated {
		return "…" + s
	}
	return s
}

// SplitCommand turns an operator's command (--check, --on-up, --fence ...)
// into argv without a shell: words split on blanks, 'single' and "double"
// quotes group words, a backslash escapes the next character (inside double
// quotes only before " \ $ `). Pipes, redirections and variables need an
// explicit `sh -c '...'`, so nothing is interpreted behind the operator's back.
func SplitCommand(s string) ([]string, error) {
	var (
		args    []string
		word    strings.Builder
		inWord  bool
		quote   rune // 0, '\'' or '"'
		escaped bool
	)
	for _, r := range s {
		switch {
		case escaped:
			if quote == '"' && !strings.ContainsRune("\"\\$`", r) {
				word.WriteRune('\\')
			}
			word.WriteRune(r)
			escaped = false
		case r == '\\' && quote != '\'':
			escaped, inWord = true, true
		case quote != 0 && r == quote:
			quote = 0
		case quote != 0:
			word.WriteRune(r)
		case r == '\'' || r == '"':
			quote, inWord = r, true
		case r == ' ' || r == '\t' || r == '\n':
			if inWord {
				args = append(args, word.String())
				word.Reset()
				inWord = false
			}
		default:
			word.WriteRune(r)
			inWord = true
		}
	}
	switch {
	case escaped:
		return nil, fmt.Errorf("command %q ends with a lone backslash", s)
	case quote != 0:
		return nil, fmt.Errorf("command %q has an unterminated %c quote", s, quote)
	}
	if inWord {
		args = append(args, word.String())
	}
	return args, nil
}
