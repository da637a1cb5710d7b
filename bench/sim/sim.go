package sim

import (
	"fmt"
	"slices"
	"time"

	"vhpc/scheduler/core"
	"vhpc/scheduler/model"
)

// Estimate modes of a replay.
const (
	// EstRuntime sets each job's walltime to its actual run time (perfect
	// estimates) and plans with it.
	EstRuntime = "runtime"
	// EstRequest sets the walltime to the trace's requested time (the run
	// time where the trace has none); the policy's Config.Estimate decides
	// whether the core plans with it or with per-user predictions.
	EstRequest = "request"
	// EstPredicted is EstRequest with Config.Estimate forced to
	// core.EstimatePredicted, whatever the policy says.
	EstPredicted = "predicted"
)

// BaselineConfig is a baseline policy as the literature runs it: the
// core defaults with policy, planned with the walltime (no predictions).
func BaselineConfig(policy string) core.Config {
	c := core.DefaultConfig()
	c.Policy = policy
	c.Estimate = core.EstimateRequest
	return c
}

// Options configure a replay.
type Options struct {
	Nodes       int
	CPUsPerNode int
	GPUsPerNode int
	Estimates   string
	Config      core.Config
	// Clock measures time spent in core.Schedule; nil means time.Now.
	Clock func() time.Time
	// Rebuild, when true, calls core.Schedule at every event, which
	// rebuilds the core's node index each time, instead of one
	// core.Planner for the replay. The plans are the same
	// (TestReplayPlannerMatchesRebuild); the rebuild path is kept for the
	// side-by-side benchmarks.
	Rebuild bool
	// Until, when positive, stops the replay at that virtual second;
	// metrics then cover the jobs started by then, and Result.Dept the
	// core-seconds delivered before it.
	Until int64
	// ResumePreempted is a what-if the live system cannot follow (QEMU
	// refuses to save a guest with the 9p job share or a GPU; the core
	// README's eleventh round): a preempted gang keeps the progress it
	// made, as if its guests had been saved to disk and restored later
	// on any nodes, instead of losing its run. The job is requeued with
	// the rest of its run and of its walltime (its deadline counts from
	// the new start), and Result.ResumedCoreSeconds says how much run
	// was kept. Off, a preempted run is lost (PreemptedCoreSeconds), as
	// under hpcd.
	ResumePreempted bool
	// IdleProfile fills Result.Idle: the idle core-seconds split by the
	// plan's widest reservation, and the full-machine drains. It costs a
	// pass over the running allocations and pending jobs per event.
	IdleProfile bool
	// Preemptions fills Result.Preemptions: every preempted run, with
	// what it was predicted to run and what preempted it.
	Preemptions bool
}

// Epoch is virtual time zero.
var epoch = time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)

type simJob struct {
	job     *model.Job
	tj      TraceJob
	actual  int64 // seconds it really runs (killed at its walltime)
	cores   int64
	startAt int64
	// gang holds the job's allocations while it runs.
	gang []model.Alloc
	// gen counts the job's preemptions: an end event of an earlier run
	// (endEvent.gen) is stale.
	gen int
	// done is the run kept from earlier, preempted runs
	// (Options.ResumePreempted); the job's Walltime is the rest of its
	// own meanwhile.
	done int64
	// predicted is the prediction the job started speculatively with
	// (seconds; 0 for a plain start), kept for Options.Preemptions.
	predicted int64
}

type endEvent struct {
	at  int64
	idx int // index into jobs; -1: a wake-up with no job
	gen int // simJob.gen when the event was pushed
}

type endHeap []endEvent

func (h endHeap) Len() int { return len(h) }
func (h endHeap) Less(i, j int) bool {
	if h[i].at != h[j].at {
		return h[i].at < h[j].at
	}
	return h[i].idx < h[j].idx
}
func (h endHeap) Swap(i, j int) { h[i], h[j] = h[j], h[i] }
func (h *endHeap) Push(x any)   { *h = append(*h, x.(endEvent)) }
func (h *endHeap) Pop() any     { o := *h; x := o[len(o)-1]; *h = o[:len(o)-1]; return x }

// Nodes builds the simulated cluster: n identical one-NUMA nodes.
func Nodes(n, cpus, gpus int) []*model.Node {
	out := make([]*model.Node, n)
	for i := range out {
		nd := &model.Node{Name: fmt.Sprintf("n%05d", i), State: model.NodeReady, Hypervisor: "kvm",
			NUMA: []model.NUMANode{{ID: 0, MemoryMiB: 1 << 20}}, ScratchMiB: 1 << 20}
		for c := 0; c < cpus; c++ {
			nd.Cores = append(nd.Cores, model.Core{ID: c, PhysicalCore: c})
		}
		for g := 0; g < gpus; g++ {
			nd.GPUs = append(nd.GPUs, model.GPU{PCIAddress: fmt.Sprintf("0000:%02x:00.0", g+1), Model: "sim", MemoryMiB: 81920})
		}
		out[i] = nd
	}
	return out
}

// request maps p processors onto nodes of c CPUs (and g GPUs, taken in
// proportion to the cores).
func request(p int64, c, g int) model.Request {
	nodes := (p + int64(c) - 1) / int64(c)
	per := (p + nodes - 1) / nodes
	r := model.Request{Nodes: int(nodes), TasksPerNode: int(per), CPUsPerTask: 1, CrossNUMA: true}
	if g > 0 {
		r.GPUs = int((per*int64(g) + int64(c) - 1) / int64(c))
	}
	return r
}

func newSimJob(tj TraceJob, r model.Request, wall int64, i int) *simJob {
	var name string // the trace's job numbers are unique: no kind
	if tj.App > 0 {
		name = fmt.Sprintf("app%d", tj.App)
	}
	j := &model.Job{ID: model.JobID(i + 1), Name: name, User: fmt.Sprintf("u%d", tj.User),
		Department: fmt.Sprintf("g%d", tj.Group), Request: r, Walltime: time.Duration(wall) * time.Second,
		State: model.JobPending, SubmitTime: epoch.Add(time.Duration(tj.Submit) * time.Second)}
	return &simJob{job: j, tj: tj, actual: min(tj.Run, wall), cores: int64(r.Nodes * r.CoresPerNode())}
}

// Run replays trace through core.Schedule and measures it.
func Run(trace []TraceJob, o Options) Result {
	clock := o.Clock
	if clock == nil {
		clock = time.Now
	}
	cfg := o.Config
	if o.Estimates == EstPredicted {
		cfg.Estimate = core.EstimatePredicted
	}
	res := Result{Policy: cfg.Policy, Estimates: o.Estimates, Dept: map[string]float64{}}
	nodes := Nodes(o.Nodes, o.CPUsPerNode, o.GPUsPerNode)
	var jobs []*simJob
	for _, tj := range trace {
		r := request(tj.Procs, o.CPUsPerNode, o.GPUsPerNode)
		if r.Nodes > o.Nodes {
			res.Skipped++
			continue
		}
		wall := max(tj.Run, 1)
		if o.Estimates != EstRuntime && tj.ReqTime > 0 {
			wall = tj.ReqTime
		}
		jobs = append(jobs, newSimJob(tj, r, wall, len(jobs)))
	}
	slices.SortStableFunc(jobs, func(a, b *simJob) int { return int(a.tj.Submit - b.tj.Submit) })
	for i, sj := range jobs {
		sj.job.ID = model.JobID(i + 1)
	}
	st := newState(jobs, cfg)
	st.until = o.Until
	st.rebuild = o.Rebuild
	st.resume = o.ResumePreempted
	st.record = o.Preemptions
	if o.IdleProfile {
		var cores int64
		for _, n := range nodes {
			cores += int64(len(n.Cores))
		}
		st.idle = newIdleProbe(cores)
	}
	st.loop(nodes, clock, &res)
	return res
}
