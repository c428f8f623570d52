package fiptest

// The Go side of the network-namespace lab (lab/lab.sh): integration tests
// build a LAN of hosts h1..hN and a client c, run floatip and udpecho inside
// it, and look at addresses and ARP caches.
//
// Every lab gets its own prefix "fipt-<pid>-<n>", so tests may run in
// parallel; it is torn down by t.Cleanup, also when the test fails. Labs left
// behind by a test binary that was killed (say by -timeout) are swept by the
// next run: a lab whose pid no longer exists is deleted.
//
// Lab tests need root and the tools bash, ip, nft and ping (CaptureARP also
// tcpdump). Without them the tests skip, unless the environment
// variable CI is set, where they fail. FLOATIP_TEST_LOGDIR, if set, keeps the
// processes' log files there (default: the test's temporary directory).

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
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
)

// The lab's fixed addresses (see lab/lab.sh).
const (
	DefaultVIP    = "192.0.2.50" // the demo's floating IP, where the echo servers listen
	ClientIP      = "192.0.2.100"
	ClientMAC     = "02:00:00:00:00:64"
	EchoPort      = 7007
	labCmdTimeout = 10 * time.Second
)

// HostIndex is I of the host named "hI" (0 for any other name).
func HostIndex(name string) int {
	var i int
	fmt.Sscanf(name, "h%d", &i)
	return i
}

// HostMACOf is the MAC of the host named "hI".
func HostMACOf(name string) string { return HostMAC(HostIndex(name)) }

// HostIP is host i's own address (without the /24).
func HostIP(i int) string { return fmt.Sprintf("192.0.2.%d", 10+i) }

// ---------------------------------------------------------------- builds

// ---------------------------------------------------------------- lab

// Lab is one network-namespace lab of lab/lab.sh: a bridge, a client c and
// hosts h1..hN, torn down when its test ends.
type Lab struct {
	T      *testing.T
	Prefix string
	Hosts  int
	logDir string
	nlogs  atomic.Int64
}

var (
	labCounter atomic.Int64
	sweepOnce  sync.Once
	labScript  = filepath.Join(ModuleRoot(), "lab", "lab.sh")
	staleLabRE = regexp.MustCompile(`^(fipt-([0-9]+)-[0-9]+)-(br|c|h[0-9]+)$`)
	shortNSRE  = regexp.MustCompile(`^(br|c|h[1-9][0-9]?)$`)
)

// SkipOrFail skips the test, or fails it when CI is set: a lab test that
// cannot run in CI is a failure.
func SkipOrFail(t *testing.T, format string, args ...any) {
	t.Helper()
	if os.Getenv("CI") != "" {
		t.Fatalf("lab tests cannot run in CI: "+format, args...)
	}
	t.Skipf("skipping lab test: "+format, args...)
}

func requireLabTools(t *testing.T) {
	t.Helper()
	if os.Geteuid() != 0 {
		SkipOrFail(t, "need root for network namespaces (run: sudo go test ...)")
	}
	for _, tool := range []string{"bash", "ip", "nft", "ping"} {
		if _, err := exec.LookPath(tool); err != nil {
			SkipOrFail(t, "%q not found (run: sudo bash lab/lab.sh deps)", tool)
		}
	}
}

// NewLab creates a lab with hosts h1..hN and the client c under a unique
// prefix, and registers its teardown with t.Cleanup.
func NewLab(t *testing.T, hosts int) *Lab {
	t.Helper()
	requireLabTools(t)
	sweepOnce.Do(func() { sweepStaleLabs(t) })
	prefix := fmt.Sprintf("fipt-%d-%d", os.Getpid(), labCounter.Add(1))
	if len(prefix) > 20 {
		t.Fatalf("lab prefix %q longer than 20 characters", prefix)
	}
	l := &Lab{T: t, Prefix: prefix, Hosts: hosts, logDir: os.Getenv("FLOATIP_TEST_LOGDIR")}
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
	l.Script("up", strconv.Itoa(hosts))
	return l
}

// teardown runs "lab.sh down" and checks that no namespace of the lab is
// left. It is idempotent; NewLab's cleanup calls it.
func (l *Lab) teardown() error {
	if out, err := l.scriptErr(60*time.Second, "down"); err != nil {
		return fmt.Errorf("lab.sh down: %v\n%s", err, out)
	}
	if left := Namespaces(l.Prefix); len(left) > 0 {
		return fmt.Errorf("namespaces left after lab.sh down: %v", left)
	}
	return nil
}

// Namespaces lists the namespaces of the lab with this prefix.
func Namespaces(prefix string) []string {
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

// NSName is the full namespace name of "h1", "c" or "br".
func (l *Lab) NSName(short string) string {
	if !shortNSRE.MatchString(short) {
		l.T.Fatalf("unknown lab namespace %q (want br, c, h1, h2, ...)", short)
	}
	return l.Prefix + "-" + short
}

// scriptErr runs lab/lab.sh for this lab.
func (l *Lab) scriptErr(timeout time.Duration, args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, "bash", append([]string{labScript}, args...)...)
	cmd.Env = append(os.Environ(), "FLOATIP_LAB="+l.Prefix)
	cmd.WaitDelay = 2 * time.Second
	out, err := cmd.CombinedOutput()
	if ctx.Err() != nil {
		err = fmt.Errorf("timed out after %v: %w", timeout, err)
	}
	return string(out), err
}

// Script runs lab/lab.sh with FLOATIP_LAB set to this lab's prefix
// (e.g. l.script("cut", "h1")) and returns its output; t.Fatal on error.
func (l *Lab) Script(args ...string) string {
	l.T.Helper()
	out, err := l.scriptErr(60*time.Second, args...)
	if err != nil {
		l.T.Fatalf("lab.sh %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return out
}

// Run runs argv in the namespace short ("h1", "c", "br") and returns its
// combined output; it is killed after 10 s. A command that ran and failed
// gives the plain *exec.ExitError (so its ExitCode is at hand); a timeout
// gives an error that says so.
func (l *Lab) Run(short string, argv ...string) (string, error) {
	ns := l.NSName(short)
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

// MustRun is run, with t.Fatal on error.
func (l *Lab) MustRun(short string, argv ...string) string {
	l.T.Helper()
	out, err := l.Run(short, argv...)
	if err != nil {
		l.T.Fatalf("in %s: %s: %v\n%s", l.NSName(short), strings.Join(argv, " "), err, out)
	}
	return out
}

// HostHasAddr tells whether eth0 of host carries cidr ("192.0.2.50/32",
// "2001:db8::50/128");
// without a "/", any prefix length matches.
func (l *Lab) HostHasAddr(host, cidr string) bool {
	family, key := "-4", "inet"
	if strings.Contains(cidr, ":") {
		family, key = "-6", "inet6"
	}
	out, err := l.Run(host, "ip", "-o", family, "addr", "show", "dev", "eth0")
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

// LinkUp tells whether eth0 of host has carrier (LOWER_UP).
func (l *Lab) LinkUp(host string) bool {
	out, err := l.Run(host, "ip", "-o", "link", "show", "dev", "eth0")
	return err == nil && strings.Contains(out, "LOWER_UP")
}

// ClientNeighMAC is the MAC in the client's ARP cache for ip, "" if there
// is none or the entry is FAILED or INCOMPLETE.
func (l *Lab) ClientNeighMAC(ip string) string {
	out, err := l.Run("c", "ip", "neigh", "show", ip, "dev", "eth0")
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

// ClientPing sends one ping from the client and waits 1 s for the answer.
func (l *Lab) ClientPing(ip string) bool {
	l.T.Helper()
	RequireLabAddr(l.T, ip)
	_, err := l.Run("c", "ping", "-n", "-q", "-c", "1", "-W", "1", ip)
	return err == nil
}

// RequireLabAddr fails the test for an address outside the documentation
// ranges: lab traffic never goes anywhere else.
func RequireLabAddr(t *testing.T, ip string) {
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

// CaptureARP returns, as hex, the whole Ethernet frame of the first
// broadcast ARP frame the client receives while fn runs (tcpdump in the
// client namespace). It fails the test when none arrives within 5 s.
func (l *Lab) CaptureARP(fn func()) string {
	l.T.Helper()
	return l.CaptureFrame("arp and ether broadcast", fn)
}

// CaptureFrame is CaptureARP for the first frame that matches a tcpdump
// filter.
func (l *Lab) CaptureFrame(filter string, fn func()) string {
	t := l.T
	t.Helper()
	if _, err := exec.LookPath("tcpdump"); err != nil {
		SkipOrFail(t, "tcpdump not found (apt-get install tcpdump)")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, "ip", "netns", "exec", l.NSName("c"),
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
	var errText SyncBuffer
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

// ---------------------------------------------------------------- udpecho

// ---------------------------------------------------------------- the lab's own test
