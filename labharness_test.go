package main

// The Go side of the network-namespace lab (lab/lab.sh): integration tests
// build a LAN of hosts h1..hN and a client c, run floatip and udpecho inside
// it, and look at addresses and ARP caches.
//
// Every lab gets its own prefix "fipt-<pid>-<n>", so tests may run in
// parallel; it is torn down by t.Cleanup, also when the test fails. Labs left
// behind by a test binary that was killed (say by -timeout) are swept by the
// next run: a lab whose pid no longer exists is deleted.
//
// Lab tests need root and the tools bash, ip, nft and ping (captureARP also
// tcpdump). Without them the tests skip, unless the environment
// variable CI is set, where they fail. FLOATIP_TEST_LOGDIR, if set, keeps the
// processes' log files there (default: the test's temporary directory).

import (
	"bufio"
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
	"regexp"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"floatip/internal/fiptest"
)

// The lab's fixed addresses (see lab/lab.sh).
const (
	labDefaultVIP = "192.0.2.50" // the demo's floating IP, where the echo servers listen
	labClientIP   = "192.0.2.100"
	labClientMAC  = "02:00:00:00:00:64"
	labEchoPort   = 7007
	labCmdTimeout = 10 * time.Second
)

// hostMAC is host i's eth0 MAC, as lab.sh sets it.
func hostMAC(i int) string { return fiptest.HostMAC(i) }

// hostIndex is I of the host named "hI" (0 for any other name).
func hostIndex(name string) int {
	var i int
	fmt.Sscanf(name, "h%d", &i)
	return i
}

// hostMACOf is the MAC of the host named "hI".
func hostMACOf(name string) string { return hostMAC(hostIndex(name)) }

// hostIP is host i's own address (without the /24).
func hostIP(i int) string { return fmt.Sprintf("192.0.2.%d", 10+i) }

// TestMain removes the binaries built for the lab tests (the package's only
// TestMain: add to it rather than writing another).
func TestMain(m *testing.M) {
	code := m.Run()
	builds.mu.Lock()
	if builds.dir != "" {
		_ = os.RemoveAll(builds.dir)
	}
	builds.mu.Unlock()
	os.Exit(code)
}

// ---------------------------------------------------------------- builds

// builds holds the binaries built once per test run (the only state tests share).
var builds struct {
	mu       sync.Mutex
	dir      string
	floatip  onceBuild
	udpecho  onceBuild
	arpflood onceBuild
	tcpidle  onceBuild
}

type onceBuild struct {
	once sync.Once
	path string
	err  error
}

func goBuild(b *onceBuild, name, pkg string, ldflags ...string) (string, error) {
	b.once.Do(func() {
		builds.mu.Lock()
		if builds.dir == "" {
			builds.dir, b.err = os.MkdirTemp("", "floatip-test-bin-")
		}
		dir := builds.dir
		builds.mu.Unlock()
		if b.err != nil {
			return
		}
		goTool, err := exec.LookPath("go")
		if err != nil {
			goTool = "/usr/local/go/bin/go"
		}
		out := filepath.Join(dir, name)
		args := []string{"build", "-trimpath", "-o", out}
		if len(ldflags) > 0 {
			args = append(args, "-ldflags", strings.Join(ldflags, " "))
		}
		args = append(args, pkg)
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
		defer cancel()
		cmd := exec.CommandContext(ctx, goTool, args...)
		cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
		if msg, err := cmd.CombinedOutput(); err != nil {
			b.err = fmt.Errorf("go %s: %v\n%s", strings.Join(args, " "), err, msg)
			return
		}
		b.path = out
	})
	return b.path, b.err
}

// buildFloatip builds the floatip binary (once per test run) and returns its path.
func buildFloatip(t *testing.T) string {
	t.Helper()
	p, err := goBuild(&builds.floatip, "floatip", ".", "-s", "-w")
	if err != nil {
		t.Fatalf("building floatip: %v", err)
	}
	return p
}

// buildUDPEcho builds lab/udpecho (once per test run) and returns its path.
func buildUDPEcho(t *testing.T) string {
	t.Helper()
	p, err := goBuild(&builds.udpecho, "udpecho", "./lab/udpecho")
	if err != nil {
		t.Fatalf("building udpecho: %v", err)
	}
	return p
}

// buildARPFlood builds lab/arpflood (once per test run) and returns its path.
func buildARPFlood(t *testing.T) string {
	t.Helper()
	p, err := goBuild(&builds.arpflood, "arpflood", "./lab/arpflood")
	if err != nil {
		t.Fatalf("building arpflood: %v", err)
	}
	return p
}

// buildTCPIdle builds lab/tcpidle (once per test run) and returns its path.
func buildTCPIdle(t *testing.T) string {
	t.Helper()
	p, err := goBuild(&builds.tcpidle, "tcpidle", "./lab/tcpidle")
	if err != nil {
		t.Fatalf("building tcpidle: %v", err)
	}
	return p
}

// ---------------------------------------------------------------- lab

type lab struct {
	t      *testing.T
	prefix string
	hosts  int
	logDir string
	nlogs  atomic.Int64
}

var (
	labCounter atomic.Int64
	sweepOnce  sync.Once
	labScript  = mustAbs("lab/lab.sh")
	staleLabRE = regexp.MustCompile(`^(fipt-([0-9]+)-[0-9]+)-(br|c|h[0-9]+)$`)
	shortNSRE  = regexp.MustCompile(`^(br|c|h[1-9][0-9]?)$`)
)

func mustAbs(p string) string {
	a, err := filepath.Abs(p)
	if err != nil {
		panic(err)
	}
	return a
}

// skipOrFail skips the test, or fails it when CI is set: a lab test that
// cannot run in CI is a failure.
func skipOrFail(t *testing.T, format string, args ...any) {
	t.Helper()
	if os.Getenv("CI") != "" {
		t.Fatalf("lab tests cannot run in CI: "+format, args...)
	}
	t.Skipf("skipping lab test: "+format, args...)
}

func requireLabTools(t *testing.T) {
	t.Helper()
	if os.Geteuid() != 0 {
		skipOrFail(t, "need root for network namespaces (run: sudo go test ...)")
	}
	for _, tool := range []string{"bash", "ip", "nft", "ping"} {
		if _, err := exec.LookPath(tool); err != nil {
			skipOrFail(t, "%q not found (run: sudo bash lab/lab.sh deps)", tool)
		}
	}
}

// newLab creates a lab with hosts h1..hN and the client c under a unique
// prefix, and registers its teardown with t.Cleanup.
func newLab(t *testing.T, hosts int) *lab {
	t.Helper()
	requireLabTools(t)
	sweepOnce.Do(func() { sweepStaleLabs(t) })
	prefix := fmt.Sprintf("fipt-%d-%d", os.Getpid(), labCounter.Add(1))
	if len(prefix) > 20 {
		t.Fatalf("lab prefix %q longer than 20 characters", prefix)
	}
	l := &lab{t: t, prefix: prefix, hosts: hosts, logDir: os.Getenv("FLOATIP_TEST_LOGDIR")}
	if l.logDir == "" {
		l.logDir = t.TempDir()
	} else if err := os.MkdirAll(l.logDir, 0o755); err != nil {
		t.Fatal(err)
	}
	// Registered before "up", so that even a half-built lab goes away.
	t.Cleanup(func() {
		if err := l.teardown(); err != nil {
			t.Errorf("lab teardown: %v", err)
		}
	})
	l.script("up", strconv.Itoa(hosts))
	return l
}

// teardown runs "lab.sh down" and checks that no namespace of the lab is
// left. It is idempotent; newLab's cleanup calls it.
func (l *lab) teardown() error {
	if out, err := l.scriptErr(60*time.Second, "down"); err != nil {
		return fmt.Errorf("lab.sh down: %v\n%s", err, out)
	}
	if left := labNamespaces(l.prefix); len(left) > 0 {
		return fmt.Errorf("namespaces left after lab.sh down: %v", left)
	}
	return nil
}

// labNamespaces lists the namespaces of the lab with this prefix.
func labNamespaces(prefix string) []string {
	out, _ := exec.Command("ip", "netns", "list").Output()
	var names []string
	for _, line := range strings.Split(string(out), "\n") {
		f := strings.Fields(line)
		if len(f) == 0 {
			continue
		}
		if rest, ok := strings.CutPrefix(f[0], prefix+"-"); ok && shortNSRE.MatchString(rest) {
			names = append(names, f[0])
		}
	}
	return names
}

// sweepStaleLabs deletes labs whose test process no longer exists.
func sweepStaleLabs(t *testing.T) {
	out, err := exec.Command("ip", "netns", "list").Output()
	if err != nil {
		return
	}
	stale := map[string]bool{}
	for _, line := range strings.Split(string(out), "\n") {
		f := strings.Fields(line)
		if len(f) == 0 {
			continue
		}
		m := staleLabRE.FindStringSubmatch(f[0])
		if m == nil {
			continue
		}
		pid, err := strconv.Atoi(m[2])
		if err != nil || pid == os.Getpid() {
			continue
		}
		if err := syscall.Kill(pid, 0); errors.Is(err, syscall.ESRCH) {
			stale[m[1]] = true
		}
	}
	for prefix := range stale {
		t.Logf("removing lab %s left behind by a dead test process", prefix)
		ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
		cmd := exec.CommandContext(ctx, "bash", labScript, "down")
		cmd.Env = append(os.Environ(), "FLOATIP_LAB="+prefix)
		if msg, err := cmd.CombinedOutput(); err != nil {
			t.Logf("lab.sh down for %s: %v\n%s", prefix, err, msg)
		}
		cancel()
	}
}

// nsName is the full namespace name of "h1", "c" or "br".
func (l *lab) nsName(short string) string {
	if !shortNSRE.MatchString(short) {
		l.t.Fatalf("unknown lab namespace %q (want br, c, h1, h2, ...)", short)
	}
	return l.prefix + "-" + short
}

// scriptErr runs lab/lab.sh for this lab.
func (l *lab) scriptErr(timeout time.Duration, args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, "bash", append([]string{labScript}, args...)...)
	cmd.Env = append(os.Environ(), "FLOATIP_LAB="+l.prefix)
	cmd.WaitDelay = 2 * time.Second
	out, err := cmd.CombinedOutput()
	if ctx.Err() != nil {
		err = fmt.Errorf("timed out after %v: %w", timeout, err)
	}
	return string(out), err
}

// script runs lab/lab.sh with FLOATIP_LAB set to this lab's prefix
// (e.g. l.script("cut", "h1")) and returns its output; t.Fatal on error.
func (l *lab) script(args ...string) string {
	l.t.Helper()
	out, err := l.scriptErr(60*time.Second, args...)
	if err != nil {
		l.t.Fatalf("lab.sh %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return out
}

// run runs argv in the namespace short ("h1", "c", "br") and returns its
// combined output; it is killed after 10 s. A command that ran and failed
// gives the plain *exec.ExitError (so its ExitCode is at hand); a timeout
// gives an error that says so.
func (l *lab) run(short string, argv ...string) (string, error) {
	ns := l.nsName(short)
	ctx, cancel := context.WithTimeout(context.Background(), labCmdTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, "ip", append([]string{"netns", "exec", ns}, argv...)...)
	cmd.WaitDelay = time.Second
	out, err := cmd.CombinedOutput()
	if err != nil && ctx.Err() != nil {
		err = fmt.Errorf("in %s: %s: timed out after %v: %w", ns, strings.Join(argv, " "), labCmdTimeout, err)
	}
	return string(out), err
}

// mustRun is run, with t.Fatal on error.
func (l *lab) mustRun(short string, argv ...string) string {
	l.t.Helper()
	out, err := l.run(short, argv...)
	if err != nil {
		l.t.Fatalf("in %s: %s: %v\n%s", l.nsName(short), strings.Join(argv, " "), err, out)
	}
	return out
}

// hostHasAddr tells whether eth0 of host carries cidr ("192.0.2.50/32",
// "2001:db8::50/128");
// without a "/", any prefix length matches.
func (l *lab) hostHasAddr(host, cidr string) bool {
	family, key := "-4", "inet"
	if strings.Contains(cidr, ":") {
		family, key = "-6", "inet6"
	}
	out, err := l.run(host, "ip", "-o", family, "addr", "show", "dev", "eth0")
	if err != nil {
		return false
	}
	for _, line := range strings.Split(out, "\n") {
		f := strings.Fields(line)
		for i := 0; i+1 < len(f); i++ {
			if f[i] != key {
				continue
			}
			if f[i+1] == cidr || (!strings.Contains(cidr, "/") && strings.HasPrefix(f[i+1], cidr+"/")) {
				return true
			}
		}
	}
	return false
}

// linkUp tells whether eth0 of host has carrier (LOWER_UP).
func (l *lab) linkUp(host string) bool {
	out, err := l.run(host, "ip", "-o", "link", "show", "dev", "eth0")
	return err == nil && strings.Contains(out, "LOWER_UP")
}

// clientNeighMAC is the MAC in the client's ARP cache for ip, "" if there
// is none or the entry is FAILED or INCOMPLETE.
func (l *lab) clientNeighMAC(ip string) string {
	out, err := l.run("c", "ip", "neigh", "show", ip, "dev", "eth0")
	if err != nil {
		return ""
	}
	for _, line := range strings.Split(out, "\n") {
		f := strings.Fields(line)
		if len(f) == 0 || f[0] != ip || strings.Contains(line, "FAILED") || strings.Contains(line, "INCOMPLETE") {
			continue
		}
		for i := 0; i+1 < len(f); i++ {
			if f[i] == "lladdr" {
				return f[i+1]
			}
		}
	}
	return ""
}

// clientPing sends one ping from the client and waits 1 s for the answer.
func (l *lab) clientPing(ip string) bool {
	l.t.Helper()
	requireLabAddr(l.t, ip)
	_, err := l.run("c", "ping", "-n", "-q", "-c", "1", "-W", "1", ip)
	return err == nil
}

// requireLabAddr fails the test for an address outside the documentation
// ranges: lab traffic never goes anywhere else.
func requireLabAddr(t *testing.T, ip string) {
	t.Helper()
	a, err := netip.ParseAddr(ip)
	if err == nil {
		for _, p := range []string{"192.0.2.0/24", "198.51.100.0/24", "203.0.113.0/24", "2001:db8::/32"} {
			if netip.MustParsePrefix(p).Contains(a) {
				return
			}
		}
	}
	t.Fatalf("%q is not in a documentation range: the lab only uses 192.0.2.0/24, 198.51.100.0/24, 203.0.113.0/24, 2001:db8::/32", ip)
}

// captureARP returns, as hex, the whole Ethernet frame of the first
// broadcast ARP frame the client receives while fn runs (tcpdump in the
// client namespace). It fails the test when none arrives within 5 s.
func (l *lab) captureARP(fn func()) string {
	l.t.Helper()
	return l.captureFrame("arp and ether broadcast", fn)
}

// captureFrame is captureARP for the first frame that matches a tcpdump
// filter.
func (l *lab) captureFrame(filter string, fn func()) string {
	t := l.t
	t.Helper()
	if _, err := exec.LookPath("tcpdump"); err != nil {
		skipOrFail(t, "tcpdump not found (apt-get install tcpdump)")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, "ip", "netns", "exec", l.nsName("c"),
		"tcpdump", "-i", "eth0", "-Q", "in", "-n", "-l", "-xx", "-c", "1", filter)
	cmd.WaitDelay = time.Second
	var stdout bytes.Buffer
	cmd.Stdout = &stdout
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatalf("starting tcpdump: %v", err)
	}
	ready := make(chan struct{})
	var errText fiptest.SyncBuffer
	scanned := make(chan struct{})
	go func() {
		defer close(scanned)
		sc := bufio.NewScanner(stderr)
		once := sync.Once{}
		for sc.Scan() {
			fmt.Fprintln(&errText, sc.Text())
			if strings.HasPrefix(sc.Text(), "listening on") {
				once.Do(func() { close(ready) })
			}
		}
	}()
	select {
	case <-ready:
	case <-time.After(5 * time.Second):
		cancel()
		<-scanned
		_ = cmd.Wait()
		t.Fatalf("tcpdump in the client did not start: %s", errText.String())
	}
	fn()
	done := make(chan error, 1)
	go func() { <-scanned; done <- cmd.Wait() }()
	select {
	case err = <-done:
	case <-time.After(5 * time.Second):
		cancel()
		<-done
		t.Fatalf("no frame matching %q reached the client within 5 s", filter)
	}
	if err != nil {
		t.Fatalf("tcpdump: %v\n%s", err, errText.String())
	}
	var hex strings.Builder
	for _, line := range strings.Split(stdout.String(), "\n") {
		f := strings.Fields(line)
		if len(f) < 2 || !strings.HasPrefix(f[0], "0x") {
			continue
		}
		for _, w := range f[1:] {
			hex.WriteString(w)
		}
	}
	if hex.Len() == 0 {
		t.Fatalf("tcpdump printed no frame:\n%s", stdout.String())
	}
	return hex.String()
}

// ---------------------------------------------------------------- processes

// process is a process running in a lab namespace (floatip, an echo server).
type process struct {
	t       *testing.T
	name    string
	cmd     *exec.Cmd
	out     *fiptest.SyncBuffer
	logPath string
	done    chan struct{} // closed when the process has been waited for
	state   *os.ProcessState
	waitErr error
}

// startDaemon starts the floatip binary (built once per test run) with args
// in host's namespace. Its output is kept in memory (logs) and in a file.
// Cleanup stops it if still running and, when the test failed, logs its
// last 40 lines.
func (l *lab) startDaemon(host string, args ...string) *process {
	l.t.Helper()
	return l.startProcess(host, "floatip", buildFloatip(l.t), args...)
}

// binary is the path of the floatip binary the lab runs (built once per
// test run), e.g. for l.run("c", l.binary(), "probe", ...).
func (l *lab) binary() string {
	l.t.Helper()
	return buildFloatip(l.t)
}

// startProcess starts bin with args in host's namespace (see startDaemon).
func (l *lab) startProcess(host, name, bin string, args ...string) *process {
	t := l.t
	t.Helper()
	ns := l.nsName(host)
	logPath := filepath.Join(l.logDir, fmt.Sprintf("%s-%s-%s-%d.log", l.prefix, host, name, l.nlogs.Add(1)))
	f, err := os.Create(logPath)
	if err != nil {
		t.Fatal(err)
	}
	d := &process{t: t, name: host + "/" + name, out: &fiptest.SyncBuffer{}, logPath: logPath, done: make(chan struct{})}
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
		if d.running() {
			_ = d.cmd.Process.Signal(syscall.SIGTERM)
			if _, err := d.Wait(3 * time.Second); err != nil {
				_ = d.cmd.Process.Kill()
				_, _ = d.Wait(2 * time.Second)
			}
		}
		if t.Failed() {
			t.Logf("last lines of %s (pid %d, %s):\n%s", d.name, d.pid(), d.logPath, lastLines(d.logs(), 40))
		}
	})
	return d
}

func lastLines(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

func (d *process) pid() int { return d.cmd.Process.Pid }

func (d *process) running() bool { return !d.exited() }

// exited tells whether the process has ended.
func (d *process) exited() bool {
	select {
	case <-d.done:
		return true
	default:
		return false
	}
}

// signal sends sig to the process (nothing if it has already exited).
func (d *process) signal(sig os.Signal) {
	if !d.running() {
		d.t.Logf("%s: not signalled with %v: it already exited", d.name, sig)
		return
	}
	if err := d.cmd.Process.Signal(sig); err != nil && !errors.Is(err, os.ErrProcessDone) {
		d.t.Errorf("%s: signal %v: %v", d.name, sig, err)
	}
}

// Wait waits up to timeout for the process to exit and returns its exit
// code; a death by signal N gives 128+N, as in a shell.
func (d *process) Wait(timeout time.Duration) (int, error) {
	timer := time.NewTimer(timeout)
	defer timer.Stop()
	select {
	case <-d.done:
	case <-timer.C:
		return -1, fmt.Errorf("%s (pid %d) still running after %v", d.name, d.pid(), timeout)
	}
	if d.state == nil {
		return -1, fmt.Errorf("%s: %v", d.name, d.waitErr)
	}
	if ws, ok := d.state.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
		return 128 + int(ws.Signal()), nil
	}
	return d.state.ExitCode(), nil
}

// logs is everything the process wrote to stdout and stderr so far.
func (d *process) logs() string { return d.out.String() }

// ---------------------------------------------------------------- udpecho

// startEchoServers starts "udpecho serve" bound to labDefaultVIP:7007 on every host
// h1..hN of newLab, each answering with its host name, and waits until each
// is listening.
func (l *lab) startEchoServers() []*process {
	l.t.Helper()
	var ds []*process
	for i := 1; i <= l.hosts; i++ {
		ds = append(ds, l.startEchoServer(fmt.Sprintf("h%d", i), fmt.Sprintf("%s:%d", labDefaultVIP, labEchoPort)))
	}
	return ds
}

// startEchoServer starts "udpecho serve -listen listen -name host" in host.
func (l *lab) startEchoServer(host, listen string) *process {
	l.t.Helper()
	d := l.startProcess(host, "udpecho", buildUDPEcho(l.t), "serve", "-listen", listen, "-name", host)
	fiptest.WaitFor(l.t, 5*time.Second, host+"'s echo server to listen on "+listen, func() bool {
		if !d.running() {
			l.t.Fatalf("echo server on %s exited: %s", host, d.logs())
		}
		return strings.Contains(d.logs(), "serving on")
	})
	return d
}

// udpSummary is udpecho client's -json summary.
type udpSummary struct {
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

// udpClient runs the udpecho client in the client namespace against
// labDefaultVIP:7007 in the background: one request every `every` for `duration`.
// The channel yields its summary (check Err) once it has finished.
func (l *lab) udpClient(duration, every time.Duration) <-chan udpSummary {
	l.t.Helper()
	return l.udpClientTo(fmt.Sprintf("%s:%d", labDefaultVIP, labEchoPort), duration, every)
}

// udpClientTo is udpClient against another ADDR:PORT.
func (l *lab) udpClientTo(target string, duration, every time.Duration) <-chan udpSummary {
	t := l.t
	t.Helper()
	ap, err := netip.ParseAddrPort(target)
	if err != nil {
		t.Fatalf("udpClient target %q: %v", target, err)
	}
	requireLabAddr(t, ap.Addr().String())
	bin := buildUDPEcho(t)
	ctx, cancel := context.WithTimeout(context.Background(), duration+20*time.Second)
	cmd := exec.CommandContext(ctx, "ip", "netns", "exec", l.nsName("c"), bin, "client",
		"-target", target, "-every", every.String(), "-duration", duration.String(), "-json")
	cmd.WaitDelay = 2 * time.Second
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	ch := make(chan udpSummary, 1)
	finished := make(chan struct{})
	if err := cmd.Start(); err != nil {
		cancel()
		t.Fatalf("starting udpecho client: %v", err)
	}
	go func() {
		defer close(finished)
		defer close(ch)
		defer cancel()
		var s udpSummary
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

// ---------------------------------------------------------------- the lab's own test

func TestHostMAC(t *testing.T) {
	for i, want := range map[int]string{1: "02:00:00:00:00:01", 10: "02:00:00:00:00:0a", 60: "02:00:00:00:00:3c"} {
		if got := hostMAC(i); got != want {
			t.Errorf("hostMAC(%d) = %s, want %s", i, got, want)
		}
	}
}

func pingLossPercent(t *testing.T, out string) float64 {
	t.Helper()
	m := regexp.MustCompile(`([0-9.]+)% packet loss`).FindStringSubmatch(out)
	if m == nil {
		t.Fatalf("no packet loss figure in ping output:\n%s", out)
	}
	v, _ := strconv.ParseFloat(m[1], 64)
	return v
}

func TestLabSmoke(t *testing.T) {
	t.Parallel()
	l := newLab(t, 2)

	// Addresses, MACs and sysctls are as lab.sh documents them.
	for i := 1; i <= 2; i++ {
		h := fmt.Sprintf("h%d", i)
		if out := l.mustRun(h, "ip", "-o", "link", "show", "dev", "eth0"); !strings.Contains(out, hostMAC(i)) {
			t.Errorf("%s eth0 lacks MAC %s:\n%s", h, hostMAC(i), out)
		}
		if !l.hostHasAddr(h, hostIP(i)+"/24") {
			t.Errorf("%s lacks %s/24", h, hostIP(i))
		}
		if l.hostHasAddr(h, labDefaultVIP) {
			t.Errorf("%s holds the VIP before any daemon ran", h)
		}
		if v := strings.TrimSpace(l.mustRun(h, "cat", "/proc/sys/net/ipv4/ip_nonlocal_bind")); v != "1" {
			t.Errorf("%s ip_nonlocal_bind = %s, want 1", h, v)
		}
	}
	if out := l.mustRun("c", "ip", "-o", "link", "show", "dev", "eth0"); !strings.Contains(out, labClientMAC) {
		t.Errorf("client eth0 lacks MAC %s:\n%s", labClientMAC, out)
	}
	if !l.hostHasAddr("c", labClientIP+"/24") {
		t.Errorf("client lacks %s/24", labClientIP)
	}

	// The LAN works.
	for i := 1; i <= 2; i++ {
		if !l.clientPing(hostIP(i)) {
			t.Fatalf("client cannot ping h%d (%s)", i, hostIP(i))
		}
	}
	if got := l.clientNeighMAC(hostIP(1)); got != hostMAC(1) {
		t.Errorf("client's ARP entry for %s = %q, want %s", hostIP(1), got, hostMAC(1))
	}
	if got := l.clientNeighMAC(labDefaultVIP); got != "" {
		t.Errorf("client has an ARP entry %q for the unused VIP", got)
	}

	// loss 100 cuts h1 off both ways, keeps h2, and loss 0 restores it.
	l.script("loss", "h1", "100")
	rules := l.mustRun("br", "nft", "list", "ruleset")
	if !strings.Contains(rules, `hook ingress device "h1"`) ||
		!(strings.Contains(rules, `hook egress device "h1"`) || strings.Contains(rules, `oifname "h1"`)) {
		t.Errorf("loss h1 100 did not install rules in both directions:\n%s", rules)
	}
	if l.clientPing(hostIP(1)) {
		t.Errorf("client can ping h1 under 100%% loss")
	}
	if _, err := l.run("h1", "ping", "-n", "-q", "-c", "1", "-W", "1", labClientIP); err == nil {
		t.Errorf("h1 can ping the client under 100%% loss")
	}
	if !l.clientPing(hostIP(2)) {
		t.Errorf("loss on h1 also cut h2")
	}
	l.script("loss", "h1", "0")
	if rules := l.mustRun("br", "nft", "list", "ruleset"); strings.Contains(rules, "h1") {
		t.Errorf("loss h1 0 left rules behind:\n%s", rules)
	}
	fiptest.WaitFor(t, 5*time.Second, "h1 reachable again after loss h1 0", func() bool { return l.clientPing(hostIP(1)) })

	// Partial loss: 50% each way loses about 75% of ping round trips.
	l.script("loss", "h2", "50")
	out, _ := l.run("c", "ping", "-n", "-q", "-c", "100", "-i", "0.01", "-W", "1", hostIP(2))
	if p := pingLossPercent(t, out); p < 40 || p > 98 {
		t.Errorf("loss h2 50: %.0f%% of pings lost, want about 75%%", p)
	}
	l.script("loss", "h2", "0")
	fiptest.WaitFor(t, 5*time.Second, "h2 reachable after loss h2 0", func() bool { return l.clientPing(hostIP(2)) })

	// cut takes the carrier away, heal gives it back.
	l.script("cut", "h1")
	fiptest.WaitFor(t, 5*time.Second, "h1 to see NO-CARRIER after cut", func() bool { return !l.linkUp("h1") })
	if l.clientPing(hostIP(1)) {
		t.Errorf("client can ping h1 after cut")
	}
	l.script("heal", "h1")
	fiptest.WaitFor(t, 5*time.Second, "h1 carrier after heal", func() bool { return l.linkUp("h1") })
	fiptest.WaitFor(t, 5*time.Second, "h1 reachable after heal", func() bool { return l.clientPing(hostIP(1)) })

	// isolate drops everything but keeps the carrier.
	l.script("isolate", "h2")
	if !l.linkUp("h2") {
		t.Errorf("isolate h2 took the carrier away")
	}
	if l.clientPing(hostIP(2)) {
		t.Errorf("client can ping isolated h2")
	}
	l.script("unisolate", "h2")
	fiptest.WaitFor(t, 5*time.Second, "h2 reachable after unisolate", func() bool { return l.clientPing(hostIP(2)) })

	// unplug keeps the namespace; plug brings the host back as it was.
	l.script("unplug", "2")
	if out, err := l.run("h2", "ip", "link", "show", "dev", "eth0"); err == nil {
		t.Errorf("h2 still has eth0 after unplug:\n%s", out)
	}
	l.script("plug", "2")
	if !l.hostHasAddr("h2", hostIP(2)+"/24") {
		t.Errorf("h2 lacks its address after plug")
	}
	fiptest.WaitFor(t, 5*time.Second, "h2 reachable after plug", func() bool { return l.clientPing(hostIP(2)) })

	// plug into a namespace a test created empty (to start a daemon first).
	if out, err := exec.Command("ip", "netns", "add", l.nsName("h3")).CombinedOutput(); err != nil {
		t.Fatalf("ip netns add: %v\n%s", err, out)
	}
	l.script("plug", "3")
	if out := l.mustRun("h3", "ip", "-o", "link", "show", "dev", "eth0"); !strings.Contains(out, hostMAC(3)) {
		t.Errorf("h3 eth0 lacks MAC %s:\n%s", hostMAC(3), out)
	}
	fiptest.WaitFor(t, 5*time.Second, "h3 reachable after plug", func() bool { return l.clientPing(hostIP(3)) })
	if got := l.clientNeighMAC(hostIP(3)); got != hostMAC(3) {
		t.Errorf("client's ARP entry for h3 = %q, want %s", got, hostMAC(3))
	}

	// Teardown leaves nothing, even a process a test forgot inside the lab.
	var subPrefix string
	var stray *exec.Cmd
	t.Run("teardown", func(t *testing.T) {
		sub := newLab(t, 1)
		subPrefix = sub.prefix
		stray = exec.Command("ip", "netns", "exec", sub.nsName("h1"), "sleep", "300")
		if err := stray.Start(); err != nil {
			t.Fatal(err)
		}
		// the subtest's cleanup (lab.sh down) runs when it returns
	})
	if subPrefix == "" {
		t.Fatal("the teardown sub-lab was not created")
	}
	if left := labNamespaces(subPrefix); len(left) > 0 {
		t.Errorf("namespaces left after teardown: %v", left)
	}
	if stray != nil {
		exited := make(chan error, 1)
		go func() { exited <- stray.Wait() }()
		select {
		case <-exited:
		case <-time.After(5 * time.Second):
			_ = stray.Process.Kill()
			t.Errorf("lab.sh down did not end a process running in the lab")
		}
	}
	if _, err := os.Stat(filepath.Join(os.TempDir(), subPrefix+".lab")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("lab state dir of %s still exists (%v)", subPrefix, err)
	}
}

// TestLabEcho checks the udpecho helpers with a VIP configured by hand.
func TestLabEcho(t *testing.T) {
	t.Parallel()
	l := newLab(t, 2)
	l.startEchoServers() // bound to the VIP before anyone holds it
	l.mustRun("h1", "ip", "addr", "add", labDefaultVIP+"/32", "dev", "eth0")
	if !l.hostHasAddr("h1", labDefaultVIP+"/32") {
		t.Fatalf("h1 lacks the VIP after ip addr add")
	}
	s := <-l.udpClient(time.Second, 10*time.Millisecond)
	if s.Err != nil {
		t.Fatalf("%v\n%s", s.Err, s.Stderr)
	}
	t.Logf("summary: %+v", s)
	if s.Sent < 90 || s.Answered < s.Sent*95/100 || s.ByResponder["h1"] != s.Answered || len(s.Changes) != 0 {
		t.Errorf("want nearly all %d requests answered by h1 alone: %+v", s.Sent, s)
	}
	if s.LongestGapMs > 200 {
		t.Errorf("longest gap %d ms on a quiet LAN", s.LongestGapMs)
	}
	if got := l.clientNeighMAC(labDefaultVIP); got != hostMAC(1) {
		t.Errorf("client's ARP entry for the VIP = %q, want h1's %s", got, hostMAC(1))
	}
}
