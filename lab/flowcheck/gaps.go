package main

import (
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"os"
	"slices"
)

// gaps reads a client's -json report and sums up what the clients of one
// responder saw against the others, for the bench:
//
//	flowcheck gaps -of h2 < report.json
//
// prints "of=N of_worst_ms=W of_median_ms=M others=N others_worst_ms=W
// duplicates=D broken=B": the sources that h2 answered at least once, their
// worst and median longest UDP gap; the other sources' worst gap; the UDP
// duplicates and the broken long connections of all sources.
func gaps(args []string, stdin io.Reader, stdout io.Writer) int {
	fs := flag.NewFlagSet("flowcheck gaps", flag.ContinueOnError)
	of := fs.String("of", "", "the responder whose sources are summed up apart (required)")
	if err := fs.Parse(args); err != nil || *of == "" {
		fmt.Fprintln(os.Stderr, "flowcheck gaps: need -of NAME")
		return 2
	}
	var rep report
	if err := json.NewDecoder(stdin).Decode(&rep); err != nil {
		fmt.Fprintf(os.Stderr, "flowcheck gaps: %v\n", err)
		return 1
	}
	var mine, others []int64
	dups, broken := rep.UDP.Duplicates, rep.Long.Broken
	for _, s := range rep.BySource {
		if s.UDPResponders[*of] > 0 {
			mine = append(mine, s.UDPLongestGapMS)
		} else {
			others = append(others, s.UDPLongestGapMS)
		}
	}
	fmt.Fprintf(stdout, "of=%d of_worst_ms=%d of_median_ms=%d others=%d others_worst_ms=%d duplicates=%d broken=%d\n",
		len(mine), worst(mine), median(mine), len(others), worst(others), dups, broken)
	return 0
}

func worst(v []int64) int64 {
	if len(v) == 0 {
		return 0
	}
	return slices.Max(v)
}

func median(v []int64) int64 {
	if len(v) == 0 {
		return 0
	}
	s := slices.Sorted(slices.Values(v))
	return s[len(s)/2]
}
