package sim_test

import (
	"testing"
	"time"

	"vhpc/bench/gen"
	"vhpc/bench/sim"
	"vhpc/scheduler/core"
)

// TestResumePreempted replays two generated traces that preempt
// speculative gangs, once losing their runs and once keeping them
// (sim.Options.ResumePreempted). Kept, no core-second is lost, every job
// completes once, and a job's last run is its run less what it kept, so
// the last runs and the kept core-seconds add up to the trace's work.
// Lost, every last run is the whole run. Both ways the makespan ends at
// the last job's end.
func TestResumePreempted(t *testing.T) {
	resumed := 0
	for _, p := range []gen.Params{{Nodes: 64, Jobs: 600, Load: 1.05, Seed: 3}, {Nodes: 128, Jobs: 600, Load: 0.95, Seed: 5}} {
		trace, err := gen.Generate(p)
		if err != nil {
			t.Fatal(err)
		}
		cfg := core.DefaultConfig()
		cfg.StarvationAge = 12 * time.Hour // starve often on a short trace
		o := sim.Options{Nodes: p.Nodes, CPUsPerNode: 1, Estimates: sim.EstRequest, Config: cfg}
		lost := sim.Run(trace, o)
		o.ResumePreempted = true
		kept := sim.Run(trace, o)

		run := map[int64]int64{}
		cores := map[int64]int64{}
		var work float64
		firstSubmit := int64(-1)
		for _, j := range trace {
			if j.Procs > int64(p.Nodes) {
				continue // skipped by the replay
			}
			if firstSubmit < 0 || j.Submit < firstSubmit {
				firstSubmit = j.Submit
			}
			wall := max(j.Run, 1) // as sim.Run: the request, the run without one
			if j.ReqTime > 0 {
				wall = j.ReqTime
			}
			run[j.ID] = min(j.Run, wall)
			cores[j.ID] = j.Procs
			work += float64(j.Procs * run[j.ID])
		}
		for name, r := range map[string]sim.Result{"lost": lost, "kept": kept} {
			if r.Jobs+r.Skipped != len(trace) || len(r.Starts) != r.Jobs {
				t.Fatalf("%d nodes, %s: %d jobs completed, %d skipped, %d listed, of %d", p.Nodes, name, r.Jobs, r.Skipped, len(r.Starts), len(trace))
			}
			// The makespan runs to the last job's end, a resumed one's
			// included.
			var lastEnd int64
			for _, s := range r.Starts {
				lastEnd = max(lastEnd, s.End)
			}
			if got := int64(r.Makespan) + firstSubmit; got != lastEnd {
				t.Fatalf("%d nodes, %s: the makespan ends at %d s, the last job at %d s", p.Nodes, name, got, lastEnd)
			}
		}
		if lost.Preempted == 0 || kept.Preempted == 0 {
			t.Fatalf("%d nodes: %d and %d preemptions: nothing to keep", p.Nodes, lost.Preempted, kept.Preempted)
		}
		if lost.PreemptedCoreSeconds <= 0 || lost.ResumedCoreSeconds != 0 {
			t.Fatalf("%d nodes, lost: %.0f core-seconds lost, %.0f kept", p.Nodes, lost.PreemptedCoreSeconds, lost.ResumedCoreSeconds)
		}
		if kept.PreemptedCoreSeconds != 0 || kept.ResumedCoreSeconds <= 0 {
			t.Fatalf("%d nodes, kept: %.0f core-seconds lost, %.0f kept", p.Nodes, kept.PreemptedCoreSeconds, kept.ResumedCoreSeconds)
		}
		var last float64
		shorter := 0
		for _, s := range kept.Starts {
			d := s.End - s.At
			if d <= 0 || d > run[s.ID] {
				t.Fatalf("%d nodes: job %d's last run is %d s of its %d s", p.Nodes, s.ID, d, run[s.ID])
			}
			if d < run[s.ID] {
				shorter++
			}
			last += float64(cores[s.ID] * d)
		}
		if shorter == 0 || last+kept.ResumedCoreSeconds < work*(1-1e-9) || last+kept.ResumedCoreSeconds > work*(1+1e-9) {
			t.Fatalf("%d nodes: %d resumed jobs; last runs %.0f + kept %.0f core-seconds, the trace holds %.0f", p.Nodes, shorter, last, kept.ResumedCoreSeconds, work)
		}
		for _, s := range lost.Starts {
			if s.End-s.At != run[s.ID] {
				t.Fatalf("%d nodes, lost: job %d ran %d s of its %d s", p.Nodes, s.ID, s.End-s.At, run[s.ID])
			}
		}
		resumed += shorter
	}
	t.Logf("%d jobs resumed a kept run", resumed)
}
