package core

import (
	"cmp"
	"math"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"vhpc/scheduler/model"
)

// small is a 1-NUMA node with 4 single-thread cores and no GPUs.
var small = hwSpec{numa: 1, phys: 4, smt: 1, memMiB: 16384}

func nodes(n int, h hwSpec) []*model.Node {
	out := make([]*model.Node, n)
	for i := range out {
		out[i] = mkNode(string(rune('a'+i)), h)
	}
	return out
}

// reorder returns ns in the order of the given indexes (the test table
// places running jobs on its nodes in list order).
func reorder(ns []*model.Node, idx ...int) []*model.Node {
	out := make([]*model.Node, len(idx))
	for i, k := range idx {
		out[i] = ns[k]
	}
	return out
}

func TestSchedule(t *testing.T) {
	whole := model.Request{TasksPerNode: 4}
	tests := []struct {
		name    string
		cfg     Config
		nodes   []*model.Node
		running []*model.Job // started at t0-10m with the given walltime, one per node in order
		jobs    []*model.Job
		ended   map[model.JobID]model.JobState
		starts  []model.JobID          // jobs (in order) that must start
		reasons map[model.JobID]string // substrings of pending reasons
	}{
		{
			name:   "gang starts all nodes at once",
			cfg:    cfgWith(PolicyDefault),
			nodes:  nodes(3, small),
			jobs:   []*model.Job{mkJob(1, model.Request{Nodes: 3, TasksPerNode: 4}, time.Hour)},
			starts: []model.JobID{1},
		},
		{
			name:    "gang never starts partially",
			cfg:     cfgWith(PolicyDefault),
			nodes:   nodes(3, small),
			running: []*model.Job{mkJob(90, whole, time.Hour)},
			jobs:    []*model.Job{mkJob(1, model.Request{Nodes: 3, TasksPerNode: 4}, time.Hour)},
			reasons: map[model.JobID]string{1: "reserved: expected to start at 2026-03-01T12:50:00Z"},
		},
		{
			name:    "fcfs: blocked head blocks the small job behind it",
			cfg:     cfgWith(PolicyFCFS),
			nodes:   nodes(2, small),
			running: []*model.Job{mkJob(90, whole, time.Hour)},
			jobs:    []*model.Job{mkJob(1, model.Request{Nodes: 2, TasksPerNode: 4}, time.Hour), mkJob(2, whole, time.Minute)},
			reasons: map[model.JobID]string{1: "needs 2 nodes", 2: "fcfs: waiting behind job 1"},
		},
		{
			name:    "easy: short job backfills before the reservation",
			cfg:     cfgWith(PolicyFCFSEasy),
			nodes:   nodes(2, small),
			running: []*model.Job{mkJob(90, whole, time.Hour)},
			jobs:    []*model.Job{mkJob(1, model.Request{Nodes: 2, TasksPerNode: 4}, time.Hour), mkJob(2, whole, 50*time.Minute)},
			starts:  []model.JobID{2},
			reasons: map[model.JobID]string{1: "reserved"},
		},
		{
			name:    "easy: long job does not backfill into the reservation",
			cfg:     cfgWith(PolicyFCFSEasy),
			nodes:   nodes(2, small),
			running: []*model.Job{mkJob(90, whole, time.Hour)},
			jobs:    []*model.Job{mkJob(1, model.Request{Nodes: 2, TasksPerNode: 4}, time.Hour), mkJob(2, whole, 2*time.Hour)},
			reasons: map[model.JobID]string{1: "reserved", 2: "held for higher-priority reserved jobs"},
		},
		{
			// c and d free up in 50 minutes, a and b are free now. The
			// 3-node reservation takes c, d and one of a/b (the nodes that
			// would otherwise sit idle least), so the 2-hour job runs now on
			// the other one instead of waiting behind it.
			name:    "easy: the reservation takes the nodes freeing up before it, a long job backfills",
			cfg:     cfgWith(PolicyFCFSEasy),
			nodes:   reorder(nodes(4, small), 2, 3, 0, 1),
			running: []*model.Job{mkJob(90, whole, time.Hour), mkJob(91, whole, time.Hour)},
			jobs:    []*model.Job{mkJob(1, model.Request{Nodes: 3, TasksPerNode: 4}, time.Hour), mkJob(2, whole, 2*time.Hour)},
			starts:  []model.JobID{2},
			reasons: map[model.JobID]string{1: "reserved"},
		},
		{
			name:    "afterok on a failed job can never be satisfied",
			cfg:     cfgWith(PolicyDefault),
			nodes:   nodes(1, small),
			jobs:    []*model.Job{withDeps(mkJob(8, whole, time.Hour), model.AfterOK, 7)},
			ended:   map[model.JobID]model.JobState{7: model.JobFailed},
			reasons: map[model.JobID]string{8: "dependency can never be satisfied: job 7 failed"},
		},
		{
			name:   "afternotok on a failed job starts",
			cfg:    cfgWith(PolicyDefault),
			nodes:  nodes(1, small),
			jobs:   []*model.Job{withDeps(mkJob(8, whole, time.Hour), model.AfterNotOK, 7)},
			ended:  map[model.JobID]model.JobState{7: model.JobFailed},
			starts: []model.JobID{8},
		},
		{
			name:    "afterany waits for a live job",
			cfg:     cfgWith(PolicyDefault),
			nodes:   nodes(2, small),
			running: []*model.Job{mkJob(7, whole, time.Hour)},
			jobs:    []*model.Job{withDeps(mkJob(8, whole, time.Hour), model.AfterAny, 7)},
			reasons: map[model.JobID]string{8: "dependency: waiting for job 7 (running)"},
		},
		{
			name:    "department GPU quota",
			cfg:     withQuota(cfgWith(PolicyDefault), "physics", Limits{GPUs: 2}),
			nodes:   nodes(2, dgx),
			jobs:    []*model.Job{mkJob(1, model.Request{GPUs: 2}, time.Hour), mkJob(2, model.Request{GPUs: 2}, time.Hour)},
			starts:  []model.JobID{1},
			reasons: map[model.JobID]string{2: "quota: department physics uses 2 of 2 GPUs; this job needs 2"},
		},
		{
			name:    "partition walltime limit",
			cfg:     withPartition(cfgWith(PolicyDefault), "short", Partition{MaxWalltime: time.Hour}),
			nodes:   nodes(1, small),
			jobs:    []*model.Job{inPartition(mkJob(1, whole, 2*time.Hour), "short")},
			reasons: map[model.JobID]string{1: "partition short: walltime 2h0m0s exceeds its limit 1h0m0s"},
		},
		{
			name:    "partition is a node set",
			cfg:     cfgWith(PolicyDefault),
			nodes:   nodes(1, small),
			jobs:    []*model.Job{inPartition(mkJob(1, whole, time.Hour), "gpu")},
			reasons: map[model.JobID]string{1: "can never be placed: needs 1 node(s) with 4 cores; partition gpu has 0"},
		},
		{
			name:    "high QOS goes first under the default policy",
			cfg:     cfgWith(PolicyDefault),
			nodes:   nodes(1, small),
			jobs:    []*model.Job{mkJob(1, whole, time.Hour), withQOS(mkJob(2, whole, time.Hour), "high")},
			starts:  []model.JobID{2},
			reasons: map[model.JobID]string{1: "reserved"},
		},
		// Three nodes, one busy for 50 more minutes, the 3-node job 1
		// reserved from then: two nodes are a 50-minute hole. Job 2 (one
		// node, 40 min) is ahead of job 3 (two nodes, 45 min) by priority.
		{
			name:    "packing backfill: the largest job fills the hole in front of the reservation",
			cfg:     withBackfill(cfgWith(PolicyDefault), BackfillPacking, 0),
			nodes:   nodes(3, small),
			running: []*model.Job{mkJob(90, whole, time.Hour)},
			jobs:    holeJobs(),
			starts:  []model.JobID{3},
			reasons: map[model.JobID]string{1: "reserved", 2: "waiting for resources"},
		},
		{
			name:    "priority backfill: the first job by priority takes the hole, however it fits",
			cfg:     withBackfill(cfgWith(PolicyDefault), BackfillPriority, 0),
			nodes:   nodes(3, small),
			running: []*model.Job{mkJob(90, whole, time.Hour)},
			jobs:    holeJobs(),
			starts:  []model.JobID{2},
			reasons: map[model.JobID]string{1: "reserved", 3: "waiting for resources"},
		},
		{
			name:    "packing backfill: a small job goes before the large ones",
			cfg:     withBackfill(cfgWith(PolicyDefault), BackfillPacking, 150),
			nodes:   nodes(3, small),
			running: []*model.Job{mkJob(90, whole, time.Hour)},
			jobs: []*model.Job{mkJob(1, model.Request{Nodes: 3, TasksPerNode: 4}, time.Hour),
				mkJob(2, model.Request{Nodes: 2, TasksPerNode: 4}, 45*time.Minute), mkJob(3, whole, 30*time.Second)},
			starts:  []model.JobID{3},
			reasons: map[model.JobID]string{1: "reserved", 2: "waiting for resources"},
		},
		// Node a frees up in 30 s, node b is free. Job 1 (two nodes, high
		// QOS) is first by priority and reserved from then; job 2 (one
		// node, one minute) has waited twelve hours, 720 times its length.
		{
			name:    "slowdown guard: a job slowed down past it goes ahead of the reservation",
			cfg:     packingConfig(),
			nodes:   nodes(2, small),
			running: []*model.Job{mkJob(90, whole, 10*time.Minute+30*time.Second)},
			jobs:    guardJobs(),
			starts:  []model.JobID{2},
			reasons: map[model.JobID]string{1: "reserved: expected to start at 2026-03-01T12:01:00Z"},
		},
		{
			name:    "slowdown guard off: the same job waits behind the reservation",
			cfg:     withGuard(packingConfig(), 0),
			nodes:   nodes(2, small),
			running: []*model.Job{mkJob(90, whole, 10*time.Minute+30*time.Second)},
			jobs:    guardJobs(),
			reasons: map[model.JobID]string{1: "reserved: expected to start at 2026-03-01T12:00:30Z", 2: "held for higher-priority reserved jobs"},
		},
		// One node, busy for 50 more minutes, one reservation: the urgent
		// job's reservation comes on top, so job 1 keeps one too.
		{
			name:    "slowdown guard: an urgent job's reservation does not count against the depth",
			cfg:     withDepth(packingConfig(), 1),
			nodes:   nodes(1, small),
			running: []*model.Job{mkJob(90, whole, time.Hour)},
			jobs: []*model.Job{submitted(withQOS(mkJob(1, whole, time.Hour), "high"), t0.Add(-12*time.Hour)),
				submitted(mkJob(2, whole, time.Minute), t0.Add(-12*time.Hour))},
			reasons: map[model.JobID]string{1: "reserved: expected to start at 2026-03-01T12:51:00Z",
				2: "reserved: expected to start at 2026-03-01T12:50:00Z"},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			in := Input{Now: t0, Nodes: tc.nodes, Ended: tc.ended}
			for i, rj := range tc.running {
				rj.State = model.JobRunning
				in.Jobs = append(in.Jobs, rj)
				start := t0.Add(-10 * time.Minute)
				in.Allocs = append(in.Allocs, &model.Alloc{ID: model.AllocID(rune('A' + i)), Job: rj.ID, State: model.AllocRunning,
					Created: start, Started: start, Deadline: start.Add(rj.Walltime),
					Placement: model.Placement{Node: tc.nodes[i].Name, Cores: []int{0, 1, 2, 3}, NUMA: []int{0}}})
			}
			in.Jobs = append(in.Jobs, tc.jobs...)
			plan := Schedule(in, tc.cfg)
			var got []model.JobID
			for _, s := range plan.Starts {
				got = append(got, s.Job)
				if err := CheckStart(in, s); err != nil {
					t.Errorf("CheckStart(%d): %v", s.Job, err)
				}
			}
			if len(got) != len(tc.starts) || (len(got) > 0 && !equalIDs(got, tc.starts)) {
				t.Fatalf("starts %v, want %v; pending %v", got, tc.starts, plan.Pending)
			}
			for id, want := range tc.reasons {
				if r := plan.Pending[id]; !strings.Contains(r, want) {
					t.Errorf("job %d reason %q, want it to contain %q", id, r, want)
				}
			}
			for _, j := range tc.jobs {
				if _, ok := plan.Pending[j.ID]; !ok && !contains(got, j.ID) {
					t.Errorf("job %d neither started nor given a reason", j.ID)
				}
			}
		})
	}
}

func TestArrayTasksAreLazyAndLimited(t *testing.T) {
	j := mkJob(1, model.Request{TasksPerNode: 1}, time.Hour)
	j.Array = &model.Array{First: 1, Last: 1_000_000, Step: 1, Chunk: 1, Parallel: 3}
	j.NextTask = 10
	in := Input{Now: t0, Nodes: nodes(2, small), Jobs: []*model.Job{j}}
	plan := Schedule(in, DefaultConfig())
	if len(plan.Starts) != 3 {
		t.Fatalf("%d starts, want 3 (parallel limit)", len(plan.Starts))
	}
	for i, s := range plan.Starts {
		if s.Task != int64(10+i) {
			t.Errorf("start %d is task %d, want %d", i, s.Task, 10+i)
		}
	}
	if r := plan.Pending[1]; !strings.Contains(r, "array parallel limit: 3 of 3") {
		t.Errorf("reason %q", r)
	}
	// Without a limit, the array fills the cluster (8 cores) and stops.
	j.Array.Parallel = 0
	plan = Schedule(in, DefaultConfig())
	if len(plan.Starts) != 8 {
		t.Fatalf("%d starts, want 8", len(plan.Starts))
	}
	if len(plan.Reservations) != 1 || plan.Reservations[0].Task != 18 {
		t.Errorf("reservations %+v, want one for task 18", plan.Reservations)
	}
}

func TestExplain(t *testing.T) {
	in := Input{Now: t0, Nodes: nodes(1, small), Jobs: []*model.Job{mkJob(1, model.Request{TasksPerNode: 4}, time.Hour),
		mkJob(2, model.Request{TasksPerNode: 4}, time.Hour), mkJob(3, model.Request{TasksPerNode: 4}, time.Hour)}}
	cfg := DefaultConfig()
	cfg.ReservationDepth = 1
	e := Explain(in, cfg, 3)
	if !e.Found || e.Rank != 3 || e.Reason == "" {
		t.Fatalf("explanation %+v", e)
	}
	if want := t0.Add(2 * time.Hour); !e.EstimatedStart.Equal(want) {
		t.Errorf("estimated start %v, want %v", e.EstimatedStart, want)
	}
	if e.Factors.Size <= 0 || e.Priority <= 0 || !strings.Contains(e.String(), "estimated start") {
		t.Errorf("factors %+v priority %v\n%s", e.Factors, e.Priority, e)
	}
	if e := Explain(in, cfg, 1); e.Start == nil {
		t.Errorf("job 1 should start now: %+v", e)
	}
	guarded := Input{Now: t0, Nodes: nodes(2, small), Jobs: guardJobs()}
	if e := Explain(guarded, packingConfig(), 2); !e.Urgent || e.Starving || e.Rank != 1 || !strings.Contains(e.String(), "urgent") {
		t.Errorf("the job past the slowdown guard: %+v\n%s", e, e)
	}
	if e := Explain(guarded, packingConfig(), 1); e.Urgent || e.Rank != 2 {
		t.Errorf("the job under the slowdown guard: %+v", e)
	}
	if e := Explain(guarded, withGuard(packingConfig(), 800), 2); e.Urgent || e.Rank != 2 {
		t.Errorf("the short job under a guard of 800: %+v", e)
	}
	// Both starve; one starvation slot: job 1 keeps it, and job 2, left
	// to its priority, is still past the slowdown guard.
	slots := packingConfig()
	slots.StarvationAge, slots.StarvationSlots = time.Hour, 1
	if e := Explain(guarded, slots, 2); !e.Urgent || e.Starving {
		t.Errorf("the short job beyond the starvation slots: %+v", e)
	}
	if e := Explain(guarded, slots, 1); e.Urgent || !e.Starving || e.Rank != 1 {
		t.Errorf("the job in the starvation slot: %+v", e)
	}
}

func withDeps(j *model.Job, k model.DependencyKind, ids ...model.JobID) *model.Job {
	j.DependsOn = append(j.DependsOn, model.Dependency{Kind: k, Jobs: ids})
	return j
}

func withQOS(j *model.Job, q string) *model.Job     { j.QOS = q; return j }
func inPartition(j *model.Job, p string) *model.Job { j.Partition = p; return j }
func withQuota(c Config, d string, l Limits) Config { c.Quotas = map[string]Limits{d: l}; return c }
func withPartition(c Config, n string, p Partition) Config {
	c.Partitions = map[string]Partition{n: p}
	return c
}

func equalIDs(a, b []model.JobID) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

func contains(s []model.JobID, id model.JobID) bool {
	for _, x := range s {
		if x == id {
			return true
		}
	}
	return false
}

func TestArrayRetriesStartFirst(t *testing.T) {
	j := mkJob(1, model.Request{TasksPerNode: 1}, time.Hour)
	j.Array = &model.Array{First: 1, Last: 100, Step: 1, Chunk: 1, Parallel: 3}
	j.NextTask, j.RetryTasks = 10, []int64{7, 3}
	in := Input{Now: t0, Nodes: nodes(1, small), Jobs: []*model.Job{j}}
	plan := Schedule(in, DefaultConfig())
	var got []int64
	for _, s := range plan.Starts {
		got = append(got, s.Task)
	}
	if !slices.Equal(got, []int64{3, 7, 10}) {
		t.Fatalf("started tasks %v, want the retries 7 and 3 first, then 10", got)
	}
	for task, ok := range map[int64]bool{3: true, 7: true, 10: true, 11: true, 4: false, 9: false, 100: false} {
		if err := CheckStart(in, model.Start{Job: 1, Task: task, Placements: []model.Placement{{Node: "a", Cores: []int{0}, NUMA: []int{0}}}}); (err == nil) != ok {
			t.Errorf("CheckStart task %d: %v, want ok=%v", task, err, ok)
		}
	}
}

// holeJobs are the backfill order cases' jobs: job 1 needs all 3 nodes,
// job 2 is one node for 40 minutes, job 3 two nodes for 45.
func holeJobs() []*model.Job {
	return []*model.Job{mkJob(1, model.Request{Nodes: 3, TasksPerNode: 4}, time.Hour),
		mkJob(2, model.Request{TasksPerNode: 4}, 40*time.Minute), mkJob(3, model.Request{Nodes: 2, TasksPerNode: 4}, 45*time.Minute)}
}

// guardJobs are a two-node high-QOS job and a one-minute one-node job,
// both submitted twelve hours ago: the short one's expansion factor is 721.
func guardJobs() []*model.Job {
	return []*model.Job{submitted(withQOS(mkJob(1, model.Request{Nodes: 2, TasksPerNode: 4}, time.Hour), "high"), t0.Add(-12*time.Hour)),
		submitted(mkJob(2, model.Request{TasksPerNode: 4}, time.Minute), t0.Add(-12*time.Hour))}
}

func submitted(j *model.Job, at time.Time) *model.Job { j.SubmitTime = at; return j }

// packingConfig is the default policy before EASY++ (until issue 17):
// priority order, two reservations, packing backfill and the slowdown
// guard at 600, planned with the walltime; the guard's tests use it.
func packingConfig() Config {
	c := DefaultConfig()
	c.Estimate, c.ReservationDepth, c.Backfill, c.SlowdownGuard = EstimateRequest, 2, BackfillPacking, 600
	c.StarvationAge, c.StarvationSlots, c.SizeWidthExponent = 240*time.Hour, 0, -1
	return c
}

func withGuard(c Config, g float64) Config { c.SlowdownGuard = g; return c }
func withDepth(c Config, d int) Config     { c.ReservationDepth = d; return c }

// withBackfill sets the default policy's backfill order and small-job area,
// keeps one reservation (so the jobs behind the first blocked one only
// backfill) and drops the size factor so that priority is submit order.
func withBackfill(c Config, order string, small float64) Config {
	c.Backfill, c.SmallJobArea = order, small
	c.ReservationDepth = 1
	c.Weights.Size = 0
	return c
}

func TestConfigValidate(t *testing.T) {
	tests := []struct {
		name    string
		edit    func(c *Config)
		wantErr string
	}{
		{"default", func(c *Config) {}, ""},
		{"every policy", func(c *Config) { c.Policy = PolicySJFEasy }, ""},
		{"unknown policy", func(c *Config) { c.Policy = "lifo" }, `policy "lifo": want one of fcfs, fcfs-easy, sjf-easy, default`},
		{"unknown estimates", func(c *Config) { c.Estimate = "oracle" }, `estimates "oracle"`},
		{"unknown backfill", func(c *Config) { c.Backfill = "random" }, `backfill "random"`},
		{"guard below 1", func(c *Config) { c.SlowdownGuard = 0.5 }, "slowdown guard 0.5"},
		{"negative depth", func(c *Config) { c.ReservationDepth = -1 }, "reservations -1: want 0..1000"},
		{"negative weight", func(c *Config) { c.Weights.Size = -1 }, "size weight -1"},
		{"NaN exponent", func(c *Config) { c.SizeWidthExponent = math.NaN() }, "size width exponent NaN"},
		{"negative starvation age", func(c *Config) { c.StarvationAge = -time.Second }, "starvation age -1s"},
		{"zero share", func(c *Config) { c.Shares = map[string]float64{"physics": 0} }, "share of physics 0"},
		{"negative grace", func(c *Config) { c.StarvationGrace = -time.Hour }, "starvation grace -1h"},
		{"negative starvation backlog", func(c *Config) { c.StarvationBacklog = -1 }, "starvation backlog -1: want 0..1e+06"},
		{"NaN starvation backlog", func(c *Config) { c.StarvationBacklog = math.NaN() }, "starvation backlog NaN"},
		{"starvation backlog", func(c *Config) { c.StarvationBacklog = 1 }, ""},
		{"stop grace too long", func(c *Config) { c.StopGrace = 2 * time.Hour }, "stop grace 2h0m0s: want 1s..1h"},
		{"negative quota", func(c *Config) { c.Quotas = map[string]Limits{"physics": {Cores: -1}} }, "quotas.physics: limits must not be negative"},
		{"negative default quota", func(c *Config) { c.DefaultQuota.GPUs = -2 }, "default quota: limits"},
		{"negative max nodes", func(c *Config) { c.Partitions = map[string]Partition{"gpu": {MaxNodes: -1}} }, "partitions.gpu.maxNodes -1"},
		{"negative partition walltime", func(c *Config) { c.Partitions = map[string]Partition{"gpu": {MaxWalltime: -time.Hour}} }, "partitions.gpu: walltimes"},
		{"partition limits", func(c *Config) { c.Partitions = map[string]Partition{"gpu": {Limits: Limits{RunningJobs: -1}}} }, "partitions.gpu: limits"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c := DefaultConfig()
			tc.edit(&c)
			err := c.Validate()
			if tc.wantErr == "" {
				if err != nil {
					t.Fatal(err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
				t.Fatalf("error %v, want one containing %q", err, tc.wantErr)
			}
		})
	}
}

// TestEASYPlusPlus: two nodes, node a busy for 50 more minutes, the
// two-node job 1 reserved from then; node b is a 50-minute hole. Job 2
// asks for 4 hours but its user's last runs took 10 minutes; job 3 asks
// for 30 minutes.
func TestEASYPlusPlus(t *testing.T) {
	whole := model.Request{TasksPerNode: 4}
	// Runs of job 2's own kind, so the default predictor (by kind) finds them.
	kind := mkJob(2, whole, 4*time.Hour).Kind()
	ofKind := func(ds ...time.Duration) []model.Run {
		out := runs(ds...)
		for i := range out {
			out[i].Kind = kind
		}
		return out
	}
	hist := map[string][]model.Run{"repeat": ofKind(10*time.Minute, 10*time.Minute), "erratic": ofKind(2*time.Minute, 20*time.Minute)}
	tests := []struct {
		name    string
		cfg     Config
		oldest  time.Duration // how long job 1 has waited
		starts  []model.JobID
		reasons map[model.JobID]string
		user    string // job 2's user ("repeat" when empty)
	}{
		{"the default starts the shortest prediction first and reserves the next job by priority", DefaultConfig(), time.Hour, []model.JobID{2},
			map[model.JobID]string{1: "waiting for resources", 3: "reserved"}, ""},
		{"a starving job leads: every job is planned with its walltime (no speculative backfill)", noSpeculation(DefaultConfig()), 73 * time.Hour, []model.JobID{3},
			map[model.JobID]string{1: "reserved", 2: "waiting for resources"}, ""},
		{"within the starving job's grace a consistent prediction still fills the hole", withGrace(DefaultConfig(), 24*time.Hour), 73 * time.Hour, []model.JobID{2},
			map[model.JobID]string{1: "reserved", 3: "waiting for resources"}, ""},
		{"within the grace an inconsistent prediction (2 and 20 minutes) is planned with the walltime", withGrace(noSpeculation(DefaultConfig()), 24*time.Hour), 73 * time.Hour, []model.JobID{3},
			map[model.JobID]string{1: "reserved", 2: "waiting for resources"}, "erratic"},
		{"past the grace every job is planned with its walltime again", withGrace(noSpeculation(DefaultConfig()), 24*time.Hour), 97 * time.Hour, []model.JobID{3},
			map[model.JobID]string{1: "reserved", 2: "waiting for resources"}, ""},
		{"a starvation age of 2 h with the backlog threshold off: job 1 starves", withBacklog(noSpeculation(DefaultConfig()), 2*time.Hour, 0, 0), 3 * time.Hour, []model.JobID{3},
			map[model.JobID]string{1: "reserved", 2: "waiting for resources"}, ""},
		{"the backlog (14 core-hours on 8 cores: 1.75 h) x 1 lowers the 72-hour threshold below job 1's 3 h: job 1 starves", withBacklog(noSpeculation(DefaultConfig()), 72*time.Hour, 1, time.Hour), 3 * time.Hour, []model.JobID{3},
			map[model.JobID]string{1: "reserved", 2: "waiting for resources"}, ""},
		{"x 2 (3.5 h) it stays above job 1's 3 h", withBacklog(noSpeculation(DefaultConfig()), 72*time.Hour, 2, time.Hour), 3 * time.Hour, []model.JobID{2},
			map[model.JobID]string{1: "waiting for resources", 3: "reserved"}, ""},
		{"x 1 with a 4-hour floor: the floor holds, job 1 does not starve", withBacklog(noSpeculation(DefaultConfig()), 72*time.Hour, 1, 4*time.Hour), 3 * time.Hour, []model.JobID{2},
			map[model.JobID]string{1: "waiting for resources", 3: "reserved"}, ""},
		{"planned with the walltime, the 4-hour job never fits the hole", withEstimate(DefaultConfig(), EstimateRequest), time.Hour, []model.JobID{3},
			map[model.JobID]string{1: "reserved", 2: "waiting for resources"}, ""},
		{"sjf-easy goes by the walltime: the 30-minute job first, then job 1 is reserved", withEstimate(cfgWith(PolicySJFEasy), EstimateRequest), time.Hour, []model.JobID{3},
			map[model.JobID]string{1: "reserved", 2: "waiting for resources"}, ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			busy := mkJob(90, whole, time.Hour)
			busy.State = model.JobRunning
			start := t0.Add(-10 * time.Minute)
			ns := nodes(2, small)
			in := Input{Now: t0, Nodes: ns, History: hist, Jobs: []*model.Job{busy,
				submitted(mkJob(1, model.Request{Nodes: 2, TasksPerNode: 4}, time.Hour), t0.Add(-tc.oldest)),
				submitted(mkJob(2, whole, 4*time.Hour), t0.Add(-time.Minute)),
				submitted(mkJob(3, whole, 30*time.Minute), t0.Add(-time.Minute))},
				Allocs: []*model.Alloc{{ID: "A", Job: 90, State: model.AllocRunning, Created: start, Started: start, Deadline: start.Add(time.Hour),
					Placement: model.Placement{Node: ns[0].Name, Cores: []int{0, 1, 2, 3}, NUMA: []int{0}}}}}
			in.Jobs[2].User = cmp.Or(tc.user, "repeat")
			plan := Schedule(in, tc.cfg)
			var got []model.JobID
			for _, s := range plan.Starts {
				got = append(got, s.Job)
			}
			if !equalIDs(got, tc.starts) {
				t.Fatalf("starts %v, want %v; pending %v", got, tc.starts, plan.Pending)
			}
			for id, want := range tc.reasons {
				if r := plan.Pending[id]; !strings.Contains(r, want) {
					t.Errorf("job %d reason %q, want it to contain %q", id, r, want)
				}
			}
		})
	}
}

func withEstimate(c Config, e string) Config { c.Estimate = e; return c }

func withGrace(c Config, g time.Duration) Config { c.StarvationGrace = g; return c }

// noSpeculation turns SpeculativeBackfill off: the cases that show how a
// starving lead plans the others (TestSpeculativeBackfill shows it on).
func noSpeculation(c Config) Config { c.SpeculativeBackfill = false; return c }

// withBacklog sets the starvation threshold: age, lowered to b x the
// backlog but not below floor (b 0: age alone).
func withBacklog(c Config, age time.Duration, b float64, floor time.Duration) Config {
	c.StarvationAge, c.StarvationBacklog, c.StarvationFloor = age, b, floor
	return c
}

// TestBacklog: the work the starvation threshold follows
// (Config.StarvationBacklog, see starvationThreshold) is the pending jobs' width x estimate plus
// the running allocations' cores x expected time left, over the ready
// cores (GPUs counted with GPUWeight).
func TestBacklog(t *testing.T) {
	whole := model.Request{TasksPerNode: 4}
	tests := []struct {
		name    string
		pending []*model.Job
		running bool
		want    time.Duration
	}{
		{"empty machine", nil, false, 0},
		{"one running job, 50 minutes left on one of two nodes", nil, true, 25 * time.Minute},
		{"a pending two-node hour", []*model.Job{mkJob(1, model.Request{Nodes: 2, TasksPerNode: 4}, time.Hour)}, false, time.Hour},
		{"both, and a one-node half hour", []*model.Job{mkJob(1, model.Request{Nodes: 2, TasksPerNode: 4}, time.Hour), mkJob(2, whole, 30*time.Minute)}, true, time.Hour + 40*time.Minute},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			ns := nodes(2, small)
			in := Input{Now: t0, Nodes: ns, Jobs: tc.pending}
			if tc.running {
				busy := mkJob(90, whole, time.Hour)
				busy.State = model.JobRunning
				start := t0.Add(-10 * time.Minute)
				in.Jobs = append(in.Jobs, busy)
				in.Allocs = []*model.Alloc{{ID: "A", Job: 90, State: model.AllocRunning, Created: start, Started: start, Deadline: start.Add(time.Hour),
					Placement: model.Placement{Node: ns[0].Name, Cores: []int{0, 1, 2, 3}, NUMA: []int{0}}}}
			}
			// b = 1 without a floor or a cap: the threshold is the backlog
			// (a starvation grace makes every cycle compute it).
			cfg := DefaultConfig()
			cfg.StarvationBacklog, cfg.StarvationFloor, cfg.StarvationAge = 1, 0, 1000*time.Hour
			cfg.StarvationGrace = time.Hour
			s := newSched(&in, &cfg)
			s.candidates()
			if got := s.starveAge; got != tc.want {
				t.Fatalf("backlog %s, want %s", got, tc.want)
			}
		})
	}
}

// TestSpeculativeBackfill: with Config.SpeculativeBackfill a job whose
// walltime does not fit in front of a starving job's reservation starts
// on its prediction, marked speculative; once it runs past its prediction
// and stands in the starving job's way it is preempted, unless it was
// submitted before the starving job; once preempted it never starts
// speculatively again.
func TestSpeculativeBackfill(t *testing.T) {
	whole := model.Request{TasksPerNode: 4}
	spec, off := DefaultConfig(), DefaultConfig()
	off.SpeculativeBackfill = false
	kind := mkJob(2, whole, 4*time.Hour).Kind()
	hist := runs(10*time.Minute, 10*time.Minute)
	for i := range hist {
		hist[i].Kind = kind
	}
	ns := nodes(2, small)
	onNode := func(id model.AllocID, job model.JobID, node int, started time.Time, wall time.Duration, speculative bool) *model.Alloc {
		return &model.Alloc{ID: id, Job: job, State: model.AllocRunning, Created: started, Started: started, Deadline: started.Add(wall),
			Speculative: speculative, Placement: model.Placement{Node: ns[node].Name, Cores: []int{0, 1, 2, 3}, NUMA: []int{0}}}
	}
	starving := func() *model.Job {
		return submitted(mkJob(1, model.Request{Nodes: 2, TasksPerNode: 4}, time.Hour), t0.Add(-73*time.Hour))
	}
	tests := []struct {
		name        string
		cfg         Config
		job2Submit  time.Duration // before t0
		job2Running bool          // job 2 runs speculatively on node 1 since t0-20m
		job2Rerun   bool          // job 2 ran before (preempted): Attempt 1
		starts      []model.JobID
		speculative bool
		preempted   []model.JobID
		reasons     map[model.JobID]string
	}{
		{"off: the 4-hour walltime does not fit before the reservation, the 30-minute job starts", off, time.Minute, false, false,
			[]model.JobID{3}, false, nil, map[model.JobID]string{1: "reserved", 2: "waiting for resources"}},
		{"on: the 10-minute prediction fits, job 2 starts speculatively", spec, time.Minute, false, false,
			[]model.JobID{2}, true, nil, map[model.JobID]string{1: "reserved", 3: "waiting for resources"}},
		{"on, but job 2 was preempted before: never speculatively again, the 30-minute job starts", spec, time.Minute, false, true,
			[]model.JobID{3}, false, nil, map[model.JobID]string{1: "reserved", 2: "waiting for resources"}},
		{"past its prediction, job 2 is preempted for the starving job", spec, 30 * time.Minute, true, false,
			nil, false, []model.JobID{2}, map[model.JobID]string{1: "preempting job 2 (speculative backfill past its prediction)"}},
		{"a job submitted before the starving one is never preempted for it", spec, 80 * time.Hour, true, false,
			nil, false, nil, map[model.JobID]string{1: "reserved"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			busy := mkJob(90, whole, time.Hour)
			busy.State = model.JobRunning
			job2 := submitted(mkJob(2, whole, 4*time.Hour), t0.Add(-tc.job2Submit))
			job2.User = "repeat"
			if tc.job2Rerun {
				job2.Attempt = 1
			}
			in := Input{Now: t0, Nodes: ns, History: map[string][]model.Run{"repeat": hist}, Jobs: []*model.Job{busy, starving(), job2,
				submitted(mkJob(3, whole, 30*time.Minute), t0.Add(-time.Minute))},
				Allocs: []*model.Alloc{onNode("A", 90, 0, t0.Add(-10*time.Minute), time.Hour, false)}}
			if tc.job2Running {
				job2.State = model.JobRunning
				busy.State = model.JobCompleted
				in.Allocs = []*model.Alloc{onNode("B", 2, 1, t0.Add(-20*time.Minute), 4*time.Hour, true)}
			}
			plan := Schedule(in, tc.cfg)
			var got, pre []model.JobID
			for _, s := range plan.Starts {
				got = append(got, s.Job)
				if s.Speculative != tc.speculative {
					t.Errorf("job %d started with speculative %v, want %v", s.Job, s.Speculative, tc.speculative)
				}
			}
			for _, p := range plan.Preemptions {
				pre = append(pre, p.Job)
				if !strings.Contains(p.Reason, "started speculatively") {
					t.Errorf("preemption reason %q", p.Reason)
				}
			}
			if !equalIDs(got, tc.starts) || !equalIDs(pre, tc.preempted) {
				t.Fatalf("starts %v, preempted %v; want %v, %v; pending %v", got, pre, tc.starts, tc.preempted, plan.Pending)
			}
			for id, want := range tc.reasons {
				if r := plan.Pending[id]; !strings.Contains(r, want) {
					t.Errorf("job %d reason %q, want it to contain %q", id, r, want)
				}
			}
		})
	}
}

// TestSpeculativeSlack: a starving job on both nodes is reserved in 50
// minutes (node 0 is busy until then); job 2 (a 4-hour walltime) fits
// node 1's hole only by its prediction, the mean of its last two runs. It
// starts speculatively only where the hole holds the prediction plus
// SpeculativeSlack times it.
func TestSpeculativeSlack(t *testing.T) {
	whole := model.Request{TasksPerNode: 4}
	ns := nodes(2, small)
	tests := []struct {
		name    string
		runs    time.Duration // job 2's last two runtimes
		slack   float64
		started bool
	}{
		{"the default: twice a 10-minute prediction fits", 10 * time.Minute, 1, true},
		{"the default: twice 24 minutes still fits 50", 24 * time.Minute, 1, true},
		{"the default: twice a 30-minute prediction does not fit", 30 * time.Minute, 1, false},
		{"slack 0: the 30-minute prediction alone fits", 30 * time.Minute, 0, true},
		{"slack 0.5: 45 minutes fits", 30 * time.Minute, 0.5, true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			cfg := DefaultConfig()
			cfg.SpeculativeSlack = tc.slack
			if err := cfg.Validate(); err != nil {
				t.Fatal(err)
			}
			job2 := submitted(mkJob(2, whole, 4*time.Hour), t0.Add(-time.Minute))
			job2.User = "repeat"
			hist := runs(tc.runs, tc.runs)
			for i := range hist {
				hist[i].Kind = job2.Kind()
			}
			busy := mkJob(90, whole, time.Hour)
			busy.State = model.JobRunning
			starving := submitted(mkJob(1, model.Request{Nodes: 2, TasksPerNode: 4}, time.Hour), t0.Add(-73*time.Hour))
			in := Input{Now: t0, Nodes: ns, History: map[string][]model.Run{"repeat": hist}, Jobs: []*model.Job{busy, starving, job2},
				Allocs: []*model.Alloc{{ID: "A", Job: 90, State: model.AllocRunning, Created: t0.Add(-10 * time.Minute), Started: t0.Add(-10 * time.Minute),
					Deadline: t0.Add(50 * time.Minute), Placement: model.Placement{Node: ns[0].Name, Cores: []int{0, 1, 2, 3}, NUMA: []int{0}}}}}
			plan := Schedule(in, cfg)
			started := len(plan.Starts) == 1 && plan.Starts[0].Job == 2 && plan.Starts[0].Speculative
			if started != tc.started || len(plan.Starts) > 1 {
				t.Fatalf("starts %+v, want job 2 started speculatively %v; pending %v", plan.Starts, tc.started, plan.Pending)
			}
			if !tc.started && !strings.Contains(plan.Pending[2], "waiting for resources") {
				t.Errorf("job 2 reason %q", plan.Pending[2])
			}
		})
	}
}

// TestSpeculativeStopsForTheLeadOnly: two jobs starve; the lead (the
// older, on both nodes) waits for a plain job on node 0, and a
// speculative gang past its prediction holds node 1, where the second
// starving job (10 minutes, one node) would fit before the lead's
// reservation. Only the lead may stop speculative gangs, so nothing is
// preempted: the gang started in front of the lead's reservation, not
// the second job's.
func TestSpeculativeStopsForTheLeadOnly(t *testing.T) {
	whole := model.Request{TasksPerNode: 4}
	ns := nodes(2, small)
	spec := submitted(mkJob(2, whole, 4*time.Hour), t0.Add(-30*time.Minute))
	spec.User, spec.State = "repeat", model.JobRunning
	hist := runs(10*time.Minute, 10*time.Minute)
	for i := range hist {
		hist[i].Kind = spec.Kind()
	}
	plain := mkJob(90, whole, time.Hour)
	plain.State = model.JobRunning
	at := func(id model.AllocID, j *model.Job, node int, started time.Time, speculative bool) *model.Alloc {
		return &model.Alloc{ID: id, Job: j.ID, State: model.AllocRunning, Created: started, Started: started, Deadline: started.Add(j.Walltime),
			Speculative: speculative, Placement: model.Placement{Node: ns[node].Name, Cores: []int{0, 1, 2, 3}, NUMA: []int{0}}}
	}
	in := Input{Now: t0, Nodes: ns, History: map[string][]model.Run{"repeat": hist},
		Jobs: []*model.Job{plain, spec,
			submitted(mkJob(4, model.Request{Nodes: 2, TasksPerNode: 4}, time.Hour), t0.Add(-74*time.Hour)),
			submitted(mkJob(1, whole, 10*time.Minute), t0.Add(-73*time.Hour))},
		Allocs: []*model.Alloc{at("A", plain, 0, t0.Add(-10*time.Minute), false), at("B", spec, 1, t0.Add(-20*time.Minute), true)}}
	for _, p := range []struct {
		name     string
		schedule func(Input, Config) model.Plan
	}{{"full path", Schedule}, {"planner", new(Planner).Schedule}} {
		plan := p.schedule(in, DefaultConfig())
		if len(plan.Preemptions) != 0 || len(plan.Starts) != 0 {
			t.Fatalf("%s: preempted %+v, started %+v; want neither (pending %v)", p.name, plan.Preemptions, plan.Starts, plan.Pending)
		}
		if !strings.Contains(plan.Pending[4], "reserved: expected to start at 2026-03-01T12:50:00Z") || strings.Contains(plan.Pending[1], "preempting") {
			t.Fatalf("%s: pending %v", p.name, plan.Pending)
		}
	}
}

// TestPlanRecheck: the plan names the earliest time it may change with no
// event (model.Plan.Recheck), which hpcsim wakes a cycle at: a running
// job outliving its prediction on a node a reservation waits for (its
// expected end then moves to its deadline, and the reservation with it),
// or the next pending job reaching the starvation threshold while a slot
// is free. Nothing changes by itself where everything is planned with
// walltimes. Each case runs on three four-core nodes (the full path) and
// on three one-CPU nodes (a Planner's pool).
func TestPlanRecheck(t *testing.T) {
	fcfsEasy := DefaultConfig()
	fcfsEasy.Policy, fcfsEasy.Estimate = PolicyFCFSEasy, EstimateRequest
	floor := t0.Add(24*time.Hour - time.Minute + time.Second) // job 3 reaches the 24-hour floor
	oneSlot := DefaultConfig()
	oneSlot.StarvationSlots = 1
	tests := []struct {
		name     string
		cfg      Config
		started  time.Duration // before t0, job 90's start on node 0 (its prediction: 10 minutes, walltime 1 hour)
		thirdEnd time.Duration // after t0, the deadline of job 91 on node 2 (no history: expected to its deadline)
		starving bool          // job 1, on two nodes, waits since t0-73h
		want     time.Time     // zero: none
	}{
		{"job 90's prediction ends where job 3 is reserved", DefaultConfig(), 5 * time.Minute, 10 * time.Hour, false, t0.Add(5 * time.Minute)},
		{"job 90 past its prediction: job 3 reaching the floor", DefaultConfig(), 20 * time.Minute, 10 * time.Hour, false, floor},
		{"job 3 reserved on nodes 1 and 2 at 2 minutes, not on job 90's", DefaultConfig(), 5 * time.Minute, 2 * time.Minute, false, floor},
		{"a starving job holds the one slot: no starvation recheck", oneSlot, 20 * time.Minute, 10 * time.Hour, true, time.Time{}},
		{"fcfs-easy plans with walltimes: none", fcfsEasy, 5 * time.Minute, 10 * time.Hour, false, time.Time{}},
	}
	for _, hw := range []struct {
		name  string
		nodes []*model.Node
		cores int
	}{{"four cores", nodes(3, small), 4}, {"one CPU, pool", oneSlotNodes(3), 1}} {
		for _, tc := range tests {
			t.Run(hw.name+"/"+tc.name, func(t *testing.T) {
				ns, whole, both := hw.nodes, model.Request{TasksPerNode: hw.cores}, model.Request{Nodes: 2, TasksPerNode: hw.cores}
				busy, third := mkJob(90, whole, time.Hour), mkJob(91, whole, 10*time.Hour)
				busy.State, busy.User = model.JobRunning, "repeat"
				third.State, third.User = model.JobRunning, "other"
				hist := runs(10*time.Minute, 10*time.Minute)
				for i := range hist {
					hist[i].Kind = busy.Kind()
				}
				jobs := []*model.Job{busy, third, submitted(mkJob(3, both, 30*time.Minute), t0.Add(-time.Minute))}
				if tc.starving {
					jobs = append(jobs, submitted(mkJob(1, both, time.Hour), t0.Add(-73*time.Hour)))
				}
				onNode := func(id model.AllocID, job model.JobID, node int, started, deadline time.Time) *model.Alloc {
					cores := []int{0, 1, 2, 3}[:hw.cores]
					return &model.Alloc{ID: id, Job: job, State: model.AllocRunning, Created: started, Started: started, Deadline: deadline,
						Placement: model.Placement{Node: ns[node].Name, Cores: cores, NUMA: []int{0}}}
				}
				start := t0.Add(-tc.started)
				in := Input{Now: t0, Nodes: ns, History: map[string][]model.Run{"repeat": hist}, Jobs: jobs,
					Allocs: []*model.Alloc{onNode("A", 90, 0, start, start.Add(time.Hour)), onNode("C", 91, 2, t0.Add(-time.Hour), t0.Add(tc.thirdEnd))}}
				plan := Schedule(in, tc.cfg)
				if len(plan.Starts) != 0 {
					t.Fatalf("starts %v, want none", plan.Starts)
				}
				if !plan.Recheck.Equal(tc.want) {
					t.Fatalf("recheck %v, want %v (reservations %v)", plan.Recheck, tc.want, plan.Reservations)
				}
				var p Planner
				if got := p.Schedule(in, tc.cfg); !got.Recheck.Equal(tc.want) {
					t.Fatalf("the planner's recheck %v, want %v", got.Recheck, tc.want)
				}
				if p.Pooled() != (hw.cores == 1) {
					t.Fatalf("planned on the pool: %v", p.Pooled())
				}
			})
		}
	}
}

// TestDrainPacking: a starving job waits for the nodes busy for 10 hours
// and the others are free. Shortest-first backfill gives them to the
// 30-minute, then the 7-hour and 8-hour jobs; in a packed drain (the lead
// needs at least Config.DrainPacking of the machine) the small job still
// goes first, then the largest: the 9-hour and 8-hour jobs.
func TestDrainPacking(t *testing.T) {
	whole := model.Request{TasksPerNode: 4}
	ns := nodes(4, small)
	cfgWith := func(share float64) Config {
		c := DefaultConfig()
		c.DrainPacking = share
		return c
	}
	tests := []struct {
		name            string
		cfg             Config
		lead, busyNodes int
		starts          []model.JobID
	}{
		{"default: the full-machine lead's drain is packed", DefaultConfig(), 4, 1, []model.JobID{2, 3, 4}},
		{"off: shortest first", cfgWith(0), 4, 1, []model.JobID{2, 4, 5}},
		{"a lead on 3 of 4 nodes is below a 0.8 share: shortest first", cfgWith(0.8), 3, 2, []model.JobID{2, 5}},
		{"and at a 0.75 share it is packed", cfgWith(0.75), 3, 2, []model.JobID{2, 3}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			jobs := []*model.Job{submitted(mkJob(1, model.Request{Nodes: tc.lead, TasksPerNode: 4}, time.Hour), t0.Add(-73*time.Hour))}
			for _, w := range []struct {
				id   model.JobID
				wall time.Duration
			}{{2, 30 * time.Minute}, {3, 9 * time.Hour}, {4, 8 * time.Hour}, {5, 7 * time.Hour}} {
				jobs = append(jobs, submitted(mkJob(w.id, whole, w.wall), t0.Add(-time.Minute)))
			}
			busy, allocs := busyFourCores(ns, tc.busyNodes)
			jobs = append(jobs, busy...)
			plan := Schedule(Input{Now: t0, Nodes: ns, Jobs: jobs, Allocs: allocs}, tc.cfg)
			var got []model.JobID
			for _, s := range plan.Starts {
				got = append(got, s.Job)
			}
			if !equalIDs(got, tc.starts) || !strings.Contains(plan.Pending[1], "reserved") {
				t.Fatalf("starts %v, want %v; pending %v", got, tc.starts, plan.Pending)
			}
		})
	}
}

// TestDrainYield: a starving job on the whole machine could start now,
// and a 5-minute job and a 1-hour job wait behind it. With
// Config.DrainYield (10 minutes by default) the 5-minute job goes first
// and the lead is reserved at its end; the 1-hour job waits either way.
// A yield shorter than the job, no yield, or a lead below DrainPacking's
// share start the lead instead.
func TestDrainYield(t *testing.T) {
	one, ns := model.Request{TasksPerNode: 4}, nodes(4, small)
	tests := []struct {
		name      string
		yield     time.Duration // Config.DrainYield
		lead      int           // the starving job's nodes
		busyNodes int           // busy for 10 hours
		starts    []model.JobID
		leadAt    time.Time // the lead's reservation; zero: it starts
	}{
		{"default: the 5-minute job goes first", DefaultConfig().DrainYield, 4, 0, []model.JobID{2}, t0.Add(5 * time.Minute)},
		{"off", 0, 4, 0, []model.JobID{1}, time.Time{}},
		{"a 2-minute yield is shorter than the job", 2 * time.Minute, 4, 0, []model.JobID{1}, time.Time{}},
		{"a lead on 1 of 4 nodes is no packed drain", DefaultConfig().DrainYield, 1, 3, []model.JobID{1}, time.Time{}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			jobs := []*model.Job{
				submitted(mkJob(1, model.Request{Nodes: tc.lead, TasksPerNode: 4}, time.Hour), t0.Add(-73*time.Hour)),
				submitted(mkJob(2, one, 5*time.Minute), t0.Add(-time.Minute)),
				submitted(mkJob(3, one, time.Hour), t0.Add(-time.Minute)),
			}
			busy, allocs := busyFourCores(ns, tc.busyNodes)
			jobs = append(jobs, busy...)
			in := Input{Now: t0, Nodes: ns, Jobs: jobs, Allocs: allocs}
			cfg := DefaultConfig()
			cfg.DrainYield = tc.yield
			plan := Schedule(in, cfg)
			var got []model.JobID
			for _, s := range plan.Starts {
				got = append(got, s.Job)
			}
			if !equalIDs(got, tc.starts) {
				t.Fatalf("starts %v, want %v; pending %v", got, tc.starts, plan.Pending)
			}
			if !tc.leadAt.IsZero() {
				i := slices.IndexFunc(plan.Reservations, func(r model.Reservation) bool { return r.Job == 1 })
				if i < 0 || !plan.Reservations[i].At.Equal(tc.leadAt) {
					t.Fatalf("reservations %v, want job 1 at %v", plan.Reservations, tc.leadAt)
				}
			}
			if _, waits := plan.Pending[3]; !waits {
				t.Fatalf("the 1-hour job is not pending: %v", plan.Starts)
			}
			var p Planner
			if again := p.Schedule(in, cfg); planHash(t, again) != planHash(t, plan) {
				t.Fatalf("the planner's plan %+v differs from %+v", again, plan)
			}
		})
	}
}

// TestDrainYieldArray: rule 7 starts an array's short tasks (render
// frames) in order before a wide lead, up to its parallel limit and as
// many as fit now; the cycle gives the rest their reason and never starts
// a task twice.
func TestDrainYieldArray(t *testing.T) {
	ns := nodes(4, small)
	tests := []struct {
		name          string
		tasks         int64
		parallel      int
		yield         time.Duration
		frameTasks    []int64 // the array's tasks started, in order
		leadAt        time.Duration
		pendingPrefix string // the array's reason, "" when nothing is left
	}{
		{"three frames on three of four nodes", 3, 0, DefaultConfig().DrainYield, []int64{0, 1, 2}, 5 * time.Minute, ""},
		{"the parallel limit stops the third", 3, 2, DefaultConfig().DrainYield, []int64{0, 1}, 5 * time.Minute, "array parallel limit"},
		{"four fit now, the fifth waits behind the lead", 5, 0, DefaultConfig().DrainYield, []int64{0, 1, 2, 3}, 5 * time.Minute, "waiting for resources"},
		{"off: the lead starts, the frames wait", 3, 0, 0, nil, 0, "waiting for resources"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			frames := mkJob(2, model.Request{TasksPerNode: 4}, 5*time.Minute)
			frames.Array = &model.Array{First: 0, Last: tc.tasks - 1, Step: 1, Chunk: 1, Parallel: tc.parallel}
			jobs := []*model.Job{
				submitted(mkJob(1, model.Request{Nodes: 4, TasksPerNode: 4}, time.Hour), t0.Add(-49*time.Hour)),
				submitted(frames, t0.Add(-time.Minute)),
			}
			in := Input{Now: t0, Nodes: ns, Jobs: jobs}
			cfg := DefaultConfig()
			cfg.DrainYield = tc.yield
			plan := Schedule(in, cfg)
			var got []int64
			leadStarts := false
			for _, s := range plan.Starts {
				switch s.Job {
				case 2:
					got = append(got, s.Task)
				case 1:
					leadStarts = true
				}
			}
			if !slices.Equal(got, tc.frameTasks) {
				t.Fatalf("frames started %v, want %v; pending %v", got, tc.frameTasks, plan.Pending)
			}
			if tc.leadAt == 0 {
				if !leadStarts {
					t.Fatalf("the lead does not start: %v", plan.Pending)
				}
			} else if i := slices.IndexFunc(plan.Reservations, func(r model.Reservation) bool { return r.Job == 1 }); i < 0 || !plan.Reservations[i].At.Equal(t0.Add(tc.leadAt)) {
				t.Fatalf("reservations %v, want job 1 at %v", plan.Reservations, t0.Add(tc.leadAt))
			}
			why, waits := plan.Pending[2]
			if tc.pendingPrefix == "" && waits {
				t.Fatalf("the array still waits: %q", why)
			}
			if tc.pendingPrefix != "" && !strings.Contains(why, tc.pendingPrefix) {
				t.Fatalf("the array's reason %q, want %q", why, tc.pendingPrefix)
			}
			var p Planner
			if again := p.Schedule(in, cfg); planHash(t, again) != planHash(t, plan) {
				t.Fatalf("the planner's plan %+v differs from %+v", again, plan)
			}
		})
	}
}

// busyFourCores runs a job on all four cores of each of the first n
// nodes, started an hour ago, until 10 hours from t0 (jobs 90, 91, ...).
func busyFourCores(ns []*model.Node, n int) ([]*model.Job, []*model.Alloc) {
	var jobs []*model.Job
	var allocs []*model.Alloc
	for i := range n {
		busy := mkJob(model.JobID(90+i), model.Request{TasksPerNode: 4}, 10*time.Hour)
		busy.State = model.JobRunning
		jobs = append(jobs, busy)
		allocs = append(allocs, &model.Alloc{ID: model.AllocID("busy" + strconv.Itoa(i)), Job: busy.ID, State: model.AllocRunning,
			Created: t0.Add(-time.Hour), Started: t0.Add(-time.Hour), Deadline: t0.Add(10 * time.Hour),
			Placement: model.Placement{Node: ns[i].Name, Cores: []int{0, 1, 2, 3}, NUMA: []int{0}}})
	}
	return jobs, allocs
}
