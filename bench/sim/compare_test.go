package sim

import (
	"math"
	"slices"
	"strings"
	"testing"

	"vhpc/scheduler/core"
)

func TestJitter(t *testing.T) {
	trace := make([]TraceJob, 10000)
	for i := range trace {
		trace[i] = TraceJob{ID: int64(i + 1), Submit: int64(i), Run: 1 + int64(i%3), ReqTime: -1}
	}
	trace[0].ReqTime = trace[0].Run // an exact request moves with the run time
	orig := slices.Clone(trace)
	tests := []struct {
		name      string
		frac      float64
		delta     int64
		seed      uint64
		unchanged bool
	}{
		{"seed 0 is the trace itself", 0.05, 1, 0, true},
		{"no fraction changes nothing", 0, 1, 7, true},
		{"5% by one second", 0.05, 1, 1, false},
		{"half by ten seconds", 0.5, 10, 2, false},
		{"every job", 1, 1, 3, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got := Jitter(trace, tc.frac, tc.delta, tc.seed)
			if !slices.Equal(trace, orig) {
				t.Fatal("Jitter modified its input")
			}
			if again := Jitter(trace, tc.frac, tc.delta, tc.seed); !slices.Equal(got, again) {
				t.Fatal("same seed, different copies")
			}
			moved := 0
			for i := range got {
				g, o := got[i], trace[i]
				if g.Run == o.Run {
					continue
				}
				moved++
				if g.Run != max(o.Run+tc.delta, 1) && g.Run != max(o.Run-tc.delta, 1) {
					t.Fatalf("job %d: run %d -> %d, want ±%d (at least 1)", i, o.Run, g.Run, tc.delta)
				}
				if g.Submit != o.Submit || g.ID != o.ID || g.Procs != o.Procs {
					t.Fatalf("job %d: more than the run time changed: %+v -> %+v", i, o, g)
				}
				if o.ReqTime == o.Run && g.ReqTime != g.Run {
					t.Fatalf("job %d: exact request %d not moved with the run time %d", i, g.ReqTime, g.Run)
				}
			}
			if tc.unchanged {
				if moved != 0 {
					t.Fatalf("%d jobs moved, want none", moved)
				}
				return
			}
			// Jobs of 1 s moved down stay at 1 s: about a sixth of the
			// draws for delta 1 with runs 1..3.
			want := tc.frac * float64(len(trace))
			if f := float64(moved); f < 0.7*want || f > 1.1*want {
				t.Fatalf("%d jobs moved, want about %.0f", moved, want)
			}
			if tc.seed != 0 && slices.Equal(got, Jitter(trace, tc.frac, tc.delta, tc.seed+100)) {
				t.Fatal("different seeds gave the same copy")
			}
		})
	}
}

func TestCompare(t *testing.T) {
	trace, _, err := ReadSWF(strings.NewReader(tiny))
	if err != nil {
		t.Fatal(err)
	}
	cfg := core.DefaultConfig()
	base := core.DefaultConfig()
	base.Policy = core.PolicyFCFSEasy
	o := CompareOptions{Options: Options{Nodes: 4, CPUsPerNode: 1, Estimates: EstRuntime, Config: cfg},
		Copies: 3, Frac: 1, Delta: 1, Workers: 2}
	t.Run("policy alone", func(t *testing.T) {
		c := Compare(trace, o)
		if len(c.Replicates) != 4 || c.Baseline != nil || c.Paired != nil {
			t.Fatalf("comparison %+v", c)
		}
		for i, r := range c.Replicates {
			want := Run(Jitter(trace, 1, 1, uint64(i)), o.Options)
			if r.Seed != uint64(i) || r.Policy.AvgBSLD != want.AvgBSLD || r.Policy.Utilization != want.Utilization {
				t.Fatalf("copy %d: %+v, want the replay of Jitter seed %d: %+v", i, r, i, want)
			}
		}
		var sum float64
		for _, r := range c.Replicates {
			sum += r.Policy.AvgBSLD
		}
		if s := c.Policy.AvgBSLD; math.Abs(s.Mean-sum/4) > 1e-9 || s.Min > s.Mean || s.Max < s.Mean {
			t.Fatalf("bsld summary %+v, sum %v", s, sum)
		}
	})
	t.Run("with a baseline", func(t *testing.T) {
		o := o
		o.Baseline = &base
		c := Compare(trace, o)
		if c.Baseline == nil || c.Paired == nil {
			t.Fatalf("no baseline in %+v", c)
		}
		no := 0
		for _, r := range c.Replicates {
			if r.Baseline == nil || r.Baseline.Policy != core.PolicyFCFSEasy || r.Policy.Policy != core.PolicyDefault {
				t.Fatalf("copy %d: %+v", r.Seed, r)
			}
			if r.Policy.Utilization >= r.Baseline.Utilization {
				no++
			}
		}
		if c.Paired.UtilNoLower != no {
			t.Fatalf("util no lower in %d copies, counted %d", c.Paired.UtilNoLower, no)
		}
	})
}

func TestStat(t *testing.T) {
	tests := []struct {
		name string
		xs   []float64
		want Stat
	}{
		{"empty", nil, Stat{}},
		{"one value has no spread", []float64{3}, Stat{Mean: 3, Min: 3, Max: 3}},
		{"sample sd", []float64{2, 4, 4, 4, 5, 5, 7, 9}, Stat{Mean: 5, SD: math.Sqrt(32.0 / 7), Min: 2, Max: 9}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got := stat(tc.xs)
			if math.Abs(got.Mean-tc.want.Mean) > 1e-12 || math.Abs(got.SD-tc.want.SD) > 1e-12 || got.Min != tc.want.Min || got.Max != tc.want.Max {
				t.Fatalf("stat(%v) = %+v, want %+v", tc.xs, got, tc.want)
			}
		})
	}
}
