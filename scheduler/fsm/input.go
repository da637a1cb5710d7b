package fsm

import (
	"time"

	"vhpc/scheduler/core"
	"vhpc/scheduler/model"
	"vhpc/scheduler/state"
)

type coreInput = core.Input

// CoreInput builds the scheduler core's input from a snapshot: every node,
// every non-terminal job and allocation, the ended state of every job named
// in a dependency, and department usage. The scheduling loop and
// ApplyPlan's re-check both use it, so they judge the same facts.
func CoreInput(snap *state.Snapshot, now time.Time) core.Input {
	usage, at := snap.Usage()
	var elapsed time.Duration
	if !at.IsZero() {
		elapsed = now.Sub(at)
	}
	in := core.Input{Now: now, Usage: core.DecayUsage(usage, elapsed, UsageHalfLife), Ended: map[model.JobID]model.JobState{}, History: snap.History()}
	for n := range snap.Nodes() {
		in.Nodes = append(in.Nodes, n)
	}
	for j := range snap.ActiveJobs() {
		in.Jobs = append(in.Jobs, j)
		for _, d := range j.DependsOn {
			for _, id := range d.Jobs {
				if dj := snap.Job(id); dj != nil && dj.State.Terminal() {
					in.Ended[id] = dj.State
				}
			}
		}
	}
	for a := range snap.LiveAllocs() {
		in.Allocs = append(in.Allocs, a)
	}
	return in
}

func checkStart(in core.Input, s model.Start) error { return core.CheckStart(in, s) }
