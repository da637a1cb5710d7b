package core

import (
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"vhpc/scheduler/model"
)

// running is a job holding whole small nodes since started.
type running struct {
	id       model.JobID
	qos      string
	nodes    []string
	started  time.Duration // before t0
	stopping bool
	cores    []int // per node; default all four
}

func TestPreemption(t *testing.T) {
	whole := model.Request{TasksPerNode: 4}
	withQOS := func(j *model.Job, qos string) *model.Job { j.QOS = qos; return j }
	tests := []struct {
		name       string
		preemption string
		nodes      int
		running    []running
		job        *model.Job
		victims    []model.JobID // jobs whose gangs the plan preempts, in order
		allocs     int           // allocations preempted in total
		reason     string        // substring of the job's pending reason
	}{
		{
			name: "high preempts low", preemption: PreemptRequeue, nodes: 1,
			running: []running{{id: 90, qos: "low", nodes: []string{"a"}, started: time.Hour}},
			job:     withQOS(mkJob(1, whole, time.Hour), "high"),
			victims: []model.JobID{90}, allocs: 1, reason: "preempting job 90",
		},
		{
			name: "off by default", preemption: "", nodes: 1,
			running: []running{{id: 90, qos: "low", nodes: []string{"a"}, started: time.Hour}},
			job:     withQOS(mkJob(1, whole, time.Hour), "high"),
			reason:  "reserved",
		},
		{
			name: "normal preempts low", preemption: PreemptRequeue, nodes: 1,
			running: []running{{id: 90, qos: "low", nodes: []string{"a"}, started: time.Hour}},
			job:     mkJob(1, whole, time.Hour),
			victims: []model.JobID{90}, allocs: 1,
		},
		{
			name: "equal QOS never preempts", preemption: PreemptRequeue, nodes: 1,
			running: []running{{id: 90, qos: "normal", nodes: []string{"a"}, started: time.Hour}},
			job:     mkJob(1, whole, time.Hour),
			reason:  "reserved",
		},
		{
			name: "low never preempts", preemption: PreemptRequeue, nodes: 1,
			running: []running{{id: 90, qos: "low", nodes: []string{"a"}, started: time.Hour}},
			job:     withQOS(mkJob(1, whole, time.Hour), "low"),
			reason:  "reserved",
		},
		{
			name: "the cheapest victim: lowest QOS, then the most recently started", preemption: PreemptRequeue, nodes: 3,
			running: []running{
				{id: 90, qos: "low", nodes: []string{"a"}, started: 3 * time.Hour},
				{id: 91, qos: "low", nodes: []string{"b"}, started: time.Hour},
				{id: 92, qos: "normal", nodes: []string{"c"}, started: time.Minute},
			},
			job:     withQOS(mkJob(1, whole, time.Hour), "high"),
			victims: []model.JobID{91}, allocs: 1,
		},
		{
			name: "a gang is stopped whole", preemption: PreemptRequeue, nodes: 2,
			running: []running{{id: 90, qos: "low", nodes: []string{"a", "b"}, started: time.Hour}},
			job:     withQOS(mkJob(1, whole, time.Hour), "high"),
			victims: []model.JobID{90}, allocs: 2,
		},
		{
			name: "only as many victims as needed", preemption: PreemptRequeue, nodes: 3,
			running: []running{
				{id: 90, qos: "low", nodes: []string{"a"}, started: 3 * time.Hour},
				{id: 91, qos: "low", nodes: []string{"b"}, started: 2 * time.Hour},
				{id: 92, qos: "low", nodes: []string{"c"}, started: time.Hour},
			},
			job:     withQOS(mkJob(1, model.Request{Nodes: 2, TasksPerNode: 4}, time.Hour), "high"),
			victims: []model.JobID{92, 91}, allocs: 2,
		},
		{
			// Stopping 90 alone frees only half of a (93 keeps the rest),
			// so 91 must go; then 90 is not needed after all.
			name: "a victim that turns out not to be needed keeps running", preemption: PreemptRequeue, nodes: 2,
			running: []running{
				{id: 90, qos: "low", nodes: []string{"a"}, started: time.Minute, cores: []int{0, 1}},
				{id: 93, qos: "high", nodes: []string{"a"}, started: time.Hour, cores: []int{2, 3}},
				{id: 91, qos: "low", nodes: []string{"b"}, started: 2 * time.Hour},
			},
			job:     withQOS(mkJob(1, whole, time.Hour), "high"),
			victims: []model.JobID{91}, allocs: 1,
		},
		{
			name: "nothing is stopped when even stopping every lower gang is not enough", preemption: PreemptRequeue, nodes: 2,
			running: []running{
				{id: 90, qos: "low", nodes: []string{"a"}, started: time.Hour},
				{id: 91, qos: "high", nodes: []string{"b"}, started: time.Hour},
			},
			job:    withQOS(mkJob(1, model.Request{Nodes: 2, TasksPerNode: 4}, time.Hour), "high"),
			reason: "reserved",
		},
		{
			name: "a gang already stopping is waited for, not joined by another victim", preemption: PreemptRequeue, nodes: 2,
			running: []running{
				{id: 90, qos: "low", nodes: []string{"a"}, started: time.Hour, stopping: true},
				{id: 91, qos: "low", nodes: []string{"b"}, started: 2 * time.Hour},
			},
			job:    withQOS(mkJob(1, whole, time.Hour), "high"),
			reason: "reserved: expected to start at 2026-03-01T12:01:00Z on a",
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			cfg := cfgWith(PolicyDefault)
			cfg.Preemption = tc.preemption
			in := Input{Now: t0, Nodes: nodes(tc.nodes, small)}
			for _, r := range tc.running {
				cores := r.cores
				if cores == nil {
					cores = []int{0, 1, 2, 3}
				}
				j := withQOS(mkJob(r.id, model.Request{Nodes: len(r.nodes), TasksPerNode: len(cores)}, 10*time.Hour), r.qos)
				j.State = model.JobRunning
				in.Jobs = append(in.Jobs, j)
				start := t0.Add(-r.started)
				for rank, n := range r.nodes {
					in.Allocs = append(in.Allocs, &model.Alloc{ID: model.AllocID(fmt.Sprintf("%d.0.%d.1", r.id, rank)), Job: r.id, Rank: rank,
						Attempt: 1, State: model.AllocRunning, Created: start, Started: start, Deadline: start.Add(j.Walltime),
						StopRequested: r.stopping, Placement: model.Placement{Node: n, Cores: cores, NUMA: []int{0}}})
				}
			}
			in.Jobs = append(in.Jobs, tc.job)
			plan := Schedule(in, cfg)
			if len(plan.Starts) != 0 {
				t.Fatalf("started %v; a preempting job waits for its victims to stop", plan.Starts)
			}
			var got []model.JobID
			allocs := 0
			for _, p := range plan.Preemptions {
				got = append(got, p.Job)
				allocs += len(p.Allocs)
				if p.By != tc.job.ID || p.Attempt != 1 || !strings.Contains(p.Reason, "preempted by job 1") {
					t.Errorf("preemption %+v", p)
				}
			}
			if !slices.Equal(got, tc.victims) || allocs != tc.allocs {
				t.Errorf("preempted %v (%d allocations), want %v (%d)", got, allocs, tc.victims, tc.allocs)
			}
			if why := plan.Pending[tc.job.ID]; !strings.Contains(why, tc.reason) {
				t.Errorf("reason %q, want it to contain %q", why, tc.reason)
			}
			if len(tc.victims) > 0 {
				i := slices.IndexFunc(plan.Reservations, func(r model.Reservation) bool { return r.Job == tc.job.ID })
				if i < 0 || !plan.Reservations[i].At.Equal(t0.Add(cfg.StopGrace)) {
					t.Errorf("no reservation at the stop grace for the preempting job: %+v", plan.Reservations)
				}
			}
		})
	}
}

// TestPreemptionThenStart: once the victims are stopped (their allocations
// ended), the preempting job starts on the freed nodes.
func TestPreemptionThenStart(t *testing.T) {
	cfg := cfgWith(PolicyDefault)
	cfg.Preemption = PreemptRequeue
	low := mkJob(90, model.Request{Nodes: 1, TasksPerNode: 4}, 10*time.Hour)
	low.QOS, low.State = "low", model.JobRunning
	high := mkJob(1, model.Request{Nodes: 1, TasksPerNode: 4}, time.Hour)
	high.QOS = "high"
	start := t0.Add(-time.Hour)
	a := &model.Alloc{ID: "90.0.0.1", Job: 90, Attempt: 1, State: model.AllocRunning, Created: start, Started: start,
		Deadline: start.Add(low.Walltime), Placement: model.Placement{Node: "a", Cores: []int{0, 1, 2, 3}, NUMA: []int{0}}}
	in := Input{Now: t0, Nodes: nodes(1, small), Jobs: []*model.Job{low, high}, Allocs: []*model.Alloc{a}}
	plan := Schedule(in, cfg)
	if len(plan.Preemptions) != 1 {
		t.Fatalf("preemptions %v", plan.Preemptions)
	}
	// The master marks the gang stopping: the next cycle preempts nothing
	// more and keeps the reservation.
	a.StopRequested = true
	if p := Schedule(in, cfg); len(p.Preemptions) != 0 || len(p.Starts) != 0 {
		t.Fatalf("while stopping: %+v", p)
	}
	// The agent reports it ended: the job is requeued and the high job starts.
	a.State = model.AllocPreempted
	low.State = model.JobPending
	in.Now = t0.Add(30 * time.Second)
	plan = Schedule(in, cfg)
	if len(plan.Starts) != 1 || plan.Starts[0].Job != 1 {
		t.Fatalf("after the stop: starts %v, pending %v", plan.Starts, plan.Pending)
	}
	if err := CheckStart(in, plan.Starts[0]); err != nil {
		t.Fatal(err)
	}
}
