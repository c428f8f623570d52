package integration

// Lab tests of the connection reset on release: a TCP server on the VIP in
// every host (lab/tcpidle), a client with an idle established connection
// blocked in read, and what that client sees when the VIP moves.

import (
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"floatip/internal/fiptest"
)

const labTCPPort = 7100

// startTCPServers starts "tcpidle serve" on labVIP:7100 in h1..hN, each
// answering with its host name, and waits until each listens.
func startTCPServers(l *fiptest.Lab) {
	l.T.Helper()
	for i := 1; i <= l.Hosts; i++ {
		h := fmt.Sprintf("h%d", i)
		d := l.StartProcess(h, "tcpidle", fiptest.BuildTCPIdle(l.T), "serve", "-listen", fmt.Sprintf("%s:%d", labVIP, labTCPPort), "-name", h)
		fiptest.WaitFor(l.T, 5*time.Second, h+"'s TCP server to listen", func() bool {
			if !d.Running() {
				l.T.Fatalf("TCP server on %s exited: %s", h, d.Logs())
			}
			return strings.Contains(d.Logs(), "serving on")
		})
	}
}

// startIdleClient starts "tcpidle client" in the client namespace and waits
// until its idle connection is established; it returns the client and the
// host that answered its first request.
func startIdleClient(l *fiptest.Lab, args ...string) (*fiptest.Process, string) {
	l.T.Helper()
	argv := append([]string{"client", "-target", fmt.Sprintf("%s:%d", labVIP, labTCPPort)}, args...)
	d := l.StartProcess("c", "tcpidle", fiptest.BuildTCPIdle(l.T), argv...)
	ev := waitEvent(l.T, d, "connected", 5*time.Second)
	return d, ev["responder"]
}

var eventFieldRE = regexp.MustCompile(`(\w+)=("(?:[^"\\]|\\.)*"|\S+)`)

// clientEvent is the first line of the client's output that starts with
// name, as its key=value fields.
func clientEvent(d *fiptest.Process, name string) (map[string]string, bool) {
	for _, line := range strings.Split(d.Logs(), "\n") {
		if first, _, _ := strings.Cut(line, " "); first != name {
			continue
		}
		ev := map[string]string{}
		for _, m := range eventFieldRE.FindAllStringSubmatch(line, -1) {
			v := m[2]
			if u, err := strconv.Unquote(v); err == nil {
				v = u
			}
			ev[m[1]] = v
		}
		return ev, true
	}
	return nil, false
}

// waitEvent waits for the client's event name; t.Fatal after within.
func waitEvent(t *testing.T, d *fiptest.Process, name string, within time.Duration) map[string]string {
	t.Helper()
	var ev map[string]string
	fiptest.WaitFor(t, within, "the TCP client's "+name+" event", func() bool {
		var ok bool
		ev, ok = clientEvent(d, name)
		if !ok && d.Exited() {
			t.Fatalf("TCP client exited without %s:\n%s", name, d.Logs())
		}
		return ok
	})
	return ev
}

// eventTime is the at_ms (or another) field of an event as a time.
func eventTime(t *testing.T, ev map[string]string, field string) time.Time {
	t.Helper()
	v, err := strconv.ParseInt(ev[field], 10, 64)
	if err != nil {
		t.Fatalf("event %v: bad %s: %v", ev, field, err)
	}
	return time.UnixMilli(v)
}

// logTime is the time of the first line of d's log that contains msg.
func logTime(t *testing.T, d *fiptest.Process, msg string) time.Time {
	t.Helper()
	for _, line := range strings.Split(d.Logs(), "\n") {
		if !strings.Contains(line, msg) {
			continue
		}
		if m := regexp.MustCompile(`^time=(\S+)`).FindStringSubmatch(line); m != nil {
			at, err := time.Parse(time.RFC3339Nano, m[1])
			if err != nil {
				t.Fatalf("log line %q: %v", line, err)
			}
			return at
		}
	}
	t.Fatalf("%s never logged %q:\n%s", d.Name, msg, d.Logs())
	return time.Time{}
}

// TestLabConnResetOnRelease: on every kind of release the idle client's
// read fails with a reset at once, and its reconnect reaches the new holder.
func TestLabConnResetOnRelease(t *testing.T) {
	t.Parallel()
	for _, tc := range []string{"SIGTERM", "preemption", "health check"} {
		t.Run(tc, func(t *testing.T) {
			t.Parallel()
			l := fiptest.NewLab(t, 2)
			startTCPServers(l)
			var (
				oldHolder, newHolder *fiptest.Process
				oldName, newName     = "h1", "h2"
				release              func() time.Time // moves the VIP; returns when the release began
			)
			switch tc {
			case "SIGTERM":
				oldHolder, newHolder = startPair(t, l, nil, nil)
				release = func() time.Time {
					at := time.Now()
					oldHolder.Signal(syscall.SIGTERM)
					return at
				}
			case "preemption":
				oldName, newName = "h2", "h1"
				oldHolder = l.StartDaemon("h2", "-i", "eth0", labVIP)
				waitActive(t, l, "h2", 5*time.Second)
				release = func() time.Time {
					newHolder = l.StartDaemon("h1", "-i", "eth0", "--priority", "200", "--preempt", "--preempt-delay", "1s", labVIP)
					waitActive(t, l, "h1", 5*time.Second)
					return logTime(t, newHolder, "claimed VIP by preemption")
				}
			case "health check":
				ok := filepath.Join(t.TempDir(), "h1.ok")
				if err := os.WriteFile(ok, nil, 0o644); err != nil {
					t.Fatal(err)
				}
				check := []string{"--check", "test -f " + ok, "--check-interval", "100ms", "--rise", "1", "--fall", "2"}
				oldHolder, newHolder = startPair(t, l, check, nil)
				release = func() time.Time {
					os.Remove(ok)
					fiptest.WaitFor(t, 3*time.Second, "h1's check to fail", func() bool {
						return strings.Contains(oldHolder.Logs(), "health check fails: releasing")
					})
					return logTime(t, oldHolder, "health check fails: releasing")
				}
			}
			client, first := startIdleClient(l, "-idle", "20s")
			if first != oldName {
				t.Fatalf("the client's first request was answered by %q, want %s", first, oldName)
			}
			released := release()
			ended := waitEvent(t, client, "read_ended", 5*time.Second)
			if ended["kind"] != "reset" {
				t.Fatalf("the idle client's read ended with %q (%s), want a reset", ended["kind"], ended["err"])
			}
			// A generous bound; lab/bench.sh measures the real figure.
			if after := eventTime(t, ended, "at_ms").Sub(released); after > time.Second {
				t.Errorf("the idle client learnt of the release %v after it, want within 1 s", after)
			}
			again := waitEvent(t, client, "reconnected", 10*time.Second)
			if again["responder"] != newName {
				t.Errorf("the client reconnected to %q, want the new holder %s", again["responder"], newName)
			}
			waitSoleHolder(t, l, 2, newName, 2*time.Second)
			if !strings.Contains(oldHolder.Logs(), "reset the VIP's TCP connections") || !strings.Contains(oldHolder.Logs(), "connections=1") {
				t.Errorf("%s did not log one reset connection:\n%s", oldName, oldHolder.Logs())
			}
			t.Logf("%s: idle client reset %v after the release, reconnected to %s after %v", tc,
				eventTime(t, ended, "at_ms").Sub(released), again["responder"], eventTime(t, again, "at_ms").Sub(released))
		})
	}
}

// TestLabIdleClientHangsWithoutReset: where nobody resets the connection
// (--no-reset-connections, or a holder that died), the idle client's read
// hangs past the move until its own timeout; its next request then gets an
// RST from the new holder's kernel, and it reconnects there.
func TestLabIdleClientHangsWithoutReset(t *testing.T) {
	t.Parallel()
	for _, tc := range []string{"--no-reset-connections", "dead holder"} {
		t.Run(tc, func(t *testing.T) {
			t.Parallel()
			l := fiptest.NewLab(t, 2)
			startTCPServers(l)
			var args []string
			if tc == "--no-reset-connections" {
				args = []string{"--no-reset-connections"}
			}
			h1, _ := startPair(t, l, args, args)
			const idle = 4 * time.Second
			client, first := startIdleClient(l, "-idle", idle.String(), "-send-after-idle")
			if first != "h1" {
				t.Fatalf("the client's first request was answered by %q, want h1", first)
			}
			connected := time.Now()
			if tc == "dead holder" {
				l.Script("cut", "h1") // the holder's RSTs cannot leave any more
			} else {
				h1.Signal(syscall.SIGTERM)
			}
			waitActive(t, l, "h2", 5*time.Second)
			ended := waitEvent(t, client, "read_ended", idle+5*time.Second)
			if ended["kind"] != "timeout" {
				t.Fatalf("the idle client's read ended with %q (%s), want it to hang until its own timeout", ended["kind"], ended["err"])
			}
			if hung := eventTime(t, ended, "at_ms").Sub(connected); hung < idle-time.Second {
				t.Errorf("the read ended %v after the move, before the client's own timeout", hung)
			}
			sent := waitEvent(t, client, "request_ended", 5*time.Second)
			if sent["kind"] != "reset" {
				t.Errorf("the request on the stale connection ended with %q (%s), want an RST from the new holder", sent["kind"], sent["err"])
			}
			if took := eventTime(t, sent, "at_ms").Sub(eventTime(t, sent, "sent_ms")); took > time.Second {
				t.Errorf("the RST for the stale request took %v", took)
			}
			if again := waitEvent(t, client, "reconnected", 10*time.Second); again["responder"] != "h2" {
				t.Errorf("the client reconnected to %q, want h2", again["responder"])
			}
			if tc == "--no-reset-connections" && strings.Contains(h1.Logs(), "reset the VIP's TCP connections") {
				t.Errorf("h1 reset connections with --no-reset-connections:\n%s", h1.Logs())
			}
		})
	}
}
