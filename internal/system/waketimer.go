package system

import (
	"fmt"
	"os"
	"syscall"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"
)

// WakeTimer is the interface loop's one timer. A Go timer wakes two threads
// per expiry on an idle process: the netpoller's and sysmon, which sleeps
// only until the next timer and then polls for a while; and every system
// call made through syscall.Syscall wakes sysmon from its deep sleep again.
// A timerfd read through the netpoller wakes one thread: with no Go timer
// pending, sysmon sleeps for a minute. So the loop's timer is a timerfd,
// armed and read with raw system calls (which the runtime does not track:
// they never block, the descriptor is non-blocking), and its expiries come
// to the loop on C.
type WakeTimer struct {
	fd   int
	file *os.File // the timerfd in the netpoller
	rc   syscall.RawConn
	C    chan struct{}
}

// NewWakeTimer is a timer that has not been armed.
func NewWakeTimer() (*WakeTimer, error) {
	fd, err := unix.TimerfdCreate(unix.CLOCK_MONOTONIC, unix.TFD_NONBLOCK|unix.TFD_CLOEXEC)
	if err != nil {
		return nil, fmt.Errorf("create timerfd: %w", err)
	}
	file := os.NewFile(uintptr(fd), "timerfd")
	rc, err := file.SyscallConn()
	if err != nil {
		_ = file.Close()
		return nil, fmt.Errorf("timerfd: %w", err)
	}
	t := &WakeTimer{fd: fd, file: file, rc: rc, C: make(chan struct{}, 1)}
	go t.run()
	return t, nil
}

// run passes expiries to C until the timer is closed.
func (t *WakeTimer) run() {
	var buf [8]byte
	for {
		// Wait first: the last expiry was read, and a new one marks the
		// descriptor ready in the netpoller even if it came before the wait.
		waited := false
		err := t.rc.Read(func(fd uintptr) bool {
			if !waited {
				waited = true
				return false
			}
			_, _, e := unix.RawSyscall(unix.SYS_READ, fd, uintptr(unsafe.Pointer(&buf[0])), uintptr(len(buf)))
			return e != unix.EAGAIN
		})
		if err != nil {
			return // closed
		}
		select {
		case t.C <- struct{}{}:
		default: // one expiry already waiting is enough
		}
	}
}

// Reset arms the timer to expire after d (at once if d <= 0), replacing any
// earlier setting. An expiry already passed to C stays there: the loop
// must tolerate a wake-up with nothing due.
func (t *WakeTimer) Reset(d time.Duration) {
	if d <= 0 {
		d = 1 // zero would disarm it
	}
	spec := unix.ItimerSpec{Value: unix.NsecToTimespec(int64(d))}
	// Cannot fail with a valid descriptor and value.
	_, _, _ = unix.RawSyscall6(unix.SYS_TIMERFD_SETTIME, uintptr(t.fd), 0, uintptr(unsafe.Pointer(&spec)), 0, 0, 0)
}

// Close stops the timer and its reader.
func (t *WakeTimer) Close() error { return t.file.Close() }
