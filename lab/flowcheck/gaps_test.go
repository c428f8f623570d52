package main

import (
	"bytes"
	"strings"
	"testing"
)

// gaps sums up one responder's sources apart from the others.
func TestGaps(t *testing.T) {
	in := `{"udp":{"duplicates":2},"long":{"broken":1},"by_source":{
		"192.0.2.130":{"udp_responders":{"h2":10,"h1":5},"udp_longest_gap_ms":700},
		"192.0.2.131":{"udp_responders":{"h2":10,"h3":5},"udp_longest_gap_ms":650},
		"192.0.2.132":{"udp_responders":{"h2":10,"h3":5},"udp_longest_gap_ms":600},
		"192.0.2.133":{"udp_responders":{"h1":15},"udp_longest_gap_ms":20},
		"192.0.2.134":{"udp_responders":{"h3":15},"udp_longest_gap_ms":30}}}`
	var out bytes.Buffer
	if code := gaps([]string{"-of", "h2"}, strings.NewReader(in), &out); code != 0 {
		t.Fatalf("exit %d", code)
	}
	want := "of=3 of_worst_ms=700 of_median_ms=650 others=2 others_worst_ms=30 duplicates=2 broken=1\n"
	if out.String() != want {
		t.Fatalf("got %q, want %q", out.String(), want)
	}
}
