package sim

import (
	"slices"
	"time"
)

// Result is what one replay measured. Times are in seconds of virtual time
// except the Core* fields, which are wall time spent inside core.Schedule.
type Result struct {
	Policy      string  `json:"policy"`
	Estimates   string  `json:"estimates"`
	Jobs        int     `json:"jobs"`
	Skipped     int     `json:"skipped"` // larger than the cluster
	AvgWait     float64 `json:"avgWaitS"`
	P50Wait     float64 `json:"p50WaitS"`
	P90Wait     float64 `json:"p90WaitS"`
	P99Wait     float64 `json:"p99WaitS"`
	MaxWait     float64 `json:"maxWaitS"`
	AvgBSLD     float64 `json:"avgBoundedSlowdown"`
	Utilization float64 `json:"utilization"`
	Makespan    float64 `json:"makespanS"`
	Cycles      int     `json:"cycles"`
	// IdleCycles are the events with no job pending, where the replay
	// skips core.Schedule (its plan could start nothing).
	IdleCycles int `json:"idleCycles,omitempty"`
	// Preempted counts the gangs the plans preempted (requeued; with
	// core.Config.SpeculativeBackfill), and PreemptedCoreSeconds what
	// they had run, lost.
	Preempted            int     `json:"preempted,omitempty"`
	PreemptedCoreSeconds float64 `json:"preemptedCoreSeconds,omitempty"`
	// ResumedCoreSeconds is what the preempted gangs had run and kept,
	// under Options.ResumePreempted (then PreemptedCoreSeconds is 0).
	ResumedCoreSeconds float64 `json:"resumedCoreSeconds,omitempty"`
	// MostPreempted is the most times one job was preempted: 1 at most
	// under the default policy, whose reruns never start speculatively.
	MostPreempted int `json:"mostPreempted,omitempty"`
	// PoolCycles are the cycles the Planner ran on its one-slot pool
	// (core.Planner.Pooled); the rest ran the full path.
	PoolCycles int           `json:"poolCycles,omitempty"`
	CoreMean   time.Duration `json:"coreMeanNs"`
	CoreMax    time.Duration `json:"coreMaxNs"`
	// Dept holds delivered core-seconds per department.
	Dept map[string]float64 `json:"deptCoreSeconds,omitempty"`
	// Starts lists every started job in trace order: the trace's job
	// number and the virtual second it started (hpcsim --starts writes
	// them; two builds that plan alike give the same list).
	Starts []JobStart `json:"-"`
	// Idle is where the idle cores went, with Options.IdleProfile.
	Idle *IdleProfile `json:"idle,omitempty"`
	// Preemptions lists the preempted runs in the order they were
	// stopped, with Options.Preemptions.
	Preemptions []PreemptedRun `json:"preemptions,omitempty"`
}

// PreemptedRun is one run a plan preempted (a speculative gang past its
// prediction, stopped for a starving job): what it ran and would have
// run, and the job it made room for. Times are the trace's seconds.
type PreemptedRun struct {
	// Job is the preempted job's trace number; Cores its gang's cores.
	Job   int64 `json:"job"`
	Cores int64 `json:"cores"`
	// Start and Stop bound the run; Stop − Start is what it ran (lost,
	// unless Options.ResumePreempted kept it).
	Start int64 `json:"start"`
	Stop  int64 `json:"stop"`
	// Run is what the job still had to run at Start (its trace run time,
	// capped by its walltime, less any run kept from before) and
	// Walltime its walltime then.
	Run      int64 `json:"run"`
	Walltime int64 `json:"walltime"`
	// Predicted is the prediction it started speculatively with (0 for a
	// plain start): it may start where twice that fits in front of the
	// starving job's reservation (core.Config.SpeculativeSlack).
	Predicted int64 `json:"predicted"`
	// By is the trace number of the job the run was stopped for, and
	// ByWaited how long that job had waited at Stop.
	By       int64 `json:"by"`
	ByWaited int64 `json:"byWaited"`
}

// JobStart is when one trace job started (its last run, if it was
// preempted) and ended, in virtual seconds.
type JobStart struct {
	ID  int64
	At  int64
	End int64
}

// bsld is the bounded slowdown with Feitelson's 10 s threshold.
func bsld(wait, run float64) float64 {
	return max(1, (wait+run)/max(run, 10))
}

func percentile(sorted []float64, p float64) float64 {
	if len(sorted) == 0 {
		return 0
	}
	i := int(p*float64(len(sorted))+0.5) - 1
	return sorted[min(max(i, 0), len(sorted)-1)]
}

// finish computes the wait statistics from per-job waits.
func (r *Result) finish(waits []float64) {
	s := slices.Clone(waits)
	slices.Sort(s)
	var sum float64
	for _, w := range s {
		sum += w
	}
	if len(s) > 0 {
		r.AvgWait = sum / float64(len(s))
		r.MaxWait = s[len(s)-1]
	}
	r.P50Wait, r.P90Wait, r.P99Wait = percentile(s, .5), percentile(s, .9), percentile(s, .99)
}
