package core

import (
	"time"

	"vhpc/scheduler/model"
)

// Input is the snapshot one scheduling cycle reads. The caller (server loop,
// dry run, hpcsim, tests) builds it; Schedule never modifies it.
type Input struct {
	// Now is the cycle's time; all ages, estimates and reservations are
	// relative to it.
	Now time.Time
	// Nodes are all nodes; only State == NodeReady take new work, and
	// drained GPUs are never given out.
	Nodes []*model.Node
	// Jobs are all non-terminal jobs (pending, scheduled, running), in any
	// order. Array jobs with tasks left to start are candidates whatever
	// their state.
	Jobs []*model.Job
	// Allocs are all non-terminal allocations; they hold resources.
	Allocs []*model.Alloc
	// Usage is the decayed usage per department (see Charge and
	// DecayUsage); nil means none.
	Usage map[string]float64
	// Ended holds the terminal state of every job named in a dependsOn.
	Ended map[model.JobID]model.JobState
	// History is each user's last completed runs with their kinds, oldest
	// first, used by EstimatePredicted (see RecordRuntime); nil means
	// none.
	History map[string][]model.Run
	// ImageNodes maps an image digest ("sha256:...") to the names of the
	// nodes whose image cache holds it, as their agents last reported
	// (the server's leader-local soft state; hpcsim and most tests leave
	// it nil). Among the nodes a job fits, placement prefers those holding
	// its Job.ImageDigest (see cmpCand); it is never a constraint, and a
	// job without an image, or whose image no node holds, is placed as if
	// ImageNodes were nil. Unknown node names are ignored.
	ImageNodes map[string][]string
}

// Schedule computes one cycle's plan: the starts to make now with exact
// placements, the reservations held for blocked high-priority jobs, and a
// reason for every candidate job (pending job or array with tasks left)
// that was not started. It is a pure function of (in, cfg): deterministic,
// no I/O, no clock. The server applies the starts through Raft after
// CheckStart; hpcsim applies them in virtual time.
func Schedule(in Input, cfg Config) model.Plan {
	s := newSched(&in, &cfg)
	s.run()
	return s.plan
}

// Estimate is the runtime a cycle planned with history and cfg assumes
// for job j: its walltime, or under EstimatePredicted its prediction from
// the user's history (capped by the walltime), the value Explain reports,
// without planning a cycle. hpcsim calls it to record what a speculative
// start was predicted to run (sim.Options.Preemptions).
func Estimate(history map[string][]model.Run, j *model.Job, cfg Config) time.Duration {
	s := &sched{in: &Input{History: history}, cfg: &cfg}
	return s.estimate(j)
}

// RecordRuntime appends a completed run to its user's history, keeping
// the last keep runs (model.WithRun, the rule the FSM's store records
// with). hpcsim calls it when a job ends; the result goes into
// Input.History.
func RecordRuntime(hist map[string][]model.Run, user string, run model.Run, keep int) {
	hist[user] = model.WithRun(hist[user], run, keep)
}
