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

// nextCycle applies plan to in and draws the changes of the next cycle.
func nextCycle(t *rapid.T, in Input, plan model.Plan, id *model.JobID) Input {
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
	for _, a := range allocs {
		if rapid.IntRange(0, 9).Draw(t, "stop") == 0 {
			a.StopRequested = true // read afresh every call
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
