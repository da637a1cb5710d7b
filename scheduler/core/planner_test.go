package core

import (
	"fmt"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"pgregory.net/rapid"

	"vhpc/scheduler/model"
)

// TestPlannerMatchesSchedule runs a few cycles of a random cluster with
// one Planner: each cycle's plan must equal Schedule's on the same input.
// Between cycles the plan's starts become allocations, some gangs end,
// some allocations are asked to stop, new jobs arrive, time moves, and
// sometimes the nodes change (a node replaced by a new value, or the
// slice reordered), so both the kept index and its rebuild are exercised.
func TestPlannerMatchesSchedule(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		in, cfg := genInput(t)
		var p Planner
		id := model.JobID(1000)
		for cycle := range rapid.IntRange(1, 6).Draw(t, "cycles") {
			want := Schedule(in, cfg)
			got := p.Schedule(in, cfg)
			if !reflect.DeepEqual(want, got) {
				t.Fatalf("cycle %d: planner's plan differs from Schedule's:\n%+v\n%+v", cycle, got, want)
			}
			in = nextCycle(t, in, got, &id)
		}
	})
}

// applyStarts turns plan's starts into running allocations appended to
// in's (so the list leaves gang order) and marks the jobs started; it
// returns the jobs by id and the allocations.
func applyStarts(in Input, plan model.Plan) (map[model.JobID]*model.Job, []*model.Alloc) {
	byID := map[model.JobID]*model.Job{}
	for _, j := range in.Jobs {
		byID[j.ID] = j
	}
	allocs := slices.Clone(in.Allocs)
	for _, s := range plan.Starts {
		j := byID[s.Job]
		allocs = append(allocs, allocsFor(s, j, in.Now)...)
		if j.Array != nil {
			j.NextTask = max(j.NextTask, s.Task+1)
			j.RetryTasks = slices.DeleteFunc(j.RetryTasks, func(x int64) bool { return x == s.Task })
		} else {
			j.State = model.JobRunning
		}
	}
	return byID, allocs
}

// nextCycle applies plan to in and draws the changes of the next cycle.
func nextCycle(t *rapid.T, in Input, plan model.Plan, id *model.JobID) Input {
	byID, allocs := applyStarts(in, plan)
	// Some gangs end: their allocations go, a plain job leaves the input.
	ended := map[model.JobID]model.JobState{}
	for k, v := range in.Ended {
		ended[k] = v
	}
	for _, a := range allocs {
		if a.Rank == 0 && rapid.IntRange(0, 3).Draw(t, "end") == 0 {
			job, task := a.Job, a.Task
			allocs = slices.DeleteFunc(allocs, func(b *model.Alloc) bool { return b.Job == job && b.Task == task })
			if j := byID[job]; j != nil && j.Array == nil {
				ended[job] = model.JobCompleted
				delete(byID, job)
			}
			break
		}
	}
	for i, a := range allocs {
		if rapid.IntRange(0, 9).Draw(t, "stop") == 0 {
			allocs[i] = stopRequested(a)
		}
	}
	var jobs []*model.Job
	for _, j := range in.Jobs {
		if byID[j.ID] != nil {
			jobs = append(jobs, j)
		}
	}
	next := in
	next.Now = in.Now.Add(time.Duration(rapid.IntRange(0, 90).Draw(t, "advance")) * time.Minute)
	for range rapid.IntRange(0, 4).Draw(t, "arrive") {
		jobs = append(jobs, genJob(t, *id, next.Now.Add(-time.Minute)))
		*id++
	}
	next.Jobs, next.Allocs, next.Ended = jobs, allocs, ended
	switch rapid.IntRange(0, 5).Draw(t, "nodes") {
	case 0: // one node replaced by a changed copy
		nodes := slices.Clone(in.Nodes)
		i := rapid.IntRange(0, len(nodes)-1).Draw(t, "node")
		n := *nodes[i]
		n.State = map[model.NodeState]model.NodeState{model.NodeReady: model.NodeDown}[n.State]
		if n.State == "" {
			n.State = model.NodeReady
		}
		nodes[i] = &n
		next.Nodes = nodes
	case 1: // same nodes, another order
		next.Nodes = rapid.Permutation(in.Nodes).Draw(t, "order")
	}
	return next
}

// TestGoldenPlansPlanner schedules the golden inputs with one Planner,
// each twice (the second call reuses the index and the allocations it
// kept): every plan must hash to the recorded one.
func TestGoldenPlansPlanner(t *testing.T) {
	want := readGolden(t)
	var p Planner
	for i := range min(goldenCases, len(want)) {
		in, cfg := goldenInput(uint64(i))
		for call := range 2 {
			if got := fmt.Sprintf("%d %s", i, planHash(t, p.Schedule(in, cfg))); got != want[i] {
				t.Fatalf("case %d, call %d: the planner's plan differs from the recorded one", i, call+1)
			}
		}
	}
}

// oneSlotNodes are n nodes of one CPU, no GPU (hpcsim's machines), so a
// Planner runs its cycles on the pool.
func oneSlotNodes(n int) []*model.Node {
	ns := make([]*model.Node, n)
	for i := range ns {
		ns[i] = mkNode(fmt.Sprintf("n%03d", i), hwSpec{numa: 1, phys: 1, smt: 1, memMiB: 4000})
	}
	return ns
}

// genSlotJob draws a job for a one-slot cluster of n nodes: one core per
// node, sometimes wider than the cluster or more memory than a node has,
// sometimes an array, submitted up to four days ago (so some starve).
func genSlotJob(t *rapid.T, id model.JobID, n int, now time.Time) *model.Job {
	r := model.Request{Nodes: rapid.IntRange(1, n+1).Draw(t, "nodes"),
		MemoryMiB: rapid.SampledFrom([]int64{0, 0, 1000, 5000}).Draw(t, "mem"), CrossNUMA: rapid.Bool().Draw(t, "cross")}
	j := mkJob(id, r, time.Duration(rapid.IntRange(1, 48).Draw(t, "wall"))*15*time.Minute)
	j.SubmitTime = now.Add(-time.Duration(rapid.IntRange(0, 96*60).Draw(t, "age")) * time.Minute)
	j.User = rapid.SampledFrom([]string{"u0", "u1", "u2"}).Draw(t, "user")
	j.Department = rapid.SampledFrom([]string{"physics", "render"}).Draw(t, "dept")
	j.QOS = rapid.SampledFrom([]string{"", "low", "high"}).Draw(t, "qos")
	if rapid.IntRange(0, 7).Draw(t, "array") == 0 {
		j.Array = &model.Array{Last: int64(rapid.IntRange(0, 6).Draw(t, "last")), Step: 1, Chunk: 1,
			Parallel: rapid.IntRange(0, 3).Draw(t, "par")}
	}
	return j
}

// poolCovers reports whether every cycle under cfg stays on the pool: at
// most one reservation a cycle.
func poolCovers(cfg Config) bool {
	urgent := cfg.SlowdownGuard > 0 && cfg.SlowdownReservations > 0
	return cfg.Policy != PolicyDefault || (cfg.ReservationDepth <= 1 && !urgent)
}

// TestPoolMatchesSchedule runs up to eight cycles on a random one-slot
// cluster under every policy, both estimate modes and several reservation
// depths, backfill orders, guards and backlog thresholds: every plan of
// the Planner (on its pool) must equal Schedule's, placements and reasons
// included, and where the configuration has at most one reservation a
// cycle the pool must never have fallen back (but for a call of
// SpeculativeBackfill's that preempts or meets a reservation within the
// stop grace, see pool.preempt). Between cycles starts
// become allocations (added at the end, so the list is out of gang
// order), gangs end and feed the history, preempted gangs and some
// others are asked to stop, time moves and jobs arrive.
func TestPoolMatchesSchedule(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		n := rapid.IntRange(1, 24).Draw(t, "n")
		now := t0
		in := Input{Now: now, Nodes: oneSlotNodes(n), Usage: map[string]float64{"physics": rapid.Float64Range(0, 1e6).Draw(t, "usage")},
			History: map[string][]model.Run{}, Ended: map[model.JobID]model.JobState{}}
		id := model.JobID(1)
		for range rapid.IntRange(0, 12).Draw(t, "jobs") {
			in.Jobs = append(in.Jobs, genSlotJob(t, id, n, now))
			id++
		}
		cfg := DefaultConfig()
		cfg.Policy = rapid.SampledFrom(Policies()).Draw(t, "policy")
		cfg.Estimate = rapid.SampledFrom([]string{EstimateRequest, EstimatePredicted}).Draw(t, "estimate")
		cfg.ReservationDepth = rapid.IntRange(0, 2).Draw(t, "depth")
		cfg.Backfill = rapid.SampledFrom([]string{BackfillShortest, BackfillPacking, BackfillPriority}).Draw(t, "backfill")
		cfg.SlowdownGuard = rapid.SampledFrom([]float64{0, 0, 4}).Draw(t, "slowdownGuard")
		cfg.StarvationGrace = rapid.SampledFrom([]time.Duration{0, 24 * time.Hour}).Draw(t, "grace")
		cfg.StarvationBacklog = rapid.SampledFrom([]float64{0, 0, 2}).Draw(t, "backlog")
		cfg.SpeculativeBackfill = cfg.Policy == PolicyDefault && cfg.Estimate == EstimatePredicted && rapid.Bool().Draw(t, "speculative")
		var p Planner
		for cycle := range rapid.IntRange(1, 8).Draw(t, "cycles") {
			want := Schedule(in, cfg)
			got := p.Schedule(in, cfg)
			if !reflect.DeepEqual(want, got) {
				t.Fatalf("cycle %d: the pool's plan differs from Schedule's:\n%+v\n%+v", cycle, got, want)
			}
			if p.pool.retry && !cfg.SpeculativeBackfill {
				t.Fatalf("cycle %d: the pool fell back for one call without speculative backfill", cycle)
			}
			if !p.Pooled() && poolCovers(cfg) && !p.pool.retry {
				t.Fatalf("cycle %d: the pool fell back under %+v", cycle, cfg)
			}
			in = nextSlotCycle(t, in, got, n, &id, cfg.HistoryLen)
		}
	})
}

// nextSlotCycle applies plan to in, ends some gangs (recording their
// runtimes), asks some to stop, moves time and adds arrivals.
func nextSlotCycle(t *rapid.T, in Input, plan model.Plan, n int, id *model.JobID, keep int) Input {
	jobs, allocs := applyStarts(in, plan)
	next := in
	next.Now = in.Now.Add(time.Duration(rapid.IntRange(0, 240).Draw(t, "advance")) * time.Minute)
	next.Ended = map[model.JobID]model.JobState{}
	for k, v := range in.Ended {
		next.Ended[k] = v
	}
	ended := map[gangKey]bool{}
	for _, a := range allocs {
		if a.Rank == 0 && (!a.Deadline.After(next.Now) || rapid.IntRange(0, 5).Draw(t, "end") == 0) {
			ended[gangKey{a.Job, a.Task}] = true
			j := jobs[a.Job]
			RecordRuntime(next.History, j.User, model.Run{Kind: j.Kind(), Runtime: min(next.Now.Sub(a.Started), j.Walltime)}, max(keep, 1))
			if j.Array == nil {
				next.Ended[j.ID] = model.JobCompleted
				delete(jobs, j.ID)
			}
		}
	}
	next.Allocs = slices.DeleteFunc(allocs, func(a *model.Alloc) bool { return ended[gangKey{a.Job, a.Task}] })
	preempted := map[gangKey]bool{}
	for _, pr := range plan.Preemptions {
		preempted[gangKey{pr.Job, pr.Task}] = true
	}
	for i, a := range next.Allocs {
		if preempted[gangKey{a.Job, a.Task}] || rapid.IntRange(0, 19).Draw(t, "stop") == 0 {
			next.Allocs[i] = stopRequested(a)
		}
	}
	next.Jobs = nil
	for _, j := range in.Jobs {
		if jobs[j.ID] != nil {
			next.Jobs = append(next.Jobs, j)
		}
	}
	for range rapid.IntRange(0, 4).Draw(t, "arrive") {
		next.Jobs = append(next.Jobs, genSlotJob(t, *id, n, next.Now))
		*id++
	}
	return next
}

// TestPoolFallsBack gives a one-slot cluster what the pool does not
// answer itself: the Planner must fall back to the full path (Pooled is
// false) and still return Schedule's plan.
func TestPoolFallsBack(t *testing.T) {
	nodes := oneSlotNodes(4)
	running := func(job model.JobID, node string, cores []int) *model.Alloc {
		return &model.Alloc{ID: model.AllocID(fmt.Sprint(job)), Job: job, State: model.AllocRunning, Started: t0, Created: t0,
			Deadline: t0.Add(time.Hour), Placement: model.Placement{Node: node, Cores: cores, NUMA: []int{0}}}
	}
	wide := mkJob(1, model.Request{Nodes: 4}, time.Hour)
	cases := []struct {
		name   string
		jobs   []*model.Job
		allocs []*model.Alloc
		cfg    func(*Config)
	}{
		{name: "allocation without its core", jobs: []*model.Job{wide, mkJob(2, model.Request{}, time.Hour)},
			allocs: []*model.Alloc{running(2, "n000", nil)}},
		{name: "two allocations on one node", jobs: []*model.Job{wide, mkJob(2, model.Request{}, time.Hour), mkJob(3, model.Request{}, time.Hour)},
			allocs: []*model.Alloc{running(2, "n000", []int{0}), running(3, "n000", []int{0})}},
		{name: "two reservations", jobs: []*model.Job{wide, mkJob(2, model.Request{Nodes: 3}, 2*time.Hour), mkJob(3, model.Request{}, time.Hour)},
			allocs: []*model.Alloc{running(3, "n001", []int{0})}, cfg: func(c *Config) { c.ReservationDepth = 2 }},
		{name: "request of no core", jobs: []*model.Job{func() *model.Job {
			j := mkJob(1, model.Request{}, time.Hour)
			j.Request.CPUsPerTask = 0
			return j
		}()}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			for _, j := range tc.jobs {
				if len(slices.DeleteFunc(slices.Clone(tc.allocs), func(a *model.Alloc) bool { return a.Job != j.ID })) > 0 {
					j.State = model.JobRunning
				}
			}
			in := Input{Now: t0, Nodes: nodes, Jobs: tc.jobs, Allocs: tc.allocs}
			cfg := DefaultConfig()
			if tc.cfg != nil {
				tc.cfg(&cfg)
			}
			var p Planner
			got := p.Schedule(in, cfg)
			if want := Schedule(in, cfg); !reflect.DeepEqual(want, got) {
				t.Fatalf("plan differs from Schedule's:\n%+v\n%+v", got, want)
			}
			if p.Pooled() {
				t.Fatal("the pool answered a cycle it does not cover")
			}
		})
	}
}

// TestPoolSpeculativePreemption gives the pool a starving three-node job
// on six one-core nodes: n000 free, n004 held by a job ending within the
// stop grace, and speculative gangs past their predictions: A on n001 and
// n002 (started 20 minutes ago), B on n003 (40 minutes ago) and C on n005
// (submitted before the starving job, so never its victim). A, the most
// recent, is taken first and suffices, so B is left running; of the four
// nodes that then fit, the job is reserved from the grace on n004 (the
// smallest idle gap: its holder ends just before), then n000 and n001 by
// index, as the full path's gangAt orders them. That reservation is the
// cycle's one, so a six-node job behind it gets none. The Planner must
// answer on its pool with Schedule's plan.
func TestPoolSpeculativePreemption(t *testing.T) {
	ns := oneSlotNodes(6)
	cfg := DefaultConfig()
	cfg.SpeculativeBackfill = true
	kind := mkJob(10, model.Request{}, 4*time.Hour).Kind()
	hist := runs(10*time.Minute, 10*time.Minute)
	for i := range hist {
		hist[i].Kind = kind
	}
	running := func(job model.JobID, submit, started time.Time, wall time.Duration, speculative bool, nodes ...int) (*model.Job, []*model.Alloc) {
		j := submitted(mkJob(job, model.Request{Nodes: len(nodes)}, wall), submit)
		j.User, j.State = "repeat", model.JobRunning
		var as []*model.Alloc
		for rank, n := range nodes {
			as = append(as, &model.Alloc{ID: model.AllocID(fmt.Sprintf("%d.%d", job, rank)), Job: job, Rank: rank, State: model.AllocRunning,
				Created: started, Started: started, Deadline: started.Add(wall), Speculative: speculative,
				Placement: model.Placement{Node: ns[n].Name, Cores: []int{0}, NUMA: []int{0}}})
		}
		return j, as
	}
	starving := submitted(mkJob(1, model.Request{Nodes: 3}, time.Hour), t0.Add(-73*time.Hour))
	// A blocked job behind it: the preemption's reservation is the
	// cycle's one (ReservationDepth 1), so this one gets none.
	wide := submitted(mkJob(20, model.Request{Nodes: 6}, time.Hour), t0.Add(-time.Hour))
	in := Input{Now: t0, Nodes: ns, History: map[string][]model.Run{"repeat": hist}, Jobs: []*model.Job{starving, wide}}
	for _, g := range []struct {
		job                model.JobID
		submitAgo, started time.Duration
		wall               time.Duration
		speculative        bool
		nodes              []int
	}{
		{2, time.Hour, 59*time.Minute + 30*time.Second, time.Hour, false, []int{4}},
		{10, time.Hour, 20 * time.Minute, 4 * time.Hour, true, []int{1, 2}},
		{11, time.Hour, 40 * time.Minute, 4 * time.Hour, true, []int{3}},
		{12, 80 * time.Hour, 30 * time.Minute, 4 * time.Hour, true, []int{5}},
	} {
		j, as := running(g.job, t0.Add(-g.submitAgo), t0.Add(-g.started), g.wall, g.speculative, g.nodes...)
		in.Jobs = append(in.Jobs, j)
		in.Allocs = append(in.Allocs, as...)
	}
	var p Planner
	got := p.Schedule(in, cfg)
	if want := Schedule(in, cfg); !reflect.DeepEqual(want, got) {
		t.Fatalf("the pool's plan differs from Schedule's:\n%+v\n%+v", got, want)
	}
	if !p.Pooled() {
		t.Fatal("the Planner left the pool")
	}
	if len(got.Preemptions) != 1 || got.Preemptions[0].Job != 10 || len(got.Preemptions[0].Allocs) != 2 {
		t.Fatalf("preemptions %+v, want job 10's gang", got.Preemptions)
	}
	if len(got.Reservations) != 1 || !slices.Equal(got.Reservations[0].Nodes, []string{"n000", "n001", "n004"}) ||
		!got.Reservations[0].At.Equal(t0.Add(cfg.StopGrace)) {
		t.Fatalf("reservations %+v, want job 1 on n000, n001 and n004 at the grace", got.Reservations)
	}
	if why := got.Pending[20]; why == "" || strings.HasPrefix(why, "reserved") {
		t.Fatalf("job 20: %q, want a wait without a reservation", why)
	}
}

// stopRequested is a with its stop requested, as a new allocation: the
// Planner's contract (an allocation it has seen is never changed in
// place), which the state store's copies and hpcsim keep.
func stopRequested(a *model.Alloc) *model.Alloc {
	c := *a
	c.StopRequested = true
	return &c
}
