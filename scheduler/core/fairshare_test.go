package core_test

import (
	"math"
	"testing"
	"time"

	"vhpc/bench/sim"
	"vhpc/scheduler/core"
)

func TestDecayUsage(t *testing.T) {
	tests := []struct {
		name     string
		elapsed  time.Duration
		halfLife time.Duration
		want     float64
	}{
		{"one half-life halves", time.Hour, time.Hour, 50},
		{"two half-lives quarter", 2 * time.Hour, time.Hour, 25},
		{"no time no decay", 0, time.Hour, 100},
		{"no half-life no decay", time.Hour, 0, 100},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got := core.DecayUsage(map[string]float64{"a": 100}, tc.elapsed, tc.halfLife)["a"]
			if math.Abs(got-tc.want) > 1e-9 {
				t.Fatalf("got %v, want %v", got, tc.want)
			}
		})
	}
}

// TestFairShareConverges runs two departments with shares 2:1 and an
// endless backlog of identical jobs submitted at the same time (so age and
// size tie) and checks that the delivered core-seconds approach 2:1.
func TestFairShareConverges(t *testing.T) {
	var trace []sim.TraceJob
	for i := range 3000 {
		trace = append(trace, sim.TraceJob{ID: int64(i), Submit: 0, Run: 100, Procs: 1, ReqTime: -1, User: int64(i % 2), Group: int64(1 + i%2)})
	}
	cfg := core.DefaultConfig()
	cfg.Shares = map[string]float64{"g1": 2, "g2": 1}
	cfg.HalfLife = 2000 * time.Second
	res := sim.Run(trace, sim.Options{Nodes: 10, CPUsPerNode: 1, Estimates: sim.EstRuntime, Config: cfg, Until: 20000})
	g1, g2 := res.Dept["g1"], res.Dept["g2"]
	frac := g1 / (g1 + g2)
	t.Logf("delivered core-seconds: g1 %.0f g2 %.0f, g1 fraction %.3f (target 0.667)", g1, g2, frac)
	if math.Abs(frac-2.0/3) > 0.03 {
		t.Fatalf("g1 got %.3f of the machine, want 0.667 +- 0.03", frac)
	}
}
