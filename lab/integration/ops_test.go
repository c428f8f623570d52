package integration

// Lab tests of the operator features (issue 4): health checks, hooks,
// fencing, running unprivileged with two capabilities, systemd notify and
// watchdog, status on SIGUSR1, JSON logs and the metrics endpoint.

import (
	"encoding/json"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"floatip/internal/fiptest"
)

// TestLabHealthCheck: the holder's service stops → the VIP moves to a
// healthy host; no host is healthy → nobody holds it and nothing flaps.
func TestLabHealthCheck(t *testing.T) {
	t.Parallel()
	l := fiptest.NewLab(t, 2)
	dir := t.TempDir()
	ok := func(h string) string { return filepath.Join(dir, h+".ok") }
	for _, h := range []string{"h1", "h2"} {
		if err := os.WriteFile(ok(h), nil, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	check := func(h string) []string {
		return []string{"--check", "test -f " + ok(h), "--check-interval", "100ms", "--rise", "2", "--fall", "2"}
	}
	h1 := l.StartDaemon("h1", append([]string{"-i", "eth0", "--priority", "200", labVIP}, check("h1")...)...)
	waitActive(t, l, "h1", 5*time.Second)
	h2 := l.StartDaemon("h2", append([]string{"-i", "eth0", labVIP}, check("h2")...)...)
	waitStandby(t, h2, 5*time.Second)

	// The service on h1 stops: its check fails, it hands the VIP over.
	os.Remove(ok("h1"))
	waitSoleHolder(t, l, 2, "h2", 3*time.Second)
	if !strings.Contains(h1.Logs(), "health check fails: releasing") {
		t.Errorf("h1 did not say why it released:\n%s", h1.Logs())
	}
	// Now h2's service stops too: nobody is healthy, nobody holds the VIP.
	os.Remove(ok("h2"))
	fiptest.WaitFor(t, 3*time.Second, "nobody holds the VIP", func() bool { return len(holders(l, 2)) == 0 })
	c1, c2 := claims(h1), claims(h2)
	time.Sleep(3 * time.Second)
	if hs := holders(l, 2); len(hs) != 0 || claims(h1) != c1 || claims(h2) != c2 {
		t.Fatalf("unhealthy hosts flapped: holders %v, claims h1 %d→%d, h2 %d→%d", hs, c1, claims(h1), c2, claims(h2))
	}
	// h1 recovers and takes the VIP.
	if err := os.WriteFile(ok("h1"), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	waitSoleHolder(t, l, 2, "h1", 5*time.Second)
}

// TestLabHooksAndFencing: hooks see the state change in their environment; a
// slow hook does not delay the failover; a failing fence stops a claim, a
// succeeding one lets it through and is told whom to fence.
func TestLabHooksAndFencing(t *testing.T) {
	t.Parallel()
	for _, fenceOK := range []bool{true, false} {
		t.Run(fmt.Sprintf("fence ok=%v", fenceOK), func(t *testing.T) {
			l := fiptest.NewLab(t, 2)
			dir := t.TempDir()
			events := filepath.Join(dir, "events")
			fenced := filepath.Join(dir, "fenced")
			exit := map[bool]string{true: "0", false: "1"}[fenceOK]
			// h1's on-down hook takes a minute: it must not hold anything up.
			_, h2 := startPair(t, l, []string{"--on-down", "sleep 60", "--hook-timeout", "2s"}, []string{
				"--on-change", `sh -c 'echo "$FLOATIP_PREVIOUS_STATE>$FLOATIP_STATE $FLOATIP_VIP $FLOATIP_INTERFACE" >> ` + events + `'`,
				"--fence", `sh -c 'echo "$FLOATIP_VIP $FLOATIP_HOLDER" >> ` + fenced + `; exit ` + exit + `'`})

			l.Script("cut", "h1")
			if fenceOK {
				waitActive(t, l, "h2", 5*time.Second)
				fiptest.WaitFor(t, 5*time.Second, "the on-change hook ran for active", func() bool {
					b, _ := os.ReadFile(events)
					return strings.Contains(string(b), "claiming>active "+labVIP+" eth0")
				})
			} else {
				time.Sleep(3 * time.Second)
				if l.HostHasAddr("h2", labVIP+"/32") || claims(h2) != 0 {
					t.Fatalf("h2 claimed although the fence failed:\n%s", h2.Logs())
				}
				if !strings.Contains(h2.Logs(), "fencing failed") {
					t.Errorf("no log line about the failed fence:\n%s", h2.Logs())
				}
			}
			b, _ := os.ReadFile(fenced)
			if !strings.HasPrefix(string(b), labVIP+" "+fiptest.HostMAC(1)+"\n") {
				t.Errorf("fence command was told %q, want the VIP and h1's MAC", b)
			}
		})
	}
}

// TestLabUnprivilegedWithCapabilities: a non-root user with just
// CAP_NET_ADMIN and CAP_NET_RAW (what the systemd unit grants) runs the
// daemon; without them it says what is missing and changes nothing.
func TestLabUnprivilegedWithCapabilities(t *testing.T) {
	t.Parallel()
	l := fiptest.NewLab(t, 1)
	bin := l.Binary()
	// The binary must be reachable for uid 65534.
	if err := os.Chmod(filepath.Dir(bin), 0o755); err != nil {
		t.Fatal(err)
	}
	out, err := l.Run("h1", "setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", bin, "-i", "eth0", labVIP)
	if code := exitCodeOf(err); code != 2 || !strings.Contains(out, "missing CAP_NET_ADMIN and CAP_NET_RAW") {
		t.Fatalf("as nobody without capabilities: exit %d, %q", code, out)
	}
	d := l.StartProcess("h1", "floatip-nobody", "setpriv", "--reuid=65534", "--regid=65534", "--clear-groups",
		"--inh-caps=+net_admin,+net_raw", "--ambient-caps=+net_admin,+net_raw", bin, "-i", "eth0", labVIP)
	waitActive(t, l, "h1", 5*time.Second)
	d.Signal(syscall.SIGTERM)
	if code, err := d.Wait(5 * time.Second); err != nil || code != 0 {
		t.Fatalf("exit %d, %v:\n%s", code, err, d.Logs())
	}
	if l.HostHasAddr("h1", labVIP+"/32") {
		t.Fatal("the unprivileged daemon could not remove the VIP")
	}
}

// TestLabSystemdStatusAndMetrics: Type=notify (READY, STATUS with each
// VIP's state, WATCHDOG), SIGUSR1 status lines, JSON logs, and the
// Prometheus endpoint, on one running daemon.
func TestLabSystemdStatusAndMetrics(t *testing.T) {
	t.Parallel()
	l := fiptest.NewLab(t, 1)
	sock := filepath.Join(t.TempDir(), "notify")
	conn := listenNotify(t, sock)
	notes := make(chan string, 100)
	go func() {
		buf := make([]byte, 4096)
		for {
			n, _, err := conn.ReadFromUnix(buf)
			if err != nil {
				close(notes)
				return
			}
			notes <- string(buf[:n])
		}
	}()
	d := l.StartProcess("h1", "floatip", "env", "NOTIFY_SOCKET="+sock, "WATCHDOG_USEC=400000", l.Binary(),
		"-i", "eth0", "--log-format", "json", "--metrics-listen", "127.0.0.1:9810", labVIP)
	waitActive(t, l, "h1", 5*time.Second)

	seen := map[string]string{}
	deadline := time.After(5 * time.Second)
	for seen["READY"] == "" || seen["WATCHDOG"] == "" || !strings.Contains(seen["STATUS"], "active") {
		select {
		case note, ok := <-notes:
			if !ok {
				t.Fatal("notify socket closed")
			}
			for _, line := range strings.Split(note, "\n") {
				if k, v, ok := strings.Cut(line, "="); ok {
					seen[k] = v
				}
			}
		case <-deadline:
			t.Fatalf("systemd notifications so far: %v", seen)
		}
	}

	// Prometheus, from inside the host's namespace.
	metrics := l.MustRun("h1", "bash", "-c", `exec 3<>/dev/tcp/127.0.0.1/9810; printf 'GET /metrics HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n' >&3; cat <&3`)
	for _, want := range []string{"HTTP/1.1 200 OK", `floatip_state{vip="192.0.2.50",interface="eth0",state="active"} 1`,
		`floatip_state{vip="192.0.2.50",interface="eth0",state="standby"} 0`, "floatip_announcements_total", "floatip_build_info"} {
		if !strings.Contains(metrics, want) {
			t.Errorf("metrics lack %q:\n%s", want, metrics)
		}
	}

	d.Signal(syscall.SIGUSR1)
	fiptest.WaitFor(t, 2*time.Second, "a status line on SIGUSR1", func() bool { return strings.Contains(d.Logs(), "status: 192.0.2.50 on eth0: active") })

	// Every log line is JSON, and the decisions are there to grep.
	for _, line := range strings.Split(strings.TrimSpace(d.Logs()), "\n") {
		var rec map[string]any
		if err := json.Unmarshal([]byte(line), &rec); err != nil {
			t.Fatalf("not a JSON log line: %q", line)
		}
	}
	if !strings.Contains(d.Logs(), `"msg":"claimed VIP"`) {
		t.Errorf("no claimed line in the JSON log:\n%s", d.Logs())
	}
	d.Signal(syscall.SIGTERM)
	if code, err := d.Wait(5 * time.Second); err != nil || code != 0 {
		t.Fatalf("exit %d, %v", code, err)
	}
	stopping := false
	for note := range drain(notes) {
		stopping = stopping || strings.Contains(note, "STOPPING=1")
	}
	if !stopping {
		t.Error("no STOPPING=1 on SIGTERM")
	}
}

// drain returns what is queued on ch now, without waiting for more.
func drain(ch <-chan string) map[string]bool {
	got := map[string]bool{}
	for {
		select {
		case s, ok := <-ch:
			if !ok {
				return got
			}
			got[s] = true
		case <-time.After(200 * time.Millisecond):
			return got
		}
	}
}

// TestLabProductionSetup runs the README's production setup on two hosts:
// configuration only from FLOATIP_* variables (as contrib/floatip.default
// gives them to the unit, with the VIPs as arguments like its ExecStart), an
// unprivileged user with just CAP_NET_ADMIN and CAP_NET_RAW (as the unit's
// AmbientCapabilities), Type=notify with a watchdog, a health check and a
// hook. The service stops on the holder → the VIP moves, the hook reports it.
func TestLabProductionSetup(t *testing.T) {
	t.Parallel()
	l := fiptest.NewLab(t, 2)
	bin := l.Binary()
	dir := t.TempDir()
	for _, d := range []string{filepath.Dir(dir), dir} { // the daemon and its hooks run as nobody
		if err := os.Chmod(d, 0o777); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.Chmod(filepath.Dir(bin), 0o755); err != nil {
		t.Fatal(err)
	}
	start := func(host, priority string) (*fiptest.Process, string, *net.UnixConn) {
		service := filepath.Join(dir, host+".running") // stands for "pidof haproxy"
		if err := os.WriteFile(service, nil, 0o644); err != nil {
			t.Fatal(err)
		}
		hookLog := filepath.Join(dir, host+".hook")
		sock := filepath.Join(dir, host+".notify")
		conn := listenNotify(t, sock)
		if err := os.Chmod(sock, 0o777); err != nil {
			t.Fatal(err)
		}
		env := []string{
			"PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", // systemd's default
			"FLOATIP_INTERFACE=eth0",
			"FLOATIP_PRIORITY=" + priority,
			"FLOATIP_REFERENCE=192.0.2.100",
			"FLOATIP_CHECK=sh -c 'test -f " + service + "'",
			"FLOATIP_CHECK_INTERVAL=200ms",
			"FLOATIP_ON_CHANGE=sh -c 'echo \"$FLOATIP_STATE $FLOATIP_VIP\" >> " + hookLog + "'",
			"NOTIFY_SOCKET=" + sock,
			"WATCHDOG_USEC=2000000",
		}
		args := append([]string{"--reuid=65534", "--regid=65534", "--clear-groups",
			"--inh-caps=+net_admin,+net_raw", "--ambient-caps=+net_admin,+net_raw", "env", "-i"}, env...)
		args = append(args, bin, labVIP)
		return l.StartProcess(host, "floatip", "setpriv", args...), service, conn
	}
	h1, service1, notify1 := start("h1", "200")
	waitActive(t, l, "h1", 5*time.Second)
	h2, _, _ := start("h2", "100")
	waitStandby(t, h2, 5*time.Second)
	for _, d := range []*fiptest.Process{h1, h2} {
		if strings.Contains(d.Logs(), "level=ERROR") || strings.Contains(d.Logs(), "notification failed") {
			t.Fatalf("%s logged a failure:\n%s", d.Name, d.Logs())
		}
	}
	// systemd would see: READY=1, and a STATUS saying h1 holds the VIP.
	var ready, active bool
	buf := make([]byte, 4096)
	_ = notify1.SetReadDeadline(time.Now().Add(3 * time.Second))
	for !ready || !active {
		n, err := notify1.Read(buf)
		if err != nil {
			t.Fatalf("notify socket: ready=%v, active status=%v: %v", ready, active, err)
		}
		ready = ready || strings.Contains(string(buf[:n]), "READY=1")
		active = active || strings.Contains(string(buf[:n]), "STATUS=192.0.2.50 on eth0: active")
	}

	os.Remove(service1) // the service on the holder stops
	waitSoleHolder(t, l, 2, "h2", 3*time.Second)
	fiptest.WaitFor(t, 3*time.Second, "h2's hook reports active", func() bool {
		b, _ := os.ReadFile(filepath.Join(dir, "h2.hook"))
		return strings.Contains(string(b), "active "+labVIP)
	})
	if !l.ClientPing(labVIP) || l.ClientNeighMAC(labVIP) != fiptest.HostMAC(2) {
		t.Errorf("client does not reach the VIP at h2")
	}
}

// listenNotify is a systemd notify socket at path, as NOTIFY_SOCKET names
// it for the daemon; it is closed when the test ends.
func listenNotify(t *testing.T, path string) *net.UnixConn {
	t.Helper()
	conn, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: path, Net: "unixgram"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	return conn
}
