package sim_test

import (
	"fmt"
	"os"
	"slices"
	"testing"
	"time"

	"vhpc/bench/gen"
	"vhpc/bench/sim"
	"vhpc/scheduler/core"
)

// lublinTrace is the shared Lublin trace (256 one-CPU nodes), read-only.
const lublinTrace = "../../../shared/traces/lublin_256.swf"

// TestReplayPlannerMatchesRebuild replays traces with every policy and
// estimate mode twice, with the core.Planner the replay uses and with
// core.Schedule at every event (Options.Rebuild): every job must start at
// the same second. One-CPU machines of 128 to 4,096 nodes at loads 0.6 to
// 1.05 and the shared Lublin trace's first 400 jobs (all of it with
// VHPC_REPLAY_FULL=1) run on the Planner's one-slot pool, and every cycle
// must have stayed on it; four-CPU nodes with two GPUs (gangs share nodes)
// take the full path.
func TestReplayPlannerMatchesRebuild(t *testing.T) {
	type machine struct {
		name              string
		nodes, cpus, gpus int
		trace             []sim.TraceJob
	}
	var machines []machine
	for _, g := range []struct {
		nodes, cpus, gpus, jobs int
		load                    float64
		seed                    uint64
	}{
		{64, 1, 0, 300, 1.0, 3},
		{128, 1, 0, 200, 0.6, 5},
		{512, 1, 0, 150, 0.8, 6},
		{1024, 1, 0, 120, 0.95, 7},
		{4096, 1, 0, 60, 1.05, 8},
		{32, 4, 2, 300, 1.0, 4},
	} {
		trace, err := gen.Generate(gen.Params{Nodes: g.nodes, Jobs: g.jobs, Load: g.load, Seed: g.seed})
		if err != nil {
			t.Fatal(err)
		}
		machines = append(machines, machine{fmt.Sprintf("%dx%dcpu-l%.2f", g.nodes, g.cpus, g.load), g.nodes, g.cpus, g.gpus, trace})
	}
	if f, err := os.Open(lublinTrace); err == nil {
		trace, _, err := sim.ReadSWF(f)
		f.Close()
		if err != nil {
			t.Fatal(err)
		}
		if os.Getenv("VHPC_REPLAY_FULL") == "" {
			trace = trace[:min(len(trace), 400)]
		}
		machines = append(machines, machine{"lublin256", 256, 1, 0, trace})
	} else {
		t.Logf("no shared Lublin trace: %v", err)
	}
	for _, m := range machines {
		for _, policy := range core.Policies() {
			for _, est := range []string{sim.EstRequest, sim.EstPredicted, sim.EstRuntime} {
				t.Run(fmt.Sprintf("%s-%s-%s", m.name, policy, est), func(t *testing.T) {
					cfg := core.DefaultConfig()
					cfg.Policy = policy
					o := sim.Options{Nodes: m.nodes, CPUsPerNode: m.cpus, GPUsPerNode: m.gpus, Estimates: est, Config: cfg}
					fast := sim.Run(m.trace, o)
					o.Rebuild = true
					slow := sim.Run(m.trace, o)
					if fast.Jobs == 0 || !slices.Equal(fast.Starts, slow.Starts) {
						t.Fatalf("planner replay started %d jobs, rebuild %d; start times differ", fast.Jobs, slow.Jobs)
					}
					if pool := m.cpus == 1 && m.gpus == 0; pool != (fast.PoolCycles == fast.Cycles) || !pool && fast.PoolCycles > 0 {
						t.Fatalf("%d of %d cycles on the pool", fast.PoolCycles, fast.Cycles)
					}
				})
			}
		}
	}
}

// TestSpeculativeReplay replays generated traces under
// core.Config.SpeculativeBackfill: the Planner (on its pool but for the
// few cycles that preempt) must start every job at the same second as
// core.Schedule at every event, every job must complete
// once however often it was preempted, and the family as a whole must
// see preemptions (the replay requeues them), none twice for one job.
func TestSpeculativeReplay(t *testing.T) {
	preempted := 0
	for _, g := range []struct {
		nodes, jobs int
		load        float64
		seed        uint64
	}{{64, 600, 1.05, 3}, {128, 600, 0.95, 5}, {256, 500, 0.8, 6}} {
		trace, err := gen.Generate(gen.Params{Nodes: g.nodes, Jobs: g.jobs, Load: g.load, Seed: g.seed})
		if err != nil {
			t.Fatal(err)
		}
		cfg := core.DefaultConfig()
		cfg.SpeculativeBackfill = true
		cfg.StarvationAge = 12 * time.Hour // starve often on a short trace
		o := sim.Options{Nodes: g.nodes, CPUsPerNode: 1, Estimates: sim.EstPredicted, Config: cfg, Preemptions: true}
		fast := sim.Run(trace, o)
		o.Rebuild = true
		slow := sim.Run(trace, o)
		if !slices.Equal(fast.Starts, slow.Starts) || fast.Preempted != slow.Preempted || !slices.Equal(fast.Preemptions, slow.Preemptions) {
			t.Fatalf("%d nodes: planner and rebuild differ (%d and %d preemptions)", g.nodes, fast.Preempted, slow.Preempted)
		}
		checkPreemptedRuns(t, trace, fast, cfg.StarvationAge)
		if fast.Jobs+fast.Skipped != len(trace) || len(fast.Starts) != fast.Jobs {
			t.Fatalf("%d nodes: %d jobs completed, %d skipped, %d starts listed, of %d", g.nodes, fast.Jobs, fast.Skipped, len(fast.Starts), len(trace))
		}
		// The pool answers every cycle but one that preempts or meets a
		// reservation within the stop grace (core's pool.preempt).
		if off := fast.Cycles - fast.PoolCycles; off > fast.Preempted+fast.Cycles/100 {
			t.Fatalf("%d nodes: %d of %d cycles left the pool for %d preemptions", g.nodes, off, fast.Cycles, fast.Preempted)
		}
		if fast.MostPreempted > 1 {
			t.Fatalf("%d nodes: a job was preempted %d times: a rerun started speculatively again", g.nodes, fast.MostPreempted)
		}
		if fast.Preempted > 0 && fast.PreemptedCoreSeconds <= 0 {
			t.Fatalf("%d nodes: %d preemptions lost no work", g.nodes, fast.Preempted)
		}
		t.Logf("%d nodes: %d gangs preempted, %d of %d cycles on the pool", g.nodes, fast.Preempted, fast.PoolCycles, fast.Cycles)
		preempted += fast.Preempted
	}
	if preempted == 0 {
		t.Fatal("no speculative gang was preempted in the whole family")
	}
}

// checkPreemptedRuns checks Result.Preemptions against the replay's
// counts and the rules of speculative preemption: one entry per
// preempted gang, their runs add up to the lost core-seconds, each was a
// speculative start stopped before its end, for a job submitted before it
// that had starved (waited at least starveAge, this test's threshold).
func checkPreemptedRuns(t *testing.T, trace []sim.TraceJob, r sim.Result, starveAge time.Duration) {
	t.Helper()
	if len(r.Preemptions) != r.Preempted {
		t.Fatalf("%d preempted runs listed, %d preemptions counted", len(r.Preemptions), r.Preempted)
	}
	var lost float64
	for _, p := range r.Preemptions {
		ran := p.Stop - p.Start
		lost += float64(p.Cores * ran)
		switch {
		case ran <= 0 || ran >= p.Run || p.Run > p.Walltime:
			t.Fatalf("job %d: ran %d s of %d (walltime %d): not stopped before its end", p.Job, ran, p.Run, p.Walltime)
		case p.Predicted <= 0 || p.Predicted > p.Walltime:
			t.Fatalf("job %d: predicted %d s (walltime %d): a preempted run is a speculative start", p.Job, p.Predicted, p.Walltime)
		case trace[p.By-1].Submit >= trace[p.Job-1].Submit:
			t.Fatalf("job %d preempted for job %d, submitted no earlier", p.Job, p.By)
		case p.ByWaited != p.Stop-trace[p.By-1].Submit || time.Duration(p.ByWaited)*time.Second < starveAge:
			t.Fatalf("job %d preempted for job %d, which had waited %d s: not starving", p.Job, p.By, p.ByWaited)
		}
	}
	if lost != r.PreemptedCoreSeconds {
		t.Fatalf("preempted runs add up to %.0f core-seconds, the replay lost %.0f", lost, r.PreemptedCoreSeconds)
	}
}

// TestPreemptionsOff: a replay lists no preempted runs unless asked.
func TestPreemptionsOff(t *testing.T) {
	trace, err := gen.Generate(gen.Params{Nodes: 64, Jobs: 600, Load: 1.05, Seed: 3})
	if err != nil {
		t.Fatal(err)
	}
	cfg := core.DefaultConfig()
	cfg.StarvationAge = 12 * time.Hour
	r := sim.Run(trace, sim.Options{Nodes: 64, CPUsPerNode: 1, Estimates: sim.EstPredicted, Config: cfg})
	if r.Preempted == 0 || r.Preemptions != nil {
		t.Fatalf("%d preemptions, %d listed: want some, none listed", r.Preempted, len(r.Preemptions))
	}
}
