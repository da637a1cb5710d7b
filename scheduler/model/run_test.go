package model

import (
	"slices"
	"testing"
	"time"
)

// TestWithRun: a run is appended, the oldest fall off past keep, and the
// history passed in is never changed (the store shares it between
// snapshots).
func TestWithRun(t *testing.T) {
	r := func(m int) Run { return Run{Runtime: time.Duration(m) * time.Minute} }
	tests := []struct {
		name string
		runs []Run
		keep int
		want []Run
	}{
		{"the first run", nil, 2, []Run{r(1)}},
		{"below keep: appended", []Run{r(3)}, 2, []Run{r(3), r(1)}},
		{"at keep: the oldest falls off", []Run{r(3), r(4)}, 2, []Run{r(4), r(1)}},
		{"keep 0 keeps every run", []Run{r(3), r(4)}, 0, []Run{r(3), r(4), r(1)}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			before := slices.Clone(tc.runs)
			shared := slices.Grow(tc.runs, 4) // spare capacity an in-place append would write into
			got := WithRun(shared, r(1), tc.keep)
			if !slices.Equal(got, tc.want) {
				t.Fatalf("got %v, want %v", got, tc.want)
			}
			if spare := shared[:len(shared)+1][len(shared)]; !slices.Equal(shared, before) || spare != (Run{}) {
				t.Fatalf("the history passed in changed: %v, and %v written past its end", shared, spare)
			}
		})
	}
}
