package server

import (
	"fmt"
	"reflect"
	"testing"
	"time"

	"vhpc/api"
	"vhpc/scheduler/core"
	"vhpc/scheduler/model"
)

// TestLoopPlannerMatchesSchedule holds the scheduling loop's kept Planner
// (scheduleLoop) to its contract on real state: over snapshots of a
// member whose state moves (submissions of several shapes, the loop's
// own starts, agents reporting runs and ends, cancellations, a node
// joining), one Planner fed every snapshot in turn plans exactly what
// core.Schedule plans on the same input. A node or allocation changed in
// place by the FSM would show as a difference here.
func TestLoopPlannerMatchesSchedule(t *testing.T) {
	ts := startServer(t, t.TempDir())
	ctx := ctxT(t)
	registerNode(t, ts, "n1", 8)
	registerNode(t, ts, "n2", 4)
	cfg := ts.cfg.Scheduler
	var planner core.Planner
	check := func(step string) {
		t.Helper()
		in := ts.coreInput(ts.fsm.Store().Snapshot(), ts.cfg.Now().UTC())
		kept := planner.Schedule(in, cfg)
		fresh := core.Schedule(in, cfg)
		if !reflect.DeepEqual(kept, fresh) {
			t.Fatalf("%s: the kept Planner plans\n%+v\ncore.Schedule plans\n%+v", step, kept, fresh)
		}
	}
	shapes := []string{
		"resources: {cpusPerTask: 1, memory: 256MiB}\nwalltime: 10m\n",
		"resources: {cpusPerTask: 4, memory: 1GiB}\nwalltime: 1h\n",
		"resources: {cpusPerTask: 8, memory: 2GiB}\nwalltime: 2h\n",
		"resources: {nodes: 2, tasksPerNode: 1, cpusPerTask: 2, memory: 512MiB}\nwalltime: 30m\n",
	}
	var ids []uint64
	for i := range 24 {
		spec := fmt.Sprintf("name: p%d\n%scommand: [/bin/true]\n", i, shapes[i%len(shapes)])
		r, err := ts.jobs.Submit(ctx, &api.SubmitRequest{ClientToken: fmt.Sprintf("planner-test-%04d", i), Spec: []byte(spec), User: fmt.Sprintf("u%d", i%3)})
		if err != nil {
			t.Fatal(err)
		}
		ids = append(ids, r.GetJobId())
		check(fmt.Sprintf("after submission %d", i))
	}
	// Play the agents: run and end what the loop started, cancel some
	// jobs, and let a third node join, checking after every change.
	for round := range 12 {
		time.Sleep(30 * time.Millisecond) // the loop starts what fits
		for a := range ts.fsm.Store().Snapshot().LiveAllocs() {
			state := model.AllocRunning
			if a.State == model.AllocRunning {
				state = model.AllocCompleted
			}
			_, err := ts.node.UpdateAllocation(ctx, &api.UpdateAllocationRequest{AllocId: string(a.ID), Node: a.Placement.Node, Attempt: a.Attempt, State: string(state)})
			if err != nil {
				t.Fatalf("round %d: %s -> %s: %v", round, a.ID, state, err)
			}
			check(fmt.Sprintf("round %d, %s %s", round, a.ID, state))
		}
		if round%3 == 0 && len(ids) > round {
			if _, err := ts.jobs.Cancel(ctx, &api.CancelJobRequest{Id: ids[len(ids)-1-round]}); err != nil {
				t.Fatal(err)
			}
			check(fmt.Sprintf("round %d, cancel", round))
		}
		if round == 5 {
			registerNode(t, ts, "n3", 16)
			check("after n3 joined")
		}
	}
	snap := ts.fsm.Store().Snapshot()
	ended := 0
	for _, id := range ids {
		if j := snap.Job(model.JobID(id)); j != nil && j.State == model.JobCompleted {
			ended++
		}
	}
	if ended < len(ids)/2 {
		t.Fatalf("only %d of %d jobs completed: the state barely moved", ended, len(ids))
	}
}
