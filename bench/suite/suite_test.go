package suite

import (
	"math"
	"strings"
	"testing"
	"time"

	"vhpc/bench/sim"
	"vhpc/scheduler/core"
)

func TestRunFamily(t *testing.T) {
	f := Family{Sizes: []int{16, 32}, Loads: []float64{0.7}, Seeds: 2, FirstSeed: 1, Jobs: []int{80}}
	traces, err := f.Traces()
	if err != nil {
		t.Fatal(err)
	}
	if len(traces) != 4 || traces[0].Name != "n16-l0.70-s1" || traces[3].Name != "n32-l0.70-s2" {
		t.Fatalf("traces %v", names(traces))
	}
	calls := 0
	rep := Run(traces, Options{Policy: sim.BaselineConfig(core.PolicyFCFSEasy), Estimates: sim.EstRequest, Workers: 2,
		Progress: func(done, total int) { calls++ }})
	if calls != 12 || len(rep.Rows) != 4 {
		t.Fatalf("%d progress calls, %d rows", calls, len(rep.Rows))
	}
	// The policy under test is fcfs-easy itself: every ratio is 1.
	s := rep.Summary
	if math.Abs(s.GeoBSLDRatio-1) > 1e-12 || s.MinUtilDiff != 0 || s.MaxWaitRatio != 1 {
		t.Fatalf("fcfs-easy against itself: %+v", s)
	}
	if m := DefaultGoals.Misses(s); len(m) != 1 || !strings.Contains(m[0], "geomean bsld ratio 1.000") {
		t.Fatalf("misses %v", m)
	}
}

func TestGoals(t *testing.T) {
	tests := []struct {
		name string
		s    Summary
		miss int
	}{
		{"all met", Summary{GeoBSLDRatio: 0.4, MinUtilDiff: -0.005, MaxWaitRatio: 1.4}, 0},
		{"utilization lost", Summary{GeoBSLDRatio: 0.4, MinUtilDiff: -0.02, MaxWaitRatio: 1}, 1},
		{"everything missed", Summary{GeoBSLDRatio: 0.6, MinUtilDiff: -0.02, MaxWaitRatio: 2}, 3},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if m := DefaultGoals.Misses(tc.s); len(m) != tc.miss {
				t.Fatalf("misses %v, want %d", m, tc.miss)
			}
		})
	}
}

func TestWaitRatio(t *testing.T) {
	r := Row{Policy: sim.Result{MaxWait: 0}, FCFSEasy: sim.Result{MaxWait: 30}}
	if r.WaitRatio() != 1 {
		t.Fatalf("two short waits compare as %v, want 1", r.WaitRatio())
	}
	r.Policy.MaxWait, r.FCFSEasy.MaxWait = 300, 200
	if r.WaitRatio() != 1.5 {
		t.Fatalf("ratio %v, want 1.5", r.WaitRatio())
	}
}

func names(ts []Trace) []string {
	var out []string
	for _, t := range ts {
		out = append(out, t.Name)
	}
	return out
}

// TestCacheIsPerBuild: a replay cached by one build is reused by the same
// build, and never by another one (Options.Build), nor for another
// policy.
func TestCacheIsPerBuild(t *testing.T) {
	traces, err := Family{Sizes: []int{16}, Loads: []float64{0.7}, Seeds: 1, FirstSeed: 1, Jobs: []int{40}}.Traces()
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	opts := func(build string, cfg core.Config) Options {
		return Options{Policy: cfg, Estimates: sim.EstRequest, Workers: 1, CacheDir: dir, Build: build}
	}
	def := core.DefaultConfig()
	first := Run(traces, opts("a", def))
	// Plant a result no replay gives under build "a"'s name for the policy.
	path := opts("a", def).cachePath(traces[0], sim.Options{Nodes: traces[0].Nodes, CPUsPerNode: 1, Config: def, Estimates: sim.EstRequest})
	planted := first.Rows[0].Policy
	planted.AvgBSLD = 12345
	writeCache(path, planted)
	tests := []struct {
		name   string
		build  string
		cfg    core.Config
		reused bool
	}{
		{"the same build reuses its result", "a", def, true},
		{"another build replays again", "b", def, false},
		{"another policy replays again", "a", withStarvationAge(def, time.Hour), false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got := Run(traces, opts(tc.build, tc.cfg)).Rows[0].Policy.AvgBSLD
			if (got == 12345) != tc.reused {
				t.Fatalf("policy bsld %v: reused %v, want %v", got, got == 12345, tc.reused)
			}
		})
	}
}

func withStarvationAge(c core.Config, d time.Duration) core.Config { c.StarvationAge = d; return c }
