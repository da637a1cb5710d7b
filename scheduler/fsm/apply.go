package fsm

import (
	"errors"
	"fmt"
	"slices"
	"time"

	"vhpc/scheduler/core"
	"vhpc/scheduler/model"
	"vhpc/scheduler/state"
)

// Errors Apply returns as values; the server maps them to gRPC codes.
var (
	ErrNotFound     = errors.New("not found")
	ErrStaleAttempt = errors.New("stale attempt")
	ErrConflict     = errors.New("conflict")
)

func applySubmit(txn *state.Txn, e *SubmitJobs) []SubmitResult {
	res := make([]SubmitResult, len(e.Jobs))
	for i := range e.Jobs {
		j := &e.Jobs[i]
		if j.Token != "" {
			if id, ok := txn.JobByToken(j.Token); ok {
				res[i] = SubmitResult{ID: id, Duplicate: true}
				continue
			}
		}
		j.State = model.JobPending
		j.SubmitTime = e.Time
		j.Reason = "waiting for the scheduler"
		res[i] = SubmitResult{ID: txn.AddJob(j)}
	}
	return res
}

func applyCancel(txn *state.Txn, e *CancelJob) any {
	old := txn.Job(e.ID)
	if old == nil {
		return fmt.Errorf("job %d: %w", e.ID, ErrNotFound)
	}
	if old.State.Terminal() {
		return old.Copy() // idempotent: cancelling an ended job changes nothing
	}
	j := old.Copy()
	j.State = model.JobCancelled
	j.Reason = e.Reason
	j.EndTime = e.Time
	txn.PutJob(j)
	stopLiveAllocs(txn, j.ID, -1, "job cancelled")
	return j
}

// stopLiveAllocs asks agents to stop the job's live allocations (of one
// task, or all tasks when task < 0). Allocations never picked up by an
// agent (still pending) end at once.
func stopLiveAllocs(txn *state.Txn, job model.JobID, task int64, reason string) {
	for a := range txn.Read().JobAllocs(job) {
		if a.State.Terminal() || a.StopRequested || (task >= 0 && a.Task != task) {
			continue
		}
		c := a.Copy()
		c.StopRequested = true
		c.Reason = reason
		txn.PutAlloc(c)
	}
}

func applyRegister(txn *state.Txn, e *RegisterNode) any {
	n := e.Node
	c := (&n).Copy()
	c.LastSeen = e.Time
	old := txn.Node(n.Name)
	c.AcceptanceRun, c.Acceptance, c.AcceptanceDrain = nil, nil, ""
	for i := range c.GPUs {
		c.GPUs[i].Health, c.GPUs[i].Rejected = "", "" // the master owns health and acceptance: keep what it recorded
		if old == nil {
			continue
		}
		for _, og := range old.GPUs {
			if og.PCIAddress == c.GPUs[i].PCIAddress {
				c.GPUs[i].Health, c.GPUs[i].Rejected = og.Health, og.Rejected
			}
		}
	}
	if old != nil {
		o := old.Copy()
		c.AcceptanceRun, c.Acceptance, c.AcceptanceDrain = o.AcceptanceRun, o.Acceptance, o.AcceptanceDrain
	}
	if old != nil && old.State == model.NodeDraining {
		c.State, c.Reason = old.State, old.Reason // an admin's drain survives re-registration
	} else {
		c.State, c.Reason = model.NodeReady, ""
	}
	holdAcceptanceDrain(c)
	txn.PutNode(c)
	return c
}

func applyNodeState(txn *state.Txn, e *SetNodeState) any {
	old := txn.Node(e.Name)
	if old == nil {
		return fmt.Errorf("node %q: %w", e.Name, ErrNotFound)
	}
	n := old.Copy()
	n.State, n.Reason = e.State, e.Reason
	holdAcceptanceDrain(n)
	txn.PutNode(n)
	if e.State != model.NodeDown {
		return n
	}
	for a := range txn.Read().LiveAllocs() {
		if a.Placement.Node != e.Name {
			continue
		}
		endAlloc(txn, a, model.AllocLost, -1, "node "+e.Name+" down: "+e.Reason, e.Time)
	}
	return n
}

func applyGPUHealth(txn *state.Txn, e *GPUHealth) any {
	old := txn.Node(e.Node)
	if old == nil {
		return fmt.Errorf("node %q: %w", e.Node, ErrNotFound)
	}
	n := old.Copy()
	i := slices.IndexFunc(n.GPUs, func(g model.GPU) bool { return g.PCIAddress == e.PCI })
	if i < 0 {
		return fmt.Errorf("node %s has no GPU %s: %w", e.Node, e.PCI, ErrNotFound)
	}
	n.GPUs[i].Health = e.Reason
	txn.PutNode(n)
	if e.Reason == "" {
		return n
	}
	for a := range txn.Read().LiveAllocs() {
		if a.Placement.Node != e.Node || !slices.Contains(a.Placement.GPUs, e.PCI) || a.StopRequested {
			continue
		}
		c := a.Copy()
		c.StopRequested, c.StopAsLost = true, true
		c.Reason = "GPU " + e.PCI + " taken out of service: " + e.Reason
		txn.PutAlloc(c)
	}
	return n
}

func applyPlan(txn *state.Txn, e *ApplyPlan) PlanResult {
	var res PlanResult
	for _, p := range e.Preemptions {
		if err := applyPreemption(txn, p); err != nil {
			res.Rejected = append(res.Rejected, err.Error())
			continue
		}
		res.Preempted++
	}
	in := CoreInput(txn.Read(), e.Time)
	for _, s := range e.Starts {
		j := txn.Job(s.Job)
		if err := checkPlanStart(j, s); err != nil {
			res.Rejected = append(res.Rejected, err.Error())
			continue
		}
		if err := checkStart(in, s); err != nil {
			res.Rejected = append(res.Rejected, fmt.Sprintf("job %d: %v", s.Job, err))
			continue
		}
		attempt := nextAttempt(txn, s.Job, s.Task)
		for rank, p := range s.Placements {
			a := &model.Alloc{
				ID:          state.AllocIDFor(s.Job, s.Task, rank, attempt),
				Job:         s.Job,
				Task:        s.Task,
				Rank:        rank,
				Attempt:     attempt,
				Placement:   p.Copy(),
				State:       model.AllocPending,
				Created:     e.Time,
				Deadline:    e.Time.Add(j.Walltime),
				NetSecret:   s.NetSecret,
				Speculative: s.Speculative,
			}
			txn.PutAlloc(a)
			in.Allocs = append(in.Allocs, a)
		}
		c := j.Copy()
		if c.Array != nil {
			if i := slices.Index(c.RetryTasks, s.Task); i >= 0 {
				c.RetryTasks = slices.Delete(c.RetryTasks, i, i+1)
			} else {
				c.NextTask = max(c.NextTask, s.Task+1)
			}
			if c.State == model.JobPending {
				c.State = model.JobScheduled
			}
		} else {
			c.State = model.JobScheduled
			c.Attempt = attempt
		}
		c.Reason = ""
		txn.PutJob(c)
		replaceJob(&in, c)
		res.Applied++
	}
	return res
}

// applyPreemption asks the agents to stop every allocation of one gang so
// that job p.By can start; their final report requeues the job (see
// applyAllocUpdate and settleAttempt). A preemption planned on an older
// snapshot (the gang ended or is already stopping, the preempting job is
// gone or started) changes nothing.
func applyPreemption(txn *state.Txn, p model.Preemption) error {
	by := txn.Job(p.By)
	if by == nil || by.State.Terminal() || (by.Array == nil && by.State != model.JobPending) || (by.Array != nil && by.TasksLeft() == 0) {
		return fmt.Errorf("preemption of job %d for job %d: the preempting job has nothing left to start: %w", p.Job, p.By, ErrConflict)
	}
	if len(p.Allocs) == 0 {
		return fmt.Errorf("preemption of job %d names no allocation: %w", p.Job, ErrConflict)
	}
	if j := txn.Job(p.Job); j == nil || j.State.Terminal() {
		return fmt.Errorf("preemption of job %d: the job has ended: %w", p.Job, ErrConflict)
	}
	var stop []*model.Alloc
	for _, id := range p.Allocs {
		a := txn.Alloc(id)
		switch {
		case a == nil:
			return fmt.Errorf("preemption of job %d: allocation %s: %w", p.Job, id, ErrNotFound)
		case a.Job != p.Job || a.Task != p.Task || a.Attempt != p.Attempt:
			return fmt.Errorf("preemption of job %d: allocation %s is not of task %d attempt %d: %w", p.Job, id, p.Task, p.Attempt, ErrConflict)
		case a.State.Terminal() || a.StopRequested:
			return fmt.Errorf("preemption of job %d: allocation %s is already %s: %w", p.Job, id, stopState(a), ErrConflict)
		}
		stop = append(stop, a)
	}
	for _, a := range stop {
		c := a.Copy()
		c.StopRequested, c.StopAsPreempted = true, true
		c.Reason = p.Reason
		txn.PutAlloc(c)
	}
	return nil
}

func stopState(a *model.Alloc) string {
	if a.State.Terminal() {
		return string(a.State)
	}
	return "stopping"
}

// checkPlanStart rejects starts for jobs that are gone, ended or already
// started: the plan was computed on an older snapshot.
func checkPlanStart(j *model.Job, s model.Start) error {
	switch {
	case j == nil:
		return fmt.Errorf("job %d: %w", s.Job, ErrNotFound)
	case j.State.Terminal():
		return fmt.Errorf("job %d is %s: %w", s.Job, j.State, ErrConflict)
	case j.Array == nil && j.State != model.JobPending:
		return fmt.Errorf("job %d is already %s: %w", s.Job, j.State, ErrConflict)
	case j.Array == nil && s.Task != 0:
		return fmt.Errorf("job %d is not an array but the plan starts task %d: %w", s.Job, s.Task, ErrConflict)
	case j.Array != nil && !j.TaskPending(s.Task):
		return fmt.Errorf("job %d has no pending task %d: %w", s.Job, s.Task, ErrConflict)
	case j.Networked() && len(s.NetSecret) < 32:
		return fmt.Errorf("job %d gets a network but the plan brings no launcher secret: %w", s.Job, ErrConflict)
	case !j.Networked() && s.NetSecret != "":
		return fmt.Errorf("job %d gets no network but the plan brings a launcher secret: %w", s.Job, ErrConflict)
	case len(s.Placements) != j.Request.Nodes:
		return fmt.Errorf("job %d needs %d nodes, the plan gives %d: %w", s.Job, j.Request.Nodes, len(s.Placements), ErrConflict)
	}
	return nil
}

// nextAttempt is one more than the highest attempt of the job's task so
// far; a task started again after a requeue gets a fresh attempt number,
// which fences reports from the old one.
func nextAttempt(txn *state.Txn, job model.JobID, task int64) uint64 {
	var hi uint64
	for a := range txn.Read().JobAllocs(job) {
		if a.Task == task {
			hi = max(hi, a.Attempt)
		}
	}
	return hi + 1
}

func replaceJob(in *coreInput, j *model.Job) {
	for i := range in.Jobs {
		if in.Jobs[i].ID == j.ID {
			in.Jobs[i] = j
			return
		}
	}
}

func applyAllocUpdate(txn *state.Txn, e *UpdateAlloc) any {
	a := txn.Alloc(e.ID)
	switch {
	case a == nil:
		return fmt.Errorf("allocation %s: %w", e.ID, ErrNotFound)
	case e.Attempt != a.Attempt:
		return fmt.Errorf("allocation %s is attempt %d, report is for attempt %d: %w", e.ID, a.Attempt, e.Attempt, ErrStaleAttempt)
	case e.Node != "" && e.Node != a.Placement.Node:
		return fmt.Errorf("allocation %s runs on %s, report came from %s: %w", e.ID, a.Placement.Node, e.Node, ErrConflict)
	case a.State.Terminal():
		return a // a repeated final report changes nothing
	}
	if e.State.Terminal() {
		c := a.Copy()
		c.BootSeconds, c.RunSeconds, c.GPUUsage = e.BootSeconds, e.RunSeconds, e.GPUUsage
		c.ImagePulled = c.ImagePulled || e.ImagePulled
		c.Outputs = e.Outputs
		st, reason := e.State, e.Reason
		if c.StopAsLost && st == model.AllocCancelled {
			st, reason = model.AllocLost, c.Reason // stopped for a hardware fault: requeue
		}
		if c.StopAsPreempted && st == model.AllocCancelled {
			st, reason = model.AllocPreempted, c.Reason // stopped for a higher QOS: requeue
		}
		endAlloc(txn, c, st, e.ExitCode, reason, e.Time)
		return txn.Alloc(e.ID)
	}
	if phaseRank(e.State) < phaseRank(a.State) {
		return a // a late "starting" after "running": reports may arrive out of order
	}
	c := a.Copy()
	c.State = e.State
	c.ImagePulled = c.ImagePulled || e.ImagePulled
	if !c.StopRequested {
		c.Reason = e.Reason // progress ("booting guest ..."), cleared once running
	}
	if e.State == model.AllocRunning && c.Started.IsZero() {
		c.Started = e.Time
	}
	txn.PutAlloc(c)
	if j := txn.Job(a.Job); j != nil && !j.State.Terminal() && e.State == model.AllocRunning && j.State != model.JobRunning {
		jc := j.Copy()
		jc.State = model.JobRunning
		if jc.StartTime.IsZero() {
			jc.StartTime = e.Time
		}
		txn.PutJob(jc)
	}
	return c
}

// phaseRank orders the non-terminal allocation states.
func phaseRank(s model.AllocState) int {
	switch s {
	case model.AllocStarting:
		return 1
	case model.AllocRunning:
		return 2
	}
	return 0
}

// endAlloc records an allocation's end, charges its usage, stops its gang
// siblings when it failed, and settles the job when its attempt is over.
func endAlloc(txn *state.Txn, a *model.Alloc, st model.AllocState, exit int, reason string, now time.Time) {
	c := a.Copy()
	c.State, c.ExitCode, c.Ended = st, exit, now
	if reason != "" || !c.StopRequested {
		c.Reason = reason // a stop's reason stays when the agent gives none
	}
	txn.PutAlloc(c)
	j := txn.Job(c.Job)
	if j == nil {
		return
	}
	if !c.Started.IsZero() {
		chargeUsage(txn, j.Department, core.Charge(c.Placement, now.Sub(c.Started), core.DefaultConfig()), now)
	}
	if st != model.AllocCompleted {
		stopLiveAllocs(txn, c.Job, c.Task, fmt.Sprintf("gang member %s ended: %s", c.ID, st))
	}
	settleAttempt(txn, j, c.Task, c.Attempt, now)
}

// UsageHalfLife is how fast recorded fair-share usage decays. It is part of
// the replicated state machine, so it is a constant, not a setting.
const UsageHalfLife = 7 * 24 * time.Hour

// chargeUsage decays the department usage to now and adds one charge.
func chargeUsage(txn *state.Txn, department string, charge float64, now time.Time) {
	u, at := txn.UsageAt()
	var elapsed time.Duration
	if !at.IsZero() {
		elapsed = now.Sub(at)
	}
	d := core.DecayUsage(u, elapsed, UsageHalfLife)
	d[department] += charge
	txn.SetUsage(d, now)
}

// settleAttempt decides the job's state once every allocation of one task
// attempt has ended.
func settleAttempt(txn *state.Txn, j *model.Job, task int64, attempt uint64, now time.Time) {
	var ended []*model.Alloc
	for a := range txn.Read().JobAllocs(j.ID) {
		if a.Task != task || a.Attempt != attempt {
			continue
		}
		if !a.State.Terminal() {
			return // the gang is still winding down
		}
		ended = append(ended, a)
	}
	if len(ended) == 0 {
		return
	}
	outcome, exit, reason := attemptOutcome(ended)
	c := j.Copy()
	if c.Array != nil {
		settleArrayTask(txn, c, task, outcome, now)
		return
	}
	if c.State.Terminal() { // cancelled while running: keep the cancel
		txn.PutJob(c)
		return
	}
	c.ExitCode = exit
	if outcome == model.AllocPreempted {
		c.State = model.JobPending
		c.Reason = fmt.Sprintf("requeued after attempt %d: %s", attempt, reason)
		txn.PutJob(c)
		return
	}
	if outcome == model.AllocRequeued {
		if c.NodeRequeues < model.MaxNodeRequeues {
			c.NodeRequeues++
			c.State = model.JobPending
			c.Reason = fmt.Sprintf("requeued after attempt %d: %s (node requeue %d of %d)", attempt, reason, c.NodeRequeues, model.MaxNodeRequeues)
			txn.PutJob(c)
			return
		}
		outcome = model.AllocFailed // requeued too often: a failure from now on
	}
	if retryable(outcome) && c.Restarts < c.Retries {
		c.Restarts++
		c.State = model.JobPending
		c.Reason = fmt.Sprintf("requeued after attempt %d: %s (restart %d of %d)", attempt, reason, c.Restarts, c.Retries)
		txn.PutJob(c)
		return
	}
	c.State = jobStateFor(outcome)
	c.Reason = reason
	c.EndTime = now
	txn.PutJob(c)
	if c.State == model.JobCompleted && !c.StartTime.IsZero() {
		txn.RecordRuntime(c.User, model.Run{Kind: c.Kind(), Runtime: now.Sub(c.StartTime)})
	}
}

// settleArrayTask records the end of one array task's attempt: done,
// failed for good, or queued to run again (RetryTasks) after a preemption,
// or after a failure or lost node while the task has retries left.
func settleArrayTask(txn *state.Txn, c *model.Job, task int64, outcome model.AllocState, now time.Time) {
	retry := outcome == model.AllocPreempted && !c.State.Terminal()
	if outcome == model.AllocRequeued {
		if c.NodeRequeues < model.MaxNodeRequeues && !c.State.Terminal() {
			c.NodeRequeues++
			retry = true
		} else {
			outcome = model.AllocFailed
		}
	}
	if retryable(outcome) && !c.State.Terminal() && c.TaskRestarts[task] < c.Retries {
		if c.TaskRestarts == nil {
			c.TaskRestarts = map[int64]int{}
		}
		c.TaskRestarts[task]++
		retry = true
	}
	switch {
	case retry:
		c.RetryTasks = append(c.RetryTasks, task)
	case outcome == model.AllocCompleted:
		c.TasksDone++
	default:
		c.TasksFailed++
	}
	if !c.State.Terminal() && c.TasksDone+c.TasksFailed >= c.Array.Tasks() {
		c.EndTime = now
		if c.TasksFailed > 0 {
			c.State, c.ExitCode = model.JobFailed, 1
			c.Reason = fmt.Sprintf("%d of %d tasks failed", c.TasksFailed, c.Array.Tasks())
		} else {
			c.State, c.Reason = model.JobCompleted, ""
		}
	} else if !c.State.Terminal() {
		c.State = model.JobRunning
	}
	txn.PutJob(c)
}

// attemptOutcome folds the ranks of one attempt into one state: a failure
// outranks a timeout, a timeout a lost node, that a preemption, and that a
// cancel (siblings of a failed rank are cancelled by the master); the
// lowest such rank decides.
func attemptOutcome(ended []*model.Alloc) (model.AllocState, int, string) {
	slices.SortFunc(ended, func(a, b *model.Alloc) int { return a.Rank - b.Rank })
	for _, want := range []model.AllocState{model.AllocFailed, model.AllocTimedOut, model.AllocLost, model.AllocRequeued, model.AllocPreempted, model.AllocCancelled} {
		for _, a := range ended {
			if a.State == want {
				return a.State, a.ExitCode, describe(a)
			}
		}
	}
	return model.AllocCompleted, 0, ""
}

func describe(a *model.Alloc) string {
	if a.State == model.AllocFailed {
		if a.Reason != "" && a.Reason != fmt.Sprintf("exit code %d", a.ExitCode) {
			return fmt.Sprintf("exit code %d on %s (%s)", a.ExitCode, a.Placement.Node, a.Reason)
		}
		return fmt.Sprintf("exit code %d on %s", a.ExitCode, a.Placement.Node)
	}
	if a.Reason != "" {
		return fmt.Sprintf("%s on %s: %s", a.State, a.Placement.Node, a.Reason)
	}
	return fmt.Sprintf("%s on %s", a.State, a.Placement.Node)
}

func retryable(s model.AllocState) bool {
	return s == model.AllocFailed || s == model.AllocLost
}

func jobStateFor(s model.AllocState) model.JobState {
	switch s {
	case model.AllocCompleted:
		return model.JobCompleted
	case model.AllocTimedOut:
		return model.JobTimedOut
	case model.AllocCancelled:
		return model.JobCancelled
	}
	return model.JobFailed
}
