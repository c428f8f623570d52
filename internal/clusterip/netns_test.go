package clusterip

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"regexp"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// The kernel tests run in network namespaces named fipt-clip-*, with the
// documentation addresses only, and never touch the root namespace's
// ruleset or links.

func needRoot(t *testing.T) {
	t.Helper()
	skip := t.Skipf
	if os.Getenv("CI") != "" {
		skip = t.Fatalf // as the lab tests: one that cannot run in CI fails
	}
	if os.Geteuid() != 0 {
		skip("needs root: it creates network namespaces (fipt-clip-*) and nftables tables in them")
	}
	for _, tool := range []string{"ip", "nft"} {
		if _, err := exec.LookPath(tool); err != nil {
			skip("needs %s (iproute2, nftables): %v", tool, err)
		}
	}
	sweepOnce.Do(sweep)
}

var (
	sweepOnce sync.Once
	staleRE   = regexp.MustCompile(`^fipt-clip-(?:br-)?([0-9]+)(?:-[a-z0-9]+)?$`)
)

// sweep deletes the namespaces of test runs that were killed before
// their cleanup: those whose process is gone.
func sweep() {
	out, _ := runErr("ip", "netns", "list")
	for _, line := range strings.Split(out, "\n") {
		name, _, _ := strings.Cut(line, " ")
		if m := staleRE.FindStringSubmatch(name); m != nil {
			if _, err := os.Stat("/proc/" + m[1]); errors.Is(err, fs.ErrNotExist) {
				runErr("ip", "netns", "del", name)
			}
		}
	}
}

// run runs a command with a bound on its time and fails the test if it fails.
func run(t *testing.T, args ...string) string {
	t.Helper()
	out, err := runErr(args...)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func runErr(args ...string) (string, error) {
	cmd := exec.Command(args[0], args[1:]...)
	cmd.WaitDelay = time.Second
	done := time.AfterFunc(20*time.Second, func() { cmd.Process.Kill() })
	defer done.Stop()
	out, err := cmd.CombinedOutput()
	if err != nil {
		return string(out), fmt.Errorf("%s: %v: %s", strings.Join(args, " "), err, out)
	}
	return string(out), nil
}

// netns is a network namespace of a test, deleted when the test ends.
type netns struct {
	name string
	fd   int
}

func newNetns(t *testing.T, name string) *netns {
	t.Helper()
	runErr("ip", "netns", "del", name) // a leftover of a killed run
	run(t, "ip", "netns", "add", name)
	n := &netns{name: name, fd: -1}
	t.Cleanup(func() {
		if n.fd >= 0 {
			unix.Close(n.fd)
		}
		if out, err := runErr("ip", "netns", "del", name); err != nil {
			t.Errorf("delete netns %s: %v %s", name, err, out)
		}
	})
	fd, err := unix.Open("/run/netns/"+name, unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	n.fd = fd
	run(t, "ip", "-n", name, "link", "set", "lo", "up")
	return n
}

// ip runs ip -n NS args.
func (n *netns) ip(t *testing.T, args ...string) string {
	t.Helper()
	return run(t, append([]string{"ip", "-n", n.name}, args...)...)
}

// exec runs a command in the namespace.
func (n *netns) exec(t *testing.T, args ...string) string {
	t.Helper()
	return run(t, append([]string{"ip", "netns", "exec", n.name}, args...)...)
}

// do runs f on a thread in the namespace: sockets it opens stay there.
func (n *netns) do(f func() error) error {
	errc := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		orig, err := unix.Open("/proc/thread-self/ns/net", unix.O_RDONLY|unix.O_CLOEXEC, 0)
		if err != nil {
			runtime.UnlockOSThread()
			errc <- err
			return
		}
		defer unix.Close(orig)
		if err := unix.Setns(n.fd, unix.CLONE_NEWNET); err != nil {
			runtime.UnlockOSThread()
			errc <- fmt.Errorf("setns %s: %w", n.name, err)
			return
		}
		ferr := f()
		if err := unix.Setns(orig, unix.CLONE_NEWNET); err != nil {
			// The thread stays locked and dies with this goroutine.
			errc <- fmt.Errorf("setns back: %w", err)
			return
		}
		runtime.UnlockOSThread()
		errc <- ferr
	}()
	return <-errc
}
