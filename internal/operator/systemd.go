package operator

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"

	"golang.org/x/sys/unix"
)

// notifier speaks systemd's notify protocol (sd_notify(3)) without
// libsystemd: one datagram per message to the unix socket in
// $NOTIFY_SOCKET, a path or an abstract name starting with '@' (Go maps
// '@' to the abstract namespace). A nil *notifier — no NOTIFY_SOCKET — is
// valid: every method does nothing, so callers need no checks.
type notifier struct {
	socket   string
	watchdog time.Duration // ping period, half of $WATCHDOG_USEC; 0: off
	log      *slog.Logger

	mu      sync.Mutex
	latest  string        // last posted status
	posted  chan struct{} // a new status is waiting for Run
	failing bool          // the last send failed (logged once until one works)
}

// NewNotifier reads the environment systemd set for this process. It
// returns nil when not started by systemd with Type=notify, or when
// NOTIFY_SOCKET is of a kind not supported here (vsock), which is logged.
func NewNotifier(log *slog.Logger) *notifier {
	return notifierFromEnv(os.Getenv, os.Getpid(), log)
}

func notifierFromEnv(getenv func(string) string, pid int, log *slog.Logger) *notifier {
	socket := getenv("NOTIFY_SOCKET")
	if socket == "" {
		return nil
	}
	if !strings.HasPrefix(socket, "/") && !strings.HasPrefix(socket, "@") {
		log.Warn("NOTIFY_SOCKET is neither a path nor an abstract socket: systemd notifications are off", "notify_socket", socket)
		return nil
	}
	n := &notifier{socket: socket, log: log, posted: make(chan struct{}, 1)}
	n.watchdog = watchdogPeriod(getenv("WATCHDOG_USEC"), getenv("WATCHDOG_PID"), pid, log)
	return n
}

// watchdogPeriod is how often to ping: half the watchdog timeout, as
// sd_watchdog_enabled(3) recommends, or 0 when the watchdog is off or meant
// for another process.
func watchdogPeriod(usec, wpid string, pid int, log *slog.Logger) time.Duration {
	if usec == "" {
		return 0
	}
	if wpid != "" && wpid != strconv.Itoa(pid) {
		return 0
	}
	v, err := strconv.ParseUint(usec, 10, 63)
	if err != nil || v == 0 {
		log.Warn("WATCHDOG_USEC is not a positive number: the systemd watchdog is not pinged", "watchdog_usec", usec)
		return 0
	}
	return time.Duration(v) * time.Microsecond / 2
}

// send writes one notification datagram. It never blocks (MSG_DONTWAIT):
// a stuck systemd must not stall the daemon. A raw socket rather than
// net.DialUnix keeps net's dialer and resolver out of the static binary.
func (n *notifier) send(msg string) error {
	fd, err := unix.Socket(unix.AF_UNIX, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return fmt.Errorf("systemd notify socket %s: %w", n.socket, err)
	}
	defer unix.Close(fd)
	// x/sys/unix maps a leading '@' to the abstract namespace.
	if err := unix.Sendto(fd, []byte(msg), unix.MSG_DONTWAIT|unix.MSG_NOSIGNAL, &unix.SockaddrUnix{Name: n.socket}); err != nil {
		return fmt.Errorf("systemd notify socket %s: %w", n.socket, err)
	}
	return nil
}

// Ready tells systemd that start-up is complete (Type=notify).
func (n *notifier) Ready() error {
	if n == nil {
		return nil
	}
	return n.send("READY=1")
}

// status sets the line systemctl status shows; newlines would start new
// assignments in the protocol, so they become "; ".
func (n *notifier) status(s string) error {
	if n == nil {
		return nil
	}
	return n.send(statusAssignment(s))
}

func statusAssignment(s string) string {
	s = strings.ReplaceAll(strings.TrimRight(s, "\n"), "\r", "")
	return "STATUS=" + strings.ReplaceAll(s, "\n", "; ")
}

// Reloading tells systemd that a reload has begun; READY=1 (from the
// re-executed program, in the same process) ends it. systemd wants the
// monotonic clock with it (sd_notify(3)).
func (n *notifier) Reloading() error {
	if n == nil {
		return nil
	}
	var ts unix.Timespec
	if err := unix.ClockGettime(unix.CLOCK_MONOTONIC, &ts); err != nil {
		return fmt.Errorf("read the monotonic clock: %w", err)
	}
	return n.send(fmt.Sprintf("RELOADING=1\nMONOTONIC_USEC=%d", ts.Nano()/1000))
}

// Stopping tells systemd that the shutdown has begun.
func (n *notifier) Stopping() error {
	if n == nil {
		return nil
	}
	return n.send("STOPPING=1")
}

// Post hands a status to Run without blocking: for observers, which must
// never block. Only the latest posted status is sent.
func (n *notifier) Post(s string) {
	if n == nil {
		return
	}
	n.mu.Lock()
	n.latest = s
	n.mu.Unlock()
	select {
	case n.posted <- struct{}{}:
	default:
	}
}

// Run pings the watchdog (WATCHDOG=1 every half of $WATCHDOG_USEC, the
// first at once) and sends posted statuses, until ctx ends; then it returns
// nil. It runs, doing nothing, when there is no notifier or no watchdog. A
// failed send is logged (once until one succeeds) and retried at the next
// tick: a daemon holding addresses must not exit because systemd's socket
// hiccupped — if the pings stay away, systemd restarts it anyway.
func (n *notifier) Run(ctx context.Context) error {
	if n == nil {
		<-ctx.Done()
		return nil
	}
	var tick <-chan time.Time
	if n.watchdog > 0 {
		ticker := time.NewTicker(n.watchdog)
		defer ticker.Stop()
		tick = ticker.C
		n.report(n.send("WATCHDOG=1"))
	}
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-tick:
			n.report(n.send("WATCHDOG=1"))
		case <-n.posted:
			n.mu.Lock()
			s := n.latest
			n.mu.Unlock()
			n.report(n.status(s))
		}
	}
}

func (n *notifier) report(err error) {
	n.mu.Lock()
	defer n.mu.Unlock()
	switch {
	case err != nil && !n.failing:
		n.log.Warn("systemd notification failed", "err", err)
		n.failing = true
	case err == nil && n.failing:
		n.log.Info("systemd notifications work again")
		n.failing = false
	}
}
