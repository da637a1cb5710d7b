package core

import (
	"math"
	"slices"
	"time"

	"vhpc/scheduler/model"
)

// Factors are a job's raw priority factors, each in [0,1].
type Factors struct {
	// Age grows linearly with time since submit, saturating at MaxAge; or,
	// with AgeExpansion, is 1-1/XF for the expansion factor
	// XF = (wait + estimate) / estimate.
	Age float64
	// FairShare is 2^(-usage fraction / share fraction) of the department.
	FairShare float64
	// Size favors small jobs: 1/(1+log2(1+area/SizeRef)), area = width^e x
	// estimated seconds, width = nodes x (cores + GPUWeight x GPUs) and e =
	// Config.SizeWidthExponent (0: shortest first, 1: smallest area first).
	Size float64
	// QOS is 0 for "low", 0.5 for "normal" or empty, 1 for "high".
	QOS float64
}

// candidate is one job the cycle may start (a pending job, or an array with
// tasks left).
type candidate struct {
	j       *model.Job
	key     shapeKey
	starved bool // waited past Config.StarvationAge
	urgent  bool // not starved, expansion factor reached Config.SlowdownGuard
	est     time.Duration
	f       Factors
	prio    float64
	// small and fill are the packing backfill order's keys: small jobs
	// first, each tier by fill (expansion factor for small jobs, area for
	// the rest), highest first. Set by backfillOrder.
	small bool
	fill  float64
	// yielded marks a job started in front of a wide starving lead
	// (Config.DrainYield; set by yieldToShort) with nothing left to
	// start; started counts the tasks (one for a plain job) yieldToShort
	// started, which startAll then skips.
	yielded bool
	started int64
}

// candidates returns the jobs to consider, in the policy's order.
func (s *sched) candidates() []candidate {
	cs := slices.Grow(s.scr.cands[:0], len(s.in.Jobs))
	var pendingWork float64 // widths x estimates, for the backlog threshold
	for _, j := range s.in.Jobs {
		if j.State.Terminal() {
			continue
		}
		if j.Array != nil {
			if j.TasksLeft() == 0 {
				continue
			}
		} else if j.State != model.JobPending {
			continue
		}
		c := candidate{j: j, key: shapeKey{j.Request, s.partition(j)}, est: s.estimate(j)}
		if s.cfg.Policy == PolicyDefault {
			c.f = s.factors(j, c.est)
			w := s.cfg.Weights
			c.prio = w.Age*c.f.Age + w.FairShare*c.f.FairShare + w.Size*c.f.Size + w.QOS*c.f.QOS
			n := 1.0
			if j.Array != nil {
				n = float64(j.TasksLeft())
			}
			pendingWork += n * s.width(j) * float64(c.est)
		}
		if s.cfg.Policy == PolicySJFEasy {
			c.prio = -c.est.Seconds() // shortest first
		}
		cs = append(cs, c)
	}
	s.starveAge = s.cfg.StarvationAge
	if s.cfg.Policy == PolicyDefault && s.cfg.StarvationAge > 0 {
		s.starveAge = s.starvationThreshold(cs, pendingWork)
		for i := range cs {
			cs[i].starved = s.in.Now.Sub(cs[i].j.SubmitTime) > s.starveAge
		}
	}
	s.limitStarved(cs)
	if g := s.cfg.SlowdownGuard; s.cfg.Policy == PolicyDefault && g > 0 {
		for i := range cs {
			c := &cs[i]
			c.urgent = !c.starved && s.expansion(c.j, c.est) >= g
		}
	}
	s.scr.cands = cs
	out := sortCandidates(cs, s.scr)
	s.scr.sorted = out
	return out
}

// candKey is a candidate's sort key (see sortCandidates).
type candKey struct {
	starved, urgent bool
	prio            float64
	submit          time.Time
	id              model.JobID
	i               int
}

// sortCandidates orders cs: starving jobs first (by submit time), then
// urgent ones, then by priority, highest first; ties by submit time and
// id. It sorts small keys and permutes once into sc's second list: a
// candidate is large to move.
func sortCandidates(cs []candidate, sc *scratch) []candidate {
	keys := slices.Grow(sc.keys[:0], len(cs))[:len(cs)]
	sc.keys = keys
	for i := range cs {
		c := &cs[i]
		keys[i] = candKey{c.starved, c.urgent, c.prio, c.j.SubmitTime, c.j.ID, i}
	}
	slices.SortFunc(keys, func(a, b candKey) int {
		if c := trueFirst(a.starved, b.starved); c != 0 {
			return c
		}
		if c := trueFirst(a.urgent, b.urgent); c != 0 {
			return c
		}
		if a.prio != b.prio && !a.starved {
			if a.prio > b.prio {
				return -1
			}
			return 1
		}
		if c := a.submit.Compare(b.submit); c != 0 {
			return c
		}
		return cmpU(uint64(a.id), uint64(b.id))
	})
	out := slices.Grow(sc.sorted[:0], len(cs))[:len(cs)]
	for i, k := range keys {
		out[i] = cs[k.i]
	}
	return out
}

// noteStarvation notes (starvingAt, for model.Plan.Recheck) when the
// next of the jobs left pending will start to starve, if that can change
// the order: while fewer than Config.StarvationSlots of them starve (or
// any number may). A job below the floor is noted when it reaches the
// floor, the earliest the threshold can be once the backlog is counted;
// the threshold also falls as running work ends, so this is the latest
// such a change comes, and a cycle then finds the true threshold.
func (s *sched) noteStarvation(cands []candidate) {
	left := func(c *candidate) bool { return c.j.Array != nil || s.tasksRun[c.j.ID] == 0 }
	if slots := s.cfg.StarvationSlots; slots > 0 {
		n := 0
		for i := range cands {
			if c := &cands[i]; s.in.Now.Sub(c.j.SubmitTime) > s.starveAge && left(c) {
				if n++; n >= slots {
					return // the slots stay taken
				}
			}
		}
	}
	floor := s.cfg.StarvationFloor
	for i := range cands {
		c := &cands[i]
		w := s.in.Now.Sub(c.j.SubmitTime)
		if w > s.starveAge {
			continue
		}
		at := s.starveAge
		if floor > 0 && w <= floor && floor < at {
			at = floor
		}
		// Starving is waiting longer than the threshold: a second past it.
		// (Whether the job is left is asked last: few are the earliest.)
		if off := at - w + time.Second; (s.starvingAt == 0 || int64(off) < s.starvingAt) && left(c) {
			s.starvingAt = int64(off)
		}
	}
}

// limitStarved keeps the starvation promotion for the oldest
// Config.StarvationSlots starving jobs only, so a backlog of old jobs does
// not turn the whole queue into FCFS: the oldest always progresses, the
// rest keep their priority order.
func (s *sched) limitStarved(cs []candidate) {
	n := s.cfg.StarvationSlots
	if n <= 0 {
		return
	}
	var idx []int
	for i := range cs {
		if cs[i].starved {
			idx = append(idx, i)
		}
	}
	if len(idx) <= n {
		return
	}
	slices.SortFunc(idx, func(a, b int) int {
		if c := cs[a].j.SubmitTime.Compare(cs[b].j.SubmitTime); c != 0 {
			return c
		}
		return cmpU(uint64(cs[a].j.ID), uint64(cs[b].j.ID))
	})
	for _, i := range idx[n:] {
		cs[i].starved = false
	}
}

// width is j's size across the cluster: nodes x (cores + GPUWeight x GPUs
// per node). The size factor and the packing backfill order use it.
func (s *sched) width(j *model.Job) float64 {
	r := &j.Request
	return float64(max(r.Nodes, 1)) * (float64(r.CoresPerNode()) + s.cfg.GPUWeight*float64(r.GPUs))
}

// wait is how long j has waited so far, in nanoseconds (0 for a submit
// time after Now). The age factors and the expansion factor use it.
func (s *sched) wait(j *model.Job) float64 {
	return max(0, float64(s.in.Now.Sub(j.SubmitTime)))
}

// expansion is j's expansion factor XF = (wait + estimate) / estimate
// (estimates under a second count as one): how slowed down the job is so
// far. The expansion age factor and the packing backfill order use it.
func (s *sched) expansion(j *model.Job, est time.Duration) float64 {
	e := max(float64(est), float64(time.Second))
	return (s.wait(j) + e) / e
}

// trueFirst orders true before false (0 when equal), for the sort tiers
// (starving, urgent and small jobs) that come before the finer keys.
func trueFirst(a, b bool) int {
	switch {
	case a == b:
		return 0
	case a:
		return -1
	}
	return 1
}

// factors computes j's raw priority factors.
func (s *sched) factors(j *model.Job, est time.Duration) Factors {
	var f Factors
	switch {
	case s.cfg.AgeMode == AgeExpansion:
		// 1 - 1/XF: grows with the wait relative to the job's length and
		// never saturates.
		f.Age = 1 - 1/s.expansion(j, est)
	case s.cfg.MaxAge > 0:
		f.Age = min(1, s.wait(j)/float64(s.cfg.MaxAge))
	}
	f.FairShare = 1
	if v, ok := s.fs[j.Department]; ok {
		f.FairShare = v
	}
	area := math.Pow(max(s.width(j), 1), s.cfg.SizeWidthExponent) * est.Seconds()
	ref := s.cfg.SizeRef
	if ref <= 0 {
		ref = 1
	}
	f.Size = 1 / (1 + math.Log2(1+area/ref))
	switch j.QOS {
	case "low":
		f.QOS = 0
	case "high":
		f.QOS = 1
	default:
		f.QOS = 0.5
	}
	return f
}

// starvationThreshold is this cycle's starvation threshold under the
// default policy: StarvationAge, or with StarvationBacklog b > 0, b x the
// backlog clamped to [StarvationFloor, StarvationAge]: a job starves
// sooner when the machine holds little work, so a job passed over while
// the queue drains does not wait out the full age. pendingWork is the
// pending jobs' widths x estimates (candidates sums it over cs).
//
// The backlog is only computed when some candidate's wait lies between
// the floor and the age, the only waits the threshold decides (or when
// StarvationGrace, measured from the threshold, needs its value).
func (s *sched) starvationThreshold(cs []candidate, pendingWork float64) time.Duration {
	age, floor, b := s.cfg.StarvationAge, s.cfg.StarvationFloor, s.cfg.StarvationBacklog
	if b <= 0 || floor >= age {
		return age
	}
	if s.cfg.StarvationGrace == 0 && !slices.ContainsFunc(cs, func(c candidate) bool {
		w := s.in.Now.Sub(c.j.SubmitTime)
		return w > floor && w <= age
	}) {
		return age // the same starving jobs as any threshold in between
	}
	return min(age, max(floor, time.Duration(b*float64(s.backlog(pendingWork)))))
}

// backlog is how long the machine needs to run the work it holds: the
// pending jobs' width x estimate (pendingWork) and the running
// allocations' cores (and GPUs, by GPUWeight) x expected time left, over
// the ready nodes' capacity.
func (s *sched) backlog(pendingWork float64) time.Duration {
	capacity := s.capacity()
	if capacity <= 0 {
		return 0
	}
	work := pendingWork + s.runningWork()
	return time.Duration(work / capacity)
}

// capacity is the ready nodes' cores plus their GPUs by GPUWeight: the
// unit of width (s.width), which backlog and drainPacked measure against.
func (s *sched) capacity() float64 {
	cores, gpus := s.cl.readyCapacity()
	return float64(cores) + s.cfg.GPUWeight*float64(gpus)
}

// runningWork is the live allocations' cores (and GPUs, by GPUWeight) x
// expected time left, summed per run (consecutive allocations of one
// gang with the same times, sameRun, which share their expected end): on
// the pool, the runs pool.load read, the same runs in the same order.
func (s *sched) runningWork() float64 {
	if p := s.cl.pool; p != nil {
		return p.runningWork(s)
	}
	var work float64
	allocs := s.allocs
	for i := 0; i < len(allocs); {
		a := allocs[i]
		if a.State.Terminal() {
			i++
			continue
		}
		cores, gpus := len(a.Placement.Cores), len(a.Placement.GPUs)
		k := i + 1
		for ; k < len(allocs) && sameRun(a, allocs[k]); k++ {
			cores += len(allocs[k].Placement.Cores)
			gpus += len(allocs[k].Placement.GPUs)
		}
		work += (float64(cores) + s.cfg.GPUWeight*float64(gpus)) * float64(s.allocEnd(a))
		i = k
	}
	return work
}
