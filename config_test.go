package main

import (
	"slices"
	"testing"
)

func TestExpandVIPRanges(t *testing.T) {
	got, err := expandVIPRanges([]string{"192.0.2.50-192.0.2.52", "198.51.100.7", "192.0.2.255-192.0.3.0"})
	want := []string{"192.0.2.50", "192.0.2.51", "192.0.2.52", "198.51.100.7", "192.0.2.255", "192.0.3.0"}
	if err != nil || !slices.Equal(got, want) {
		t.Errorf("got %v, %v; want %v", got, err, want)
	}
	for _, bad := range []string{"192.0.2.9-192.0.2.1", "192.0.2.1-x", "192.0.2.1-", "10.0.0.0-10.1.0.0"} {
		if _, err := expandVIPRanges([]string{bad}); err == nil {
			t.Errorf("%q accepted", bad)
		}
	}
}
