package fsm

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/raft"

	"vhpc/scheduler/model"
)

var t0 = time.Date(2026, 11, 1, 12, 0, 0, 0, time.UTC)

// harness applies entries to an FSM the way Raft would, with increasing
// indexes, and records the log so tests can replay it.
type harness struct {
	t   *testing.T
	f   *FSM
	idx uint64
	log [][]byte
}

func newHarness(t *testing.T) *harness {
	return &harness{t: t, f: New(slog.New(slog.NewTextHandler(io.Discard, nil)))}
}

// snapshotRestored persists a snapshot of h's FSM and restores it into a
// new harness, as a follower catching up from a snapshot would.
func (h *harness) snapshotRestored() *harness {
	h.t.Helper()
	snap, err := h.f.Snapshot()
	if err != nil {
		h.t.Fatal(err)
	}
	sink := &memSink{}
	if err := snap.Persist(sink); err != nil {
		h.t.Fatal(err)
	}
	restored := newHarness(h.t)
	if err := restored.f.Restore(io.NopCloser(bytes.NewReader(sink.Bytes()))); err != nil {
		h.t.Fatal(err)
	}
	return restored
}

// replayAndRestore checks that h's log replayed on a fresh FSM, and a
// snapshot of h restored into one, give h's state byte for byte; it
// returns the restored harness.
func (h *harness) replayAndRestore() *harness {
	h.t.Helper()
	replay := newHarness(h.t)
	for _, e := range h.log {
		replay.idx++
		replay.f.Apply(&raft.Log{Index: replay.idx, Type: raft.LogCommand, Data: e})
	}
	a := dumpJSON(h.t, h.f)
	if b := dumpJSON(h.t, replay.f); !bytes.Equal(a, b) {
		h.t.Fatalf("replay diverged:\n%s\n%s", a, b)
	}
	restored := h.snapshotRestored()
	if c := dumpJSON(h.t, restored.f); !bytes.Equal(a, c) {
		h.t.Fatalf("restore differs:\n%s\n%s", a, c)
	}
	return restored
}

func (h *harness) apply(typ EntryType, payload any) any {
	h.t.Helper()
	data, err := Encode(typ, payload)
	if err != nil {
		h.t.Fatal(err)
	}
	h.log = append(h.log, data)
	h.idx++
	return h.f.Apply(&raft.Log{Index: h.idx, Type: raft.LogCommand, Data: data})
}

func testNode(name string, cores int) model.Node {
	n := model.Node{Name: name, Hypervisor: "tcg", ScratchMiB: 100 << 10, NUMA: []model.NUMANode{{ID: 0, MemoryMiB: 16 << 10}}}
	for i := range cores {
		n.Cores = append(n.Cores, model.Core{ID: i, NUMA: 0, PhysicalCore: i})
	}
	return n
}

func testJob(token string, cores int) model.Job {
	return model.Job{
		Token: token, Name: "j", Department: "physics", User: "ada",
		Request:  model.Request{Nodes: 1, TasksPerNode: 1, CPUsPerTask: cores, MemoryMiB: 512, ScratchMiB: 1024},
		Walltime: time.Hour,
	}
}

func (h *harness) submit(jobs ...model.Job) []SubmitResult {
	h.t.Helper()
	out := h.apply(EntrySubmitJobs, &SubmitJobs{Time: t0, Jobs: jobs})
	res, ok := out.([]SubmitResult)
	if !ok {
		h.t.Fatalf("submit returned %T %v", out, out)
	}
	return res
}

func (h *harness) start(job model.JobID, node string, cores ...int) PlanResult {
	h.t.Helper()
	s := model.Start{Job: job, Placements: []model.Placement{{Node: node, Cores: cores, NUMA: []int{0}, MemoryMiB: 512, Scratch: 1024}}}
	return h.apply(EntryApplyPlan, &ApplyPlan{Time: t0.Add(time.Minute), Starts: []model.Start{s}}).(PlanResult)
}

func (h *harness) report(id model.AllocID, attempt uint64, st model.AllocState, exit int) any {
	h.t.Helper()
	return h.apply(EntryUpdateAlloc, &UpdateAlloc{Time: t0.Add(2 * time.Minute), ID: id, Attempt: attempt, State: st, ExitCode: exit})
}

func (h *harness) job(id model.JobID) *model.Job { return h.f.Store().Snapshot().Job(id) }

func TestSubmitDeduplicatesTokensInsideApply(t *testing.T) {
	h := newHarness(t)
	res := h.submit(testJob("a", 1), testJob("b", 1), testJob("a", 1))
	want := []SubmitResult{{ID: 1}, {ID: 2}, {ID: 1, Duplicate: true}}
	for i := range want {
		if res[i] != want[i] {
			t.Errorf("result %d = %+v, want %+v", i, res[i], want[i])
		}
	}
	if again := h.submit(testJob("b", 1)); again[0] != (SubmitResult{ID: 2, Duplicate: true}) {
		t.Errorf("retried token in a later entry = %+v, want job 2 again", again[0])
	}
	if n := h.f.Store().Snapshot().JobCount(); n != 2 {
		t.Errorf("store holds %d jobs, want 2", n)
	}
	if j := h.job(1); j.State != model.JobPending || !j.SubmitTime.Equal(t0) {
		t.Errorf("job 1 = %s at %v, want pending at the entry's time", j.State, j.SubmitTime)
	}
}

func TestJobLifecycle(t *testing.T) {
	cases := []struct {
		name      string
		retries   int
		reports   []model.AllocState
		exit      int
		wantState model.JobState
		wantAlloc int // allocations created in total
	}{
		{"completes", 0, []model.AllocState{model.AllocRunning, model.AllocCompleted}, 0, model.JobCompleted, 1},
		{"fails with its exit code", 0, []model.AllocState{model.AllocRunning, model.AllocFailed}, 3, model.JobFailed, 1},
		{"times out", 0, []model.AllocState{model.AllocRunning, model.AllocTimedOut}, 0, model.JobTimedOut, 1},
		{"failure with retries requeues", 1, []model.AllocState{model.AllocRunning, model.AllocFailed}, 3, model.JobPending, 1},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			h := newHarness(t)
			h.apply(EntryRegisterNode, &RegisterNode{Time: t0, Node: testNode("n1", 4)})
			j := testJob("t", 2)
			j.Retries = c.retries
			h.submit(j)
			if r := h.start(1, "n1", 0, 1); r.Applied != 1 {
				t.Fatalf("plan not applied: %+v", r)
			}
			id := model.AllocID("1.0.0.1")
			for _, st := range c.reports {
				if out := h.report(id, 1, st, c.exit); isErr(out) {
					t.Fatalf("report %s: %v", st, out)
				}
			}
			got := h.job(1)
			if got.State != c.wantState {
				t.Fatalf("job state %s (%s), want %s", got.State, got.Reason, c.wantState)
			}
			if c.wantState == model.JobFailed && got.ExitCode != c.exit {
				t.Errorf("exit code %d, want %d", got.ExitCode, c.exit)
			}
			if runs := h.f.Store().Snapshot().History()["ada"]; (c.wantState == model.JobCompleted) != (len(runs) == 1) {
				t.Errorf("runtime history %v after a job that %s", runs, c.wantState)
			}
			if c.wantState == model.JobPending {
				// The requeued job starts again with a new attempt; the old
				// attempt's late report is fenced off.
				if r := h.start(1, "n1", 0, 1); r.Applied != 1 {
					t.Fatalf("restart not applied: %+v", r)
				}
				if h.f.Store().Snapshot().Alloc("1.0.0.2") == nil {
					t.Fatal("restart did not create attempt 2")
				}
				if out := h.report("1.0.0.2", 1, model.AllocRunning, 0); !errors.Is(out.(error), ErrStaleAttempt) {
					t.Errorf("report with attempt 1 for attempt 2 = %v, want ErrStaleAttempt", out)
				}
			}
		})
	}
}

func isErr(v any) bool { _, ok := v.(error); return ok }

func TestApplyPlanRejectsDoubleBooking(t *testing.T) {
	h := newHarness(t)
	h.apply(EntryRegisterNode, &RegisterNode{Time: t0, Node: testNode("n1", 4)})
	h.submit(testJob("a", 2), testJob("b", 2))
	if r := h.start(1, "n1", 0, 1); r.Applied != 1 {
		t.Fatalf("first start: %+v", r)
	}
	r := h.start(2, "n1", 1, 2)
	if r.Applied != 0 || len(r.Rejected) != 1 {
		t.Fatalf("overlapping start applied: %+v", r)
	}
	if st := h.job(2).State; st != model.JobPending {
		t.Errorf("job 2 is %s after a rejected start, want pending", st)
	}
	if r := h.start(1, "n1", 2, 3); r.Applied != 0 {
		t.Errorf("second start of a scheduled job applied: %+v", r)
	}
}

func TestCancelStopsRunningAllocationAndKeepsResourcesUntilReported(t *testing.T) {
	h := newHarness(t)
	h.apply(EntryRegisterNode, &RegisterNode{Time: t0, Node: testNode("n1", 2)})
	h.submit(testJob("a", 2), testJob("b", 2))
	h.start(1, "n1", 0, 1)
	h.report("1.0.0.1", 1, model.AllocRunning, 0)
	h.apply(EntryCancelJob, &CancelJob{Time: t0.Add(3 * time.Minute), ID: 1, Reason: "cancelled by user"})
	if st := h.job(1).State; st != model.JobCancelled {
		t.Fatalf("job 1 is %s, want cancelled", st)
	}
	a := h.f.Store().Snapshot().Alloc("1.0.0.1")
	if !a.StopRequested || a.State.Terminal() {
		t.Fatalf("alloc after cancel: stop=%v state=%s; want a stop request and resources still held", a.StopRequested, a.State)
	}
	if r := h.start(2, "n1", 0, 1); r.Applied != 0 {
		t.Fatalf("cores of a guest still being destroyed were reused: %+v", r)
	}
	h.report("1.0.0.1", 1, model.AllocCancelled, 0)
	if r := h.start(2, "n1", 0, 1); r.Applied != 1 {
		t.Fatalf("cores not freed after the agent confirmed: %+v", r)
	}
	if st := h.job(1).State; st != model.JobCancelled {
		t.Errorf("job 1 is %s after the final report, want cancelled", st)
	}
}

func TestGangFailureStopsSiblings(t *testing.T) {
	h := newHarness(t)
	h.apply(EntryRegisterNode, &RegisterNode{Time: t0, Node: testNode("n1", 2)})
	h.apply(EntryRegisterNode, &RegisterNode{Time: t0, Node: testNode("n2", 2)})
	j := testJob("g", 2)
	j.Request.Nodes = 2
	h.submit(j)
	p := func(n string) model.Placement {
		return model.Placement{Node: n, Cores: []int{0, 1}, NUMA: []int{0}, MemoryMiB: 512, Scratch: 1024}
	}
	gangStart := model.Start{Job: 1, Placements: []model.Placement{p("n1"), p("n2")}}
	if r := h.apply(EntryApplyPlan, &ApplyPlan{Time: t0, Starts: []model.Start{gangStart}}).(PlanResult); r.Applied != 0 {
		t.Fatalf("a gang start without a launcher secret was applied: %+v", r)
	}
	gangStart.NetSecret = strings.Repeat("ab", 32)
	r := h.apply(EntryApplyPlan, &ApplyPlan{Time: t0, Starts: []model.Start{gangStart}}).(PlanResult)
	if r.Applied != 1 {
		t.Fatalf("gang start: %+v", r)
	}
	for _, id := range []model.AllocID{"1.0.0.1", "1.0.1.1"} {
		if a := h.f.Store().Snapshot().Alloc(id); a.NetSecret != gangStart.NetSecret {
			t.Fatalf("allocation %s has secret %q, want the plan's", id, a.NetSecret)
		}
	}
	h.report("1.0.0.1", 1, model.AllocRunning, 0)
	h.report("1.0.1.1", 1, model.AllocRunning, 0)
	h.report("1.0.1.1", 1, model.AllocFailed, 7)
	if a := h.f.Store().Snapshot().Alloc("1.0.0.1"); !a.StopRequested {
		t.Fatal("rank 0 was not asked to stop after rank 1 failed")
	}
	if st := h.job(1).State; st.Terminal() {
		t.Fatalf("job ended (%s) before every rank reported", st)
	}
	h.report("1.0.0.1", 1, model.AllocCancelled, 0)
	got := h.job(1)
	if got.State != model.JobFailed || got.ExitCode != 7 {
		t.Errorf("gang ended %s exit %d (%s), want failed exit 7", got.State, got.ExitCode, got.Reason)
	}
}

func TestNodeDownLosesAllocationsAndRequeues(t *testing.T) {
	h := newHarness(t)
	h.apply(EntryRegisterNode, &RegisterNode{Time: t0, Node: testNode("n1", 2)})
	j := testJob("a", 2)
	j.Retries = 2
	h.submit(j)
	h.start(1, "n1", 0, 1)
	h.report("1.0.0.1", 1, model.AllocRunning, 0)
	h.apply(EntrySetNodeState, &SetNodeState{Time: t0.Add(time.Hour), Name: "n1", State: model.NodeDown, Reason: "missed lease"})
	if a := h.f.Store().Snapshot().Alloc("1.0.0.1"); a.State != model.AllocLost {
		t.Fatalf("alloc on a down node is %s, want lost", a.State)
	}
	got := h.job(1)
	if got.State != model.JobPending || got.Restarts != 1 {
		t.Fatalf("job after node loss: %s restarts %d, want pending with 1 restart", got.State, got.Restarts)
	}
	usage, _ := h.f.Store().Snapshot().Usage()
	if usage["physics"] <= 0 {
		t.Errorf("usage of the lost hour was not charged: %v", usage)
	}
}

func TestSnapshotRestoreAndDeterminism(t *testing.T) {
	h := newHarness(t)
	h.apply(EntryRegisterNode, &RegisterNode{Time: t0, Node: testNode("n1", 4)})
	h.submit(testJob("a", 2), testJob("b", 2), testJob("c", 1))
	h.start(1, "n1", 0, 1)
	h.report("1.0.0.1", 1, model.AllocRunning, 0)
	h.report("1.0.0.1", 1, model.AllocCompleted, 0)
	h.apply(EntryCancelJob, &CancelJob{Time: t0, ID: 3, Reason: "x"})

	// Replaying the same log on a fresh FSM gives the same state.
	replay := newHarness(t)
	for _, e := range h.log {
		replay.idx++
		replay.f.Apply(&raft.Log{Index: replay.idx, Type: raft.LogCommand, Data: e})
	}
	a, b := dumpJSON(t, h.f), dumpJSON(t, replay.f)
	if !bytes.Equal(a, b) {
		t.Fatalf("replay diverged:\n%s\n%s", a, b)
	}

	// Snapshot + Restore round-trips, and ids continue where they left off.
	restored := h.snapshotRestored()
	if c := dumpJSON(t, restored.f); !bytes.Equal(a, c) {
		t.Fatalf("restore differs:\n%s\n%s", a, c)
	}
	if res := restored.submit(testJob("a", 1), testJob("d", 1)); res[0] != (SubmitResult{ID: 1, Duplicate: true}) || res[1].ID != 4 {
		t.Errorf("after restore: %+v, want token a -> job 1 and the next id 4", res)
	}
}

func dumpJSON(t *testing.T, f *FSM) []byte {
	t.Helper()
	d := f.Store().Snapshot().Dump()
	d.Index = 0
	b, err := json.Marshal(d)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

type memSink struct{ bytes.Buffer }

func (m *memSink) ID() string    { return "mem" }
func (m *memSink) Cancel() error { return nil }
func (m *memSink) Close() error  { return nil }

func TestPreemptionStopsTheGangAndRequeuesWithoutARetry(t *testing.T) {
	h := newHarness(t)
	h.apply(EntryRegisterNode, &RegisterNode{Time: t0, Node: testNode("n1", 2)})
	low, high := testJob("low", 2), testJob("high", 2)
	low.QOS, high.QOS = "low", "high"
	h.submit(low, high)
	h.start(1, "n1", 0, 1)
	h.report("1.0.0.1", 1, model.AllocRunning, 0)
	preempt := func(p model.Preemption) PlanResult {
		t.Helper()
		return h.apply(EntryApplyPlan, &ApplyPlan{Time: t0.Add(3 * time.Minute), Preemptions: []model.Preemption{p}}).(PlanResult)
	}
	p := model.Preemption{Job: 1, Attempt: 1, Allocs: []model.AllocID{"1.0.0.1"}, By: 2, Reason: "preempted by job 2 (QOS high over low)"}

	for _, bad := range []model.Preemption{
		{Job: 1, Attempt: 2, Allocs: p.Allocs, By: 2},                   // an attempt that does not exist
		{Job: 1, Attempt: 1, Allocs: []model.AllocID{"9.0.0.1"}, By: 2}, // no such allocation
		{Job: 1, Attempt: 1, Allocs: p.Allocs, By: 1},                   // the preempting job is not pending
		{Job: 1, Attempt: 1, By: 2},                                     // names nothing
	} {
		if r := preempt(bad); r.Preempted != 0 || len(r.Rejected) != 1 {
			t.Errorf("preemption %+v applied: %+v", bad, r)
		}
	}
	if a := h.f.Store().Snapshot().Alloc("1.0.0.1"); a.StopRequested {
		t.Fatal("a rejected preemption asked the agent to stop")
	}

	if r := preempt(p); r.Preempted != 1 {
		t.Fatalf("preemption not applied: %+v", r)
	}
	a := h.f.Store().Snapshot().Alloc("1.0.0.1")
	if !a.StopRequested || !a.StopAsPreempted || a.State.Terminal() {
		t.Fatalf("alloc after preemption: %+v; want a stop request, resources still held", a)
	}
	if r := preempt(p); r.Preempted != 0 {
		t.Errorf("a gang already stopping was preempted again: %+v", r)
	}
	if r := h.start(2, "n1", 0, 1); r.Applied != 0 {
		t.Fatalf("cores of the guest being stopped were reused: %+v", r)
	}
	h.report("1.0.0.1", 1, model.AllocCancelled, 0) // the agent stopped it
	if a := h.f.Store().Snapshot().Alloc("1.0.0.1"); a.State != model.AllocPreempted {
		t.Fatalf("alloc ended %s, want preempted", a.State)
	}
	got := h.job(1)
	if got.State != model.JobPending || got.Restarts != 0 || got.Retries != 0 {
		t.Fatalf("preempted job: %s restarts %d (%s); want pending, no retry used", got.State, got.Restarts, got.Reason)
	}
	if want := "requeued after attempt 1: preempted on n1: preempted by job 2"; !strings.Contains(got.Reason, want) {
		t.Errorf("reason %q, want it to contain %q", got.Reason, want)
	}
	if r := h.start(2, "n1", 0, 1); r.Applied != 1 {
		t.Fatalf("the preempting job could not start on the freed cores: %+v", r)
	}
}

func TestArrayTasksAreRetriedAndPreemptedTasksRunAgain(t *testing.T) {
	h := newHarness(t)
	h.apply(EntryRegisterNode, &RegisterNode{Time: t0, Node: testNode("n1", 4)})
	arr := testJob("frames", 1)
	arr.Retries = 1
	arr.QOS = "low"
	arr.Array = &model.Array{First: 1, Last: 3, Step: 1, Chunk: 1}
	urgent := testJob("urgent", 1)
	urgent.QOS = "high"
	h.submit(arr, urgent)
	startTask := func(task int64, core int) PlanResult {
		t.Helper()
		s := model.Start{Job: 1, Task: task, Placements: []model.Placement{{Node: "n1", Cores: []int{core}, NUMA: []int{0}, MemoryMiB: 512, Scratch: 1024}}}
		return h.apply(EntryApplyPlan, &ApplyPlan{Time: t0.Add(time.Minute), Starts: []model.Start{s}}).(PlanResult)
	}
	for task := range int64(3) {
		if r := startTask(task, int(task)); r.Applied != 1 {
			t.Fatalf("start task %d: %+v", task, r)
		}
	}
	// Task 0 fails once: it has a retry left, so it waits to run again.
	h.report("1.0.0.1", 1, model.AllocFailed, 2)
	j := h.job(1)
	if !slices.Equal(j.RetryTasks, []int64{0}) || j.TaskRestarts[0] != 1 || j.TasksFailed != 0 {
		t.Fatalf("after a failure with a retry left: retry %v restarts %v failed %d", j.RetryTasks, j.TaskRestarts, j.TasksFailed)
	}
	if r := startTask(1, 3); r.Applied != 0 {
		t.Fatalf("task 1 started twice: %+v", r)
	}
	if r := startTask(0, 0); r.Applied != 1 || h.f.Store().Snapshot().Alloc("1.0.0.2") == nil {
		t.Fatalf("retry of task 0 not started as attempt 2: %+v", r)
	}
	if j := h.job(1); len(j.RetryTasks) != 0 {
		t.Fatalf("task 0 still waits after its retry started: %v", j.RetryTasks)
	}
	// Task 1 is preempted: it runs again without using its retry.
	p := model.Preemption{Job: 1, Task: 1, Attempt: 1, Allocs: []model.AllocID{"1.1.0.1"}, By: 2, Reason: "preempted by job 2"}
	if r := h.apply(EntryApplyPlan, &ApplyPlan{Time: t0.Add(2 * time.Minute), Preemptions: []model.Preemption{p}}).(PlanResult); r.Preempted != 1 {
		t.Fatalf("preemption of an array task: %+v", r)
	}
	h.report("1.1.0.1", 1, model.AllocCancelled, 0)
	if j := h.job(1); !slices.Equal(j.RetryTasks, []int64{1}) || j.TaskRestarts[1] != 0 {
		t.Fatalf("after preemption: retry %v restarts %v", j.RetryTasks, j.TaskRestarts)
	}
	// Task 0 fails again (no retry left), tasks 1 and 2 complete.
	h.report("1.0.0.2", 2, model.AllocFailed, 2)
	startTask(1, 1)
	h.report("1.1.0.2", 2, model.AllocCompleted, 0)
	h.report("1.2.0.1", 1, model.AllocCompleted, 0)
	j = h.job(1)
	if j.State != model.JobFailed || j.TasksDone != 2 || j.TasksFailed != 1 {
		t.Fatalf("array ended %s with %d done, %d failed (%s); want failed, 2 done, 1 failed", j.State, j.TasksDone, j.TasksFailed, j.Reason)
	}
}

func TestAnArrayWithTasksLeftMayPreempt(t *testing.T) {
	h := newHarness(t)
	h.apply(EntryRegisterNode, &RegisterNode{Time: t0, Node: testNode("n1", 2)})
	low, frames := testJob("low", 1), testJob("frames", 1)
	low.QOS, frames.QOS = "low", "high"
	frames.Array = &model.Array{First: 1, Last: 2, Step: 1, Chunk: 1}
	h.submit(low, frames)
	h.start(1, "n1", 0)
	s := model.Start{Job: 2, Task: 0, Placements: []model.Placement{{Node: "n1", Cores: []int{1}, NUMA: []int{0}, MemoryMiB: 512, Scratch: 1024}}}
	if r := h.apply(EntryApplyPlan, &ApplyPlan{Time: t0, Starts: []model.Start{s}}).(PlanResult); r.Applied != 1 {
		t.Fatalf("array task 0: %+v", r)
	}
	p := model.Preemption{Job: 1, Attempt: 1, Allocs: []model.AllocID{"1.0.0.1"}, By: 2, Reason: "preempted by job 2"}
	if r := h.apply(EntryApplyPlan, &ApplyPlan{Time: t0, Preemptions: []model.Preemption{p}}).(PlanResult); r.Preempted != 1 {
		t.Fatalf("an array with task 1 still to start could not preempt: %+v", r)
	}
}

// TestSpeculativeStartMarksAllocations: a start the core made
// speculatively (core.Config.SpeculativeBackfill) marks its allocations,
// which is how a later cycle knows it may preempt them; a plain start
// does not.
func TestSpeculativeStartMarksAllocations(t *testing.T) {
	h := newHarness(t)
	h.apply(EntryRegisterNode, &RegisterNode{Time: t0, Node: testNode("n1", 4)})
	h.submit(testJob("spec", 2), testJob("plain", 2))
	p := func(cores ...int) []model.Placement {
		return []model.Placement{{Node: "n1", Cores: cores, NUMA: []int{0}, MemoryMiB: 512, Scratch: 1024}}
	}
	r := h.apply(EntryApplyPlan, &ApplyPlan{Time: t0, Starts: []model.Start{
		{Job: 1, Placements: p(0, 1), Speculative: true}, {Job: 2, Placements: p(2, 3)}}}).(PlanResult)
	if r.Applied != 2 {
		t.Fatalf("starts: %+v", r)
	}
	for id, want := range map[model.AllocID]bool{"1.0.0.1": true, "2.0.0.1": false} {
		if a := h.f.Store().Snapshot().Alloc(id); a == nil || a.Speculative != want {
			t.Fatalf("allocation %s: %+v, want speculative %v", id, a, want)
		}
	}
}
