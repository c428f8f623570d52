package main

// Reload: SIGHUP (systemctl reload) re-executes the floatip binary file in
// the same process, so that a package upgrade takes effect without a
// failover. The addresses this node holds are kernel state and stay on the
// interface throughout; the old program tells the new one which VIPs it
// held (and whether its health check passed) in the environment, and the
// new one takes them back at once (engine.StartHeld). The command line and
// the environment are the old ones: a reload re-reads the binary only.

import (
	"encoding/json"
	"fmt"
	"log/slog"
	"net/netip"
	"os"
	"slices"
	"strings"
	"syscall"

	"floatip/internal/engine"

	"golang.org/x/sys/unix"
)

// handOverEnv carries the hand-over from a reloading daemon to the program
// it re-executes. It is internal: nothing else sets it, and the new program
// removes it at once, so that no hook or check inherits it.
const handOverEnv = "FLOATIP_HANDOVER"

// handOver is what a reloading daemon hands to the program it re-executes.
type handOver struct {
	Held    []netip.Addr `json:"held"`    // the VIPs it held (active)
	Healthy bool         `json:"healthy"` // its health check passed
}

// takeHandOver reads and removes the hand-over of the program this one
// replaced; nil when this program was started, not re-executed. A hand-over
// that cannot be read is logged and ignored: every VIP found on the
// interface is then checked as after a crash (adopted when nobody else
// holds it), which is slower but safe.
func takeHandOver(log *slog.Logger) *handOver {
	v, ok := os.LookupEnv(handOverEnv)
	if !ok {
		return nil
	}
	_ = os.Unsetenv(handOverEnv)
	var h handOver
	if err := json.Unmarshal([]byte(v), &h); err != nil {
		log.Warn("reload: cannot read what the previous program held; checking each VIP found on the interface instead", "err", err)
		return nil
	}
	return &h
}

// reexecutable is the path of the binary file to re-execute, checked now:
// a reload that could not re-execute is refused before anything is handed
// over. After a package replaced the file, this is the new one (the kernel
// names the running, deleted one "PATH (deleted)"; os.Executable drops
// that).
func reexecutable() (string, error) {
	exe, err := os.Executable()
	if err != nil {
		return "", fmt.Errorf("find the floatip binary: %w", err)
	}
	if err := unix.Access(exe, unix.X_OK); err != nil {
		return "", fmt.Errorf("%s: %w", exe, err)
	}
	return exe, nil
}

// reexec replaces this program with the binary file exe, with the same
// arguments and environment plus the hand-over. It returns only when the
// exec failed.
func reexec(exe string, h *handOver) error {
	b, err := json.Marshal(h)
	if err != nil {
		return fmt.Errorf("encode the hand-over: %w", err)
	}
	env := slices.DeleteFunc(os.Environ(), func(kv string) bool { return strings.HasPrefix(kv, handOverEnv+"=") })
	env = append(env, handOverEnv+"="+string(b))
	if err := syscall.Exec(exe, os.Args, env); err != nil {
		return fmt.Errorf("execute %s: %w", exe, err)
	}
	return nil // not reached: exec does not return on success
}

// startsOf says how each VIP's machine begins: held before a reload (and
// still on the interface), found on the interface at start, or neither.
func startsOf(vips []netip.Addr, onInterface map[netip.Addr]bool, h *handOver) map[netip.Addr]engine.Start {
	starts := make(map[netip.Addr]engine.Start, len(vips))
	for _, vip := range vips {
		switch {
		case onInterface[vip] && h != nil && slices.Contains(h.Held, vip):
			starts[vip] = engine.StartHeld
		case onInterface[vip]:
			starts[vip] = engine.StartAdopting
		default:
			starts[vip] = engine.StartStandby
		}
	}
	return starts
}
