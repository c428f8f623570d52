package main

// The client's report: what each source saw, summed up per source and in all.

import (
	"fmt"
	"maps"
	"slices"
	"sort"
	"strings"
	"time"
)

type report struct {
	Target     string `json:"target"`
	EveryMS    int64  `json:"every_ms"`
	DurationMS int64  `json:"duration_ms"`
	Sources    int    `json:"sources"`
	UDP        struct {
		Sent       int `json:"sent"`
		Answered   int `json:"answered"`
		Missing    int `json:"missing"`
		Duplicates int `json:"duplicates"`
	} `json:"udp"`
	TCP struct {
		Tried  int `json:"tried"`
		OK     int `json:"ok"`
		Failed int `json:"failed"`
	} `json:"tcp"`
	Long struct {
		Opened int `json:"opened"`
		Broken int `json:"broken"`
	} `json:"long"`
	BySource map[string]*sourceReport `json:"by_source"`
}

type sourceReport struct {
	UDPResponders        map[string]int `json:"udp_responders"`
	UDPMissing           int            `json:"udp_missing"`
	UDPDuplicates        int            `json:"udp_duplicates"`
	UDPDupResponders     map[string]int `json:"udp_duplicate_responders"`
	UDPLongestGapMS      int64          `json:"udp_longest_gap_ms"`
	UDPLongestGapStartMS int64          `json:"udp_longest_gap_start_ms"`
	TCPResponders        map[string]int `json:"tcp_responders"`
	TCPFailed            int            `json:"tcp_failed"`
	TCPFailures          map[string]int `json:"tcp_failures"` // by kind
	TCPLongestGapMS      int64          `json:"tcp_longest_gap_ms"`
	TCPLongestGapStartMS int64          `json:"tcp_longest_gap_start_ms"`
	LongOpened           bool           `json:"long_opened"`
	LongResponders       map[string]int `json:"long_responders"`
	LongChanges          int            `json:"long_changes"`
	LongError            string         `json:"long_error"` // kind; "" while the connection lived to the end
	LongErrorText        string         `json:"long_error_text,omitempty"`
	LongBrokenAtMS       int64          `json:"long_broken_at_ms"`
	LongLongestGapMS     int64          `json:"long_longest_gap_ms"`
}

// summarize adds this source's counts to rep and returns its own report.
func (s *source) summarize(rep *report) *sourceReport {
	s.mu.Lock()
	defer s.mu.Unlock()
	sr := &sourceReport{UDPResponders: map[string]int{}, UDPDupResponders: s.dups, TCPResponders: map[string]int{},
		TCPFailures: map[string]int{}, LongResponders: map[string]int{}, LongOpened: s.longOpened,
		LongError: s.longErr, LongErrorText: s.longErrText, LongBrokenAtMS: ms(s.longBrokenAt)}
	var udp, tcp, long []time.Duration // the send times of answered requests
	for _, r := range s.udp {
		if r.responder != "" && r.reply-r.sent <= s.cfg.Timeout {
			sr.UDPResponders[r.responder]++
			udp = append(udp, r.sent)
		}
	}
	for _, n := range s.dups {
		sr.UDPDuplicates += n
	}
	for _, r := range s.tcp {
		if r.done && r.fail != "" {
			sr.TCPFailures[r.fail]++
			sr.TCPFailed++
		} else if r.done {
			sr.TCPResponders[r.responder]++
			tcp = append(tcp, r.sent)
		}
	}
	for i, r := range s.long {
		sr.LongResponders[r.responder]++
		if i > 0 && r.responder != s.long[i-1].responder {
			sr.LongChanges++
		}
		long = append(long, r.sent)
	}
	sr.UDPMissing = len(s.udp) - len(udp)
	sr.UDPLongestGapMS, sr.UDPLongestGapStartMS = longestGap(udp, s.end)
	sr.TCPLongestGapMS, sr.TCPLongestGapStartMS = longestGap(tcp, s.end)
	if s.cfg.Long {
		sr.LongLongestGapMS, _ = longestGap(long, s.end)
	}
	rep.UDP.Sent += len(s.udp)
	rep.UDP.Answered += len(udp)
	rep.UDP.Missing += sr.UDPMissing
	rep.UDP.Duplicates += sr.UDPDuplicates
	rep.TCP.Tried += len(tcp) + sr.TCPFailed
	rep.TCP.OK += len(tcp)
	rep.TCP.Failed += sr.TCPFailed
	if s.longOpened {
		rep.Long.Opened++
		if s.longErr != "" {
			rep.Long.Broken++
		}
	}
	return sr
}

// longestGap is the longest time between consecutive answered send times,
// the start (0) and end counting as answered, and where it began (ms).
func longestGap(sends []time.Duration, end time.Duration) (gapMS, startMS int64) {
	sort.Slice(sends, func(i, j int) bool { return sends[i] < sends[j] })
	var prev, gap, from time.Duration
	for _, at := range append(sends, end) {
		if at-prev > gap {
			gap, from = at-prev, prev
		}
		prev = at
	}
	return ms(gap), ms(from)
}

func ms(d time.Duration) int64 { return d.Round(time.Millisecond).Milliseconds() }

func (r *report) text() string {
	var b strings.Builder
	fmt.Fprintf(&b, "flowcheck: %d sources to %s over %d ms\n  udp:  %d sent, %d answered, %d missing, %d duplicates\n",
		r.Sources, r.Target, r.DurationMS, r.UDP.Sent, r.UDP.Answered, r.UDP.Missing, r.UDP.Duplicates)
	fmt.Fprintf(&b, "  tcp:  %d tried, %d ok, %d failed\n  long: %d opened, %d broken\n",
		r.TCP.Tried, r.TCP.OK, r.TCP.Failed, r.Long.Opened, r.Long.Broken)
	for _, a := range slices.Sorted(maps.Keys(r.BySource)) {
		s := r.BySource[a]
		fmt.Fprintf(&b, "  %-15s udp %v miss %d dup %d gap %d ms | tcp %v fail %d gap %d ms | long %v %s\n", a,
			s.UDPResponders, s.UDPMissing, s.UDPDuplicates, s.UDPLongestGapMS,
			s.TCPResponders, s.TCPFailed, s.TCPLongestGapMS, s.LongResponders, s.LongError)
	}
	return b.String()
}
