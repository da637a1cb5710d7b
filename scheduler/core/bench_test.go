package core

import (
	"context"
	"fmt"
	"runtime/pprof"
	"testing"
	"time"

	"vhpc/scheduler/model"
)

// gpuBox is a 2-socket node: 2 x 32 cores x SMT-2, 4 H100 per socket.
var gpuBox = hwSpec{numa: 2, phys: 32, smt: 2, gpus: 4, model: "H100", memMiB: 512 * 1024}

func benchNodes(n int) []*model.Node {
	out := make([]*model.Node, n)
	for i := range out {
		out[i] = mkNode(fmt.Sprintf("gpu%04d", i), gpuBox)
	}
	return out
}

// benchJobs makes n pending jobs of mixed shapes: 1-8 GPUs, 8-64 cores,
// gangs of 1-4 nodes, walltimes of 1-24 h, three departments.
func benchJobs(first model.JobID, n int) []*model.Job {
	jobs := make([]*model.Job, n)
	for i := range jobs {
		id := first + model.JobID(i)
		g := []int{1, 1, 1, 2, 2, 4, 8}[i%7]
		r := model.Request{Nodes: []int{1, 1, 1, 1, 2, 4}[i%6], TasksPerNode: g, CPUsPerTask: 8, GPUs: g, GPUModel: "H100", MemoryMiB: int64(g) * 32768}
		j := mkJob(id, r, time.Duration(1+i%24)*time.Hour)
		j.Department = []string{"physics", "render", "bio"}[i%3]
		jobs[i] = j
	}
	return jobs
}

// BenchmarkCycle10kJobs1kNodes is one scheduling cycle: 1,000 nodes with 8
// GPUs each, about half of them busy, and 10,000 pending jobs.
func BenchmarkCycle10kJobs1kNodes(b *testing.B) { benchCycle(b, 1000, false, false) }

// BenchmarkCycle10kJobs5kNodesPlanner is BenchmarkCycle10kJobs5kNodes
// through a Planner kept between cycles (the node index and the
// allocations' conversions reused), against the rebuild of every cycle
// in BenchmarkCycle10kJobs5kNodes: the side-by-side pair of issue 17.
func BenchmarkCycle10kJobs5kNodesPlanner(b *testing.B) { benchCycleWith(b, 5000, false, false, true) }

// BenchmarkCycle10kJobs5kNodes is the live cycle of issue 17's aim: 5,000
// such nodes, about half busy, and 10,000 pending jobs.
func BenchmarkCycle10kJobs5kNodes(b *testing.B) { benchCycle(b, 5000, false, false) }

// BenchmarkCycle10kJobs1kNodesPreemption is the same cycle with preemption
// on and every running job of QOS low, so each blocked job looks for
// victims.
func BenchmarkCycle10kJobs1kNodesPreemption(b *testing.B) { benchCycle(b, 1000, true, false) }

// BenchmarkCycle10kJobs1kNodesUrgent is the same cycle with every pending
// job past the slowdown guard (submitted 30 days ago, starvation guard
// off), so each blocked one asks for a reservation until
// Config.SlowdownReservations are placed.
func BenchmarkCycle10kJobs1kNodesUrgent(b *testing.B) { benchCycle(b, 1000, false, true) }

func benchCycle(b *testing.B, nodes int, preempt, urgent bool) {
	benchCycleWith(b, nodes, preempt, urgent, false)
}

// benchCycleWith measures one cycle; with planner, through one Planner
// that has already scheduled the same input once.
func benchCycleWith(b *testing.B, nodes int, preempt, urgent, planner bool) {
	cfg := DefaultConfig()
	if preempt {
		cfg.Preemption = PreemptRequeue
	}
	in := Input{Now: t0, Nodes: benchNodes(nodes), History: map[string][]model.Run{}}
	warm := benchJobs(1, nodes*5/2)
	in.Jobs = warm
	plan := Schedule(in, DefaultConfig())
	byID := map[model.JobID]*model.Job{}
	for _, j := range warm {
		byID[j.ID] = j
	}
	for _, s := range plan.Starts {
		in.Allocs = append(in.Allocs, allocsFor(s, byID[s.Job], t0.Add(-30*time.Minute))...)
		byID[s.Job].State = model.JobRunning
	}
	var running []*model.Job
	for _, j := range warm {
		if j.State == model.JobRunning {
			if preempt {
				j.QOS = "low"
			}
			running = append(running, j)
		}
	}
	pending := benchJobs(100000, 10000)
	if urgent {
		cfg.StarvationAge, cfg.SlowdownGuard = 0, 600
		for _, j := range pending {
			j.SubmitTime = t0.Add(-30 * 24 * time.Hour)
		}
	}
	in.Jobs = append(running, pending...)
	// The predictor's worst case: every pending job's user has a full
	// history of another kind, so each prediction scans all of it before
	// it falls back to the runs of any kind.
	other := model.JobKind{Walltime: 7 * time.Minute, Nodes: 1}
	for range model.RunsKept {
		RecordRuntime(in.History, "alice", model.Run{Kind: other, Runtime: 5 * time.Minute}, model.RunsKept)
	}
	schedule := Schedule
	if planner {
		var p Planner
		p.Schedule(in, cfg)
		schedule = p.Schedule
	}
	b.ResetTimer()
	for b.Loop() {
		var p model.Plan
		// The label separates the measured cycles from the warm-up cycle
		// above in a profile: go tool pprof -tagfocus phase=cycle.
		pprof.Do(context.Background(), pprof.Labels("phase", "cycle"), func(context.Context) { p = schedule(in, cfg) })
		if len(p.Pending) < 9000 {
			b.Fatalf("only %d pending", len(p.Pending))
		}
		if want := cfg.ReservationDepth + cfg.SlowdownReservations; urgent && len(p.Reservations) != want {
			b.Fatalf("%d reservations, want %d (the depth and the slowdown guard's)", len(p.Reservations), want)
		}
	}
}

// BenchmarkPlacementsSingleNode measures placements per second: 8,000
// single-node one-GPU jobs onto an empty 1,000-node, 8,000-GPU cluster in
// one cycle.
func BenchmarkPlacementsSingleNode(b *testing.B) {
	in := Input{Now: t0, Nodes: benchNodes(1000)}
	for i := range 8000 {
		in.Jobs = append(in.Jobs, mkJob(model.JobID(i+1), model.Request{TasksPerNode: 8, GPUs: 1, MemoryMiB: 32768}, time.Hour))
	}
	n := 0
	start := time.Now()
	for b.Loop() {
		n += len(Schedule(in, DefaultConfig()).Starts)
	}
	b.ReportMetric(float64(n)/time.Since(start).Seconds(), "placements/s")
}
