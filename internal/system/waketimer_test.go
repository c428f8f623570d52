package system

import (
	"testing"
	"time"
)

func TestWakeTimer(t *testing.T) {
	w, err := NewWakeTimer()
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	expect := func(what string, fire bool, within time.Duration) {
		t.Helper()
		select {
		case <-w.C:
			if !fire {
				t.Errorf("%s: the timer fired", what)
			}
		case <-time.After(within):
			if fire {
				t.Errorf("%s: no expiry within %v", what, within)
			}
		}
	}
	start := time.Now()
	w.Reset(30 * time.Millisecond)
	expect("armed for 30ms", true, 2*time.Second)
	if d := time.Since(start); d < 30*time.Millisecond {
		t.Errorf("fired after %v, before its 30ms", d)
	}
	w.Reset(time.Hour)
	w.Reset(10 * time.Millisecond)
	expect("re-armed from 1h to 10ms", true, 2*time.Second)
	w.Reset(50 * time.Millisecond)
	w.Reset(time.Hour)
	expect("re-armed from 50ms to 1h", false, 200*time.Millisecond)
	w.Reset(0)
	expect("armed for 0 (at once)", true, 2*time.Second)
	w.Reset(-time.Second)
	expect("armed for the past (at once)", true, 2*time.Second)
}
