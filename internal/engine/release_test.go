package engine

import (
	"slices"
	"testing"

	"floatip/internal/event"
	"floatip/internal/fiptest"
)

// addrRecorder is a Address that records its calls. The connection reset
// sits in Remove (system.WithConnReset, whose own tests check that it resets
// first), so every release path must remove the address through it.
type addrRecorder struct{ calls []string }

func (r *addrRecorder) Add() error    { r.calls = append(r.calls, "add"); return nil }
func (r *addrRecorder) Remove() error { r.calls = append(r.calls, "remove"); return nil }

// Every release path of the machine removes the address through Remove,
// and so resets its connections first: shutdown (SIGTERM), a failed health
// check, carrier loss.
func TestMachineReleasesThroughRemove(t *testing.T) {
	for _, tc := range []struct {
		name    string
		release func(m *Machine)
	}{
		{"shutdown", func(m *Machine) { m.Shutdown(fiptest.T0.Add(ms(2000))) }},
		{"health check fails", func(m *Machine) { m.onEvent(EvUnhealthy, fiptest.T0.Add(ms(2000))) }},
		{"link down", func(m *Machine) { m.onEvent(EvLinkDown, fiptest.T0.Add(ms(2000))) }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			m, _ := newTestMachine(t, 100, "02:00:00:00:00:09")
			rec := &addrRecorder{}
			m.Address = rec
			advance(m, fiptest.T0, fiptest.T0.Add(ms(1000)), nil)
			if m.state != event.Active || !slices.Equal(rec.calls, []string{"add"}) {
				t.Fatalf("setup: state %v, calls %q", m.state, rec.calls)
			}
			rec.calls = nil
			tc.release(m)
			if want := []string{"remove"}; !slices.Equal(rec.calls, want) {
				t.Errorf("calls %q, want %q", rec.calls, want)
			}
		})
	}
}
