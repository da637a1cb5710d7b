package sim_test

import (
	"fmt"
	"slices"
	"testing"

	"vhpc/bench/gen"
	"vhpc/bench/sim"
	"vhpc/scheduler/core"
)

// TestReplayPlannerMatchesRebuild replays generated traces with every
// policy and estimate mode twice, with the core.Planner the replay uses
// and with core.Schedule at every event (Options.Rebuild): every job must
// start at the same second. Machines: one-CPU nodes (the suite's), and
// four-CPU nodes with two GPUs (gangs share nodes, NUMA-free placement).
func TestReplayPlannerMatchesRebuild(t *testing.T) {
	machines := []struct {
		nodes, cpus, gpus int
		seed              uint64
	}{
		{64, 1, 0, 3},
		{32, 4, 2, 4},
	}
	for _, m := range machines {
		trace, err := gen.Generate(gen.Params{Nodes: m.nodes, Jobs: 300, Load: 1.0, Seed: m.seed})
		if err != nil {
			t.Fatal(err)
		}
		for _, policy := range core.Policies() {
			for _, est := range []string{sim.EstRequest, sim.EstPredicted, sim.EstRuntime} {
				t.Run(fmt.Sprintf("%dx%dcpu-%s-%s", m.nodes, m.cpus, policy, est), func(t *testing.T) {
					cfg := core.DefaultConfig()
					cfg.Policy = policy
					o := sim.Options{Nodes: m.nodes, CPUsPerNode: m.cpus, GPUsPerNode: m.gpus, Estimates: est, Config: cfg}
					fast := sim.Run(trace, o)
					o.Rebuild = true
					slow := sim.Run(trace, o)
					if fast.Jobs == 0 || !slices.Equal(fast.Starts, slow.Starts) {
						t.Fatalf("planner replay started %d jobs, rebuild %d; start times differ", fast.Jobs, slow.Jobs)
					}
				})
			}
		}
	}
}
