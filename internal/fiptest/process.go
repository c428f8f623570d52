package fiptest

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// Processes in a lab namespace: floatip, the echo servers, the UDP client.

// Process is a process running in a lab namespace (floatip, an echo server).
type Process struct {
	t       *testing.T
	Name    string
	cmd     *exec.Cmd
	out     *SyncBuffer
	logPath string
	done    chan struct{} // closed when the process has been waited for
	state   *os.ProcessState
	waitErr error
}

// StartDaemon starts the floatip binary (built once per test run) with args
// in host's namespace. Its output is kept in memory (logs) and in a file.
// Cleanup stops it if still running and, when the test failed, logs its
// last 40 lines.
func (l *Lab) StartDaemon(host string, args ...string) *Process {
	l.T.Helper()
	return l.StartProcess(host, "floatip", buildFloatip(l.T), args...)
}

// Binary is the path of the floatip binary the lab runs (built once per
// test run), e.g. for l.run("c", l.binary(), "probe", ...).
func (l *Lab) Binary() string {
	l.T.Helper()
	return buildFloatip(l.T)
}

// StartProcess starts bin with args in host's namespace (see StartDaemon).
func (l *Lab) StartProcess(host, name, bin string, args ...string) *Process {
	t := l.T
	t.Helper()
	ns := l.NSName(host)
	logPath := filepath.Join(l.logDir, fmt.Sprintf("%s-%s-%s-%d.log", l.Prefix, host, name, l.nlogs.Add(1)))
	f, err := os.Create(logPath)
	if err != nil {
		t.Fatal(err)
	}
	d := &Process{t: t, Name: host + "/" + name, out: &SyncBuffer{}, logPath: logPath, done: make(chan struct{})}
	w := io.MultiWriter(d.out, f)
	// "ip netns exec" execs bin in place: the pid is bin's own.
	d.cmd = exec.Command("ip", append([]string{"netns", "exec", ns, bin}, args...)...)
	d.cmd.Stdout, d.cmd.Stderr = w, w
	d.cmd.WaitDelay = 2 * time.Second
	if err := d.cmd.Start(); err != nil {
		f.Close()
		t.Fatalf("starting %s in %s: %v", bin, ns, err)
	}
	go func() {
		d.waitErr = d.cmd.Wait()
		d.state = d.cmd.ProcessState
		f.Close()
		close(d.done)
	}()
	t.Cleanup(func() {
		if d.Running() {
			_ = d.cmd.Process.Signal(syscall.SIGTERM)
			if _, err := d.Wait(3 * time.Second); err != nil {
				_ = d.cmd.Process.Kill()
				_, _ = d.Wait(2 * time.Second)
			}
		}
		if t.Failed() {
			t.Logf("last lines of %s (pid %d, %s):\n%s", d.Name, d.PID(), d.logPath, LastLines(d.Logs(), 40))
		}
	})
	return d
}

// LastLines is the last n lines of s.
func LastLines(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// PID is the process's ID.
func (d *Process) PID() int { return d.cmd.Process.Pid }

// Running reports whether the process has not exited yet.
func (d *Process) Running() bool { return !d.Exited() }

// Exited tells whether the process has ended.
func (d *Process) Exited() bool {
	select {
	case <-d.done:
		return true
	default:
		return false
	}
}

// Signal sends sig to the process (nothing if it has already exited).
func (d *Process) Signal(sig os.Signal) {
	if !d.Running() {
		d.t.Logf("%s: not signalled with %v: it already exited", d.Name, sig)
		return
	}
	if err := d.cmd.Process.Signal(sig); err != nil && !errors.Is(err, os.ErrProcessDone) {
		d.t.Errorf("%s: signal %v: %v", d.Name, sig, err)
	}
}

// Wait waits up to timeout for the process to exit and returns its exit
// code; a death by signal N gives 128+N, as in a shell.
func (d *Process) Wait(timeout time.Duration) (int, error) {
	timer := time.NewTimer(timeout)
	defer timer.Stop()
	select {
	case <-d.done:
	case <-timer.C:
		return -1, fmt.Errorf("%s (pid %d) still running after %v", d.Name, d.PID(), timeout)
	}
	if d.state == nil {
		return -1, fmt.Errorf("%s: %v", d.Name, d.waitErr)
	}
	if ws, ok := d.state.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
		return 128 + int(ws.Signal()), nil
	}
	return d.state.ExitCode(), nil
}

// Logs is everything the process wrote to stdout and stderr so far.
func (d *Process) Logs() string { return d.out.String() }

// StartEchoServers starts "udpecho serve" bound to DefaultVIP:7007 on every host
// h1..hN of NewLab, each answering with its host name, and waits until each
// is listening.
func (l *Lab) StartEchoServers() []*Process {
	l.T.Helper()
	var ds []*Process
	for i := 1; i <= l.Hosts; i++ {
		ds = append(ds, l.StartEchoServer(fmt.Sprintf("h%d", i), fmt.Sprintf("%s:%d", DefaultVIP, EchoPort)))
	}
	return ds
}

// StartEchoServer starts "udpecho serve -listen listen -name host" in host.
func (l *Lab) StartEchoServer(host, listen string) *Process {
	l.T.Helper()
	d := l.StartProcess(host, "udpecho", BuildUDPEcho(l.T), "serve", "-listen", listen, "-name", host)
	WaitFor(l.T, 5*time.Second, host+"'s echo server to listen on "+listen, func() bool {
		if !d.Running() {
			l.T.Fatalf("echo server on %s exited: %s", host, d.Logs())
		}
		return strings.Contains(d.Logs(), "serving on")
	})
	return d
}

// UDPSummary is udpecho client's -json summary.
type UDPSummary struct {
	Target            string         `json:"target"`
	DurationMs        int64          `json:"duration_ms"`
	Sent              int            `json:"sent"`
	Answered          int            `json:"answered"`
	Late              int            `json:"late"`
	Duplicates        int            `json:"duplicates"`
	ByResponder       map[string]int `json:"by_responder"`
	FirstResponder    string         `json:"first_responder"`
	LastResponder     string         `json:"last_responder"`
	Changes           []udpChange    `json:"changes"`
	LongestGapMs      int64          `json:"longest_gap_ms"`
	LongestGapStartMs int64          `json:"longest_gap_start_ms"`

	Err    error  `json:"-"` // the client could not run or its output did not parse
	Stderr string `json:"-"` // what the client wrote to stderr
}

type udpChange struct {
	AtMs  int64  `json:"at_ms"`
	From  string `json:"from"`
	To    string `json:"to"`
	GapMs int64  `json:"gap_ms"` // since the previous answer: the outage of this change
}

// UDPClient runs the udpecho client in the client namespace against
// DefaultVIP:7007 in the background: one request every `every` for `duration`.
// The channel yields its summary (check Err) once it has finished.
func (l *Lab) UDPClient(duration, every time.Duration) <-chan UDPSummary {
	l.T.Helper()
	return l.UDPClientTo(fmt.Sprintf("%s:%d", DefaultVIP, EchoPort), duration, every)
}

// UDPClientTo is UDPClient against another ADDR:PORT.
func (l *Lab) UDPClientTo(target string, duration, every time.Duration) <-chan UDPSummary {
	t := l.T
	t.Helper()
	ap, err := netip.ParseAddrPort(target)
	if err != nil {
		t.Fatalf("udpClient target %q: %v", target, err)
	}
	RequireLabAddr(t, ap.Addr().String())
	bin := BuildUDPEcho(t)
	ctx, cancel := context.WithTimeout(context.Background(), duration+20*time.Second)
	cmd := exec.CommandContext(ctx, "ip", "netns", "exec", l.NSName("c"), bin, "client",
		"-target", target, "-every", every.String(), "-duration", duration.String(), "-json")
	cmd.WaitDelay = 2 * time.Second
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	ch := make(chan UDPSummary, 1)
	finished := make(chan struct{})
	if err := cmd.Start(); err != nil {
		cancel()
		t.Fatalf("starting udpecho client: %v", err)
	}
	go func() {
		defer close(finished)
		defer close(ch)
		defer cancel()
		var s UDPSummary
		err := cmd.Wait()
		if err == nil {
			err = json.Unmarshal(stdout.Bytes(), &s)
		}
		if err != nil {
			s.Err = fmt.Errorf("udpecho client: %w (stdout %q)", err, stdout.String())
		}
		s.Stderr = stderr.String()
		ch <- s
	}()
	t.Cleanup(func() {
		cancel()
		<-finished
	})
	return ch
}
