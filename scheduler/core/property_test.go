package core

import (
	"fmt"
	"reflect"
	"slices"
	"testing"
	"time"

	"pgregory.net/rapid"

	"vhpc/scheduler/model"
)

// genNode draws a random node: 1-2 NUMA nodes, SMT or not, 0-2 GPUs per
// NUMA node of one of two models, sometimes a reserved core, a drained GPU,
// two GPUs sharing an IOMMU group, or a node that is not ready.
func genNode(t *rapid.T, name string) *model.Node {
	h := hwSpec{numa: rapid.IntRange(1, 2).Draw(t, "numa"), phys: rapid.IntRange(1, 4).Draw(t, "phys"),
		smt: rapid.IntRange(1, 2).Draw(t, "smt"), gpus: rapid.IntRange(0, 2).Draw(t, "gpus"),
		model: rapid.SampledFrom([]string{"H100", "A100"}).Draw(t, "model"), memMiB: rapid.Int64Range(1000, 4000).Draw(t, "mem")}
	n := mkNode(name, h)
	if rapid.IntRange(0, 4).Draw(t, "reserved") == 0 {
		n.ReservedCores = []int{0}
	}
	if len(n.GPUs) > 0 && rapid.IntRange(0, 4).Draw(t, "drain") == 0 {
		n.GPUs[0].Drained = "test"
	}
	if len(n.GPUs) > 1 && rapid.IntRange(0, 3).Draw(t, "sharedGroup") == 0 {
		n.GPUs[1].IOMMUGroup = n.GPUs[0].IOMMUGroup // one IOMMU group: given out together
		n.GPUs[0].IOMMUShared, n.GPUs[1].IOMMUShared = true, true
	}
	if rapid.IntRange(0, 9).Draw(t, "down") == 0 {
		n.State = model.NodeDown
	}
	return n
}

func genJob(t *rapid.T, id model.JobID, submit time.Time) *model.Job {
	r := model.Request{Nodes: rapid.IntRange(1, 2).Draw(t, "nodes"), TasksPerNode: rapid.IntRange(1, 3).Draw(t, "tasks"),
		CPUsPerTask: rapid.IntRange(1, 2).Draw(t, "cpt"), GPUs: rapid.IntRange(0, 2).Draw(t, "gpus"),
		GPUModel:  rapid.SampledFrom([]string{"", "H100", "A100"}).Draw(t, "model"),
		MemoryMiB: rapid.Int64Range(0, 2500).Draw(t, "mem"), CrossNUMA: rapid.Bool().Draw(t, "cross")}
	j := mkJob(id, r, time.Duration(rapid.IntRange(1, 12).Draw(t, "wall"))*15*time.Minute)
	j.SubmitTime = submit
	j.QOS = rapid.SampledFrom([]string{"", "low", "high"}).Draw(t, "qos")
	j.Department = rapid.SampledFrom([]string{"physics", "render"}).Draw(t, "dept")
	if rapid.IntRange(0, 5).Draw(t, "array") == 0 {
		j.Array = &model.Array{First: 0, Last: int64(rapid.IntRange(0, 20).Draw(t, "last")), Step: 1, Chunk: 1,
			Parallel: rapid.IntRange(0, 3).Draw(t, "par")}
	}
	return j
}

// genInput builds a consistent snapshot: running work comes from scheduling
// an earlier batch, so its placements are valid by construction.
func genInput(t *rapid.T) (Input, Config) {
	var ns []*model.Node
	for i := range rapid.IntRange(1, 5).Draw(t, "n") {
		ns = append(ns, genNode(t, fmt.Sprintf("node%d", i)))
	}
	past := t0.Add(-30 * time.Minute)
	in := Input{Now: past, Nodes: ns}
	id := model.JobID(1)
	for range rapid.IntRange(0, 8).Draw(t, "old") {
		in.Jobs = append(in.Jobs, genJob(t, id, past.Add(-time.Hour)))
		id++
	}
	cfg := DefaultConfig()
	cfg.Policy = rapid.SampledFrom([]string{PolicyFCFS, PolicyFCFSEasy, PolicyDefault}).Draw(t, "policy")
	cfg.ReservationDepth = rapid.IntRange(0, 4).Draw(t, "depth")
	cfg.SlowdownGuard = rapid.SampledFrom([]float64{0, 2, 4, 300}).Draw(t, "slowdownGuard")
	cfg.SlowdownReservations = rapid.IntRange(0, 3).Draw(t, "slowdownReservations")
	cfg.Preemption = rapid.SampledFrom([]string{PreemptOff, PreemptRequeue}).Draw(t, "preemption")
	old := Schedule(in, cfg)
	byID := map[model.JobID]*model.Job{}
	for _, j := range in.Jobs {
		byID[j.ID] = j
	}
	for _, s := range old.Starts {
		j := byID[s.Job]
		in.Allocs = append(in.Allocs, allocsFor(s, j, past)...)
		if j.Array != nil {
			j.NextTask = s.Task + 1
		} else {
			j.State = model.JobRunning
		}
	}
	// Some arrays have a task to run again (it failed or was preempted):
	// its allocation is gone and it waits in RetryTasks.
	for _, j := range in.Jobs {
		if j.Array == nil || j.NextTask == 0 || !rapid.Bool().Draw(t, "retry") {
			continue
		}
		task := rapid.Int64Range(0, j.NextTask-1).Draw(t, "retryTask")
		in.Allocs = slices.DeleteFunc(in.Allocs, func(a *model.Alloc) bool { return a.Job == j.ID && a.Task == task })
		j.RetryTasks = append(j.RetryTasks, task)
	}
	in.Now = t0
	for range rapid.IntRange(0, 10).Draw(t, "new") {
		in.Jobs = append(in.Jobs, genJob(t, id, t0.Add(-time.Duration(id)*time.Minute)))
		id++
	}
	in.Usage = map[string]float64{"physics": rapid.Float64Range(0, 1e6).Draw(t, "usage")}
	return in, cfg
}

func TestPropertyPlans(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		in, cfg := genInput(t)
		plan := Schedule(in, cfg)
		checkStartsApply(t, in, plan)
		checkReservationsHold(t, in, cfg, plan)
		checkEveryJobAccounted(t, in, plan)
		checkPreemptions(t, in, cfg, plan)
		checkReservationCount(t, cfg, plan)
		// Same input in another order: same plan.
		sh := in
		sh.Jobs = rapid.Permutation(in.Jobs).Draw(t, "jobs")
		sh.Nodes = rapid.Permutation(in.Nodes).Draw(t, "nodes")
		sh.Allocs = rapid.Permutation(in.Allocs).Draw(t, "allocs")
		if again := Schedule(sh, cfg); !reflect.DeepEqual(plan, again) {
			t.Fatalf("plan differs for the same input:\n%+v\n%+v", plan, again)
		}
	})
}

// checkReservationCount bounds the plan's reservations: one under
// fcfs-easy, none under fcfs, and under the default policy the depth plus
// the slowdown guard's own (besides the preempting jobs' reservations).
func checkReservationCount(t *rapid.T, cfg Config, plan model.Plan) {
	limit := map[string]int{PolicyFCFS: 0, PolicyFCFSEasy: 1,
		PolicyDefault: cfg.ReservationDepth + cfg.SlowdownReservations}[cfg.Policy] + len(plan.Preemptions)
	if len(plan.Reservations) > limit {
		t.Fatalf("%d reservations under %s (depth %d, slowdown reservations %d, %d preemptions): want at most %d",
			len(plan.Reservations), cfg.Policy, cfg.ReservationDepth, cfg.SlowdownReservations, len(plan.Preemptions), limit)
	}
}

// checkStartsApply applies the plan's starts one by one, each checked by
// CheckStart against the state with the previous ones applied: no resource
// is double-booked and every gang has all its nodes.
func checkStartsApply(t *rapid.T, in Input, plan model.Plan) {
	cur := in
	cur.Allocs = append([]*model.Alloc(nil), in.Allocs...)
	jobs := map[model.JobID]*model.Job{}
	for _, j := range in.Jobs {
		jobs[j.ID] = j
	}
	for _, s := range plan.Starts {
		if err := CheckStart(cur, s); err != nil {
			t.Fatalf("start %d/%d: %v", s.Job, s.Task, err)
		}
		if got, want := len(s.Placements), jobs[s.Job].Request.Nodes; got != want {
			t.Fatalf("gang of job %d has %d nodes, want %d", s.Job, got, want)
		}
		cur.Allocs = append(cur.Allocs, allocsFor(s, jobs[s.Job], in.Now)...)
	}
}

// checkReservationsHold verifies that at each reservation's time its exact
// resources are free given everything expected to run then: allocations
// before their deadline, the plan's starts before their walltime and the
// reservations ahead of it. A backfilled job never delays a reservation.
func checkReservationsHold(t *rapid.T, in Input, cfg Config, plan model.Plan) {
	jobs := map[model.JobID]*model.Job{}
	for _, j := range in.Jobs {
		jobs[j.ID] = j
	}
	stopping := map[model.AllocID]bool{} // end at the stop grace
	for _, p := range plan.Preemptions {
		for _, id := range p.Allocs {
			stopping[id] = true
		}
	}
	for ri, r := range plan.Reservations {
		at := in
		at.Now = r.At
		at.Allocs = nil
		for _, a := range in.Allocs {
			end := a.Deadline
			if g := in.Now.Add(cfg.StopGrace); stopping[a.ID] && g.Before(end) {
				end = g
			}
			if end.After(r.At) {
				at.Allocs = append(at.Allocs, a)
			}
		}
		for _, s := range plan.Starts {
			if in.Now.Add(jobs[s.Job].Walltime).After(r.At) {
				at.Allocs = append(at.Allocs, allocsFor(s, jobs[s.Job], in.Now)...)
			}
		}
		for _, o := range plan.Reservations[:ri] {
			if !o.At.After(r.At) && o.End.After(r.At) {
				at.Allocs = append(at.Allocs, allocsFor(model.Start{Job: o.Job, Task: o.Task, Placements: o.Placements}, jobs[o.Job], o.At)...)
			}
		}
		if err := CheckStart(at, model.Start{Job: r.Job, Task: r.Task, Placements: r.Placements}); err != nil {
			t.Fatalf("reservation of job %d at +%s is not free: %v", r.Job, r.At.Sub(in.Now), err)
		}
		if !r.At.After(in.Now) {
			t.Fatalf("reservation of job %d is not in the future", r.Job)
		}
	}
}

func checkEveryJobAccounted(t *rapid.T, in Input, plan model.Plan) {
	started := map[model.JobID]bool{}
	for _, s := range plan.Starts {
		started[s.Job] = true
	}
	for _, j := range in.Jobs {
		candidate := j.State == model.JobPending && j.Array == nil || j.TasksLeft() > 0
		if !candidate {
			continue
		}
		if _, ok := plan.Pending[j.ID]; !ok && !started[j.ID] {
			t.Fatalf("job %d neither started nor given a reason", j.ID)
		}
		if j.Array == nil && started[j.ID] && plan.Pending[j.ID] != "" {
			t.Fatalf("job %d started and pending", j.ID)
		}
	}
}

// checkPreemptions: only under PreemptRequeue, only for a job still to
// start, only of strictly lower QOS, whole live gangs, each at most once.
func checkPreemptions(t *rapid.T, in Input, cfg Config, plan model.Plan) {
	if len(plan.Preemptions) > 0 && cfg.Preemption != PreemptRequeue {
		t.Fatalf("preemptions with preemption %q", cfg.Preemption)
	}
	jobs := map[model.JobID]*model.Job{}
	for _, j := range in.Jobs {
		jobs[j.ID] = j
	}
	seen := map[gangKey]bool{}
	for _, p := range plan.Preemptions {
		by, victim := jobs[p.By], jobs[p.Job]
		if by == nil || victim == nil || qosRank(by.QOS) <= qosRank(victim.QOS) {
			t.Fatalf("preemption %+v: job %v may not preempt job %v", p, by, victim)
		}
		if !(by.Array == nil && by.State == model.JobPending || by.TasksLeft() > 0) {
			t.Fatalf("preemption for job %d, which has nothing left to start", p.By)
		}
		k := gangKey{p.Job, p.Task}
		if seen[k] {
			t.Fatalf("gang %v preempted twice", k)
		}
		seen[k] = true
		var live []model.AllocID
		for _, a := range in.Allocs {
			if a.Job == p.Job && a.Task == p.Task && !a.State.Terminal() {
				if a.StopRequested || a.Attempt != p.Attempt {
					t.Fatalf("preemption %+v names a gang with allocation %+v", p, a)
				}
				live = append(live, a.ID)
			}
		}
		slices.Sort(live)
		got := slices.Sorted(slices.Values(p.Allocs))
		if !slices.Equal(live, got) {
			t.Fatalf("preemption %+v stops %v of the gang's %v", p, got, live)
		}
	}
}
