package core

import (
	"slices"
	"time"

	"vhpc/scheduler/model"
)

// shapeKey identifies jobs that place identically: same per-node request
// and partition.
type shapeKey struct {
	req  model.Request
	part string
}

// usageCount is what a department or partition holds right now (running
// allocations plus this plan's starts).
type usageCount struct {
	gpus, cores, jobs int
}

// sched is the working state of one Schedule call.
type sched struct {
	// protect: a starving job leads the queue this cycle, so jobs are
	// planned with their walltimes; trust: it is within
	// Config.StarvationGrace, so consistent predictions still count.
	protect, trust bool
	in             *Input
	cfg            *Config
	cl             *cluster
	plan           model.Plan
	jobs           map[model.JobID]*model.Job
	tasksRun       map[model.JobID]int // running (job, task) pairs per job
	dept           map[string]*usageCount
	part           map[string]*usageCount
	fs             map[string]float64
	partN          map[string][]int // ready nodes per partition key
	ever           map[shapeKey]string
	failMin        map[shapeKey]int64
	nowC           map[shapeKey]nowCache
	miss           map[shapeKey]missCache
	nres           int // reservations counted against the depth
	nurgent        int // reservations of urgent jobs (Config.SlowdownReservations)
	// preempted are the gangs this plan already stops.
	preempted map[gangKey]bool
	// victimList and preemptFail are tryPreempt's per-cycle caches.
	victimList      map[victimSet][]victim
	preemptFail     map[preemptKey]int64
	preemptSearches int
	allocs          []*model.Alloc // Input.Allocs by job, task, rank (deterministic order)
	lowestQOS       int            // see lowestRunningQOS; -1 until computed
	lazy            []lazyReason
	perNUMA         []int
	explain         *explainState
	// imgNodes caches imageNodes per digest for the cycle.
	imgNodes map[string]bitset

	// scr is the call's working storage (a Planner's kept one, or new).
	scr *scratch

	// leadID is the starving job that leads a protected cycle (the
	// first candidate; zero when none starves): the one that may stop
	// speculative gangs (tryPreempt).
	leadID model.JobID
	// starveAge is this cycle's starvation threshold (Config.StarvationAge,
	// lowered with the backlog by Config.StarvationBacklog; see
	// starvationThreshold).
	starveAge time.Duration
	// predicted are the running holders whose ends are predictions, and
	// starvingAt the earliest offset from now (> 0) at which the next job
	// starts to starve (0: none); recheck makes model.Plan.Recheck of them.
	predicted  []predictedEnd
	starvingAt int64
	// packDrain: the starving lead is wide enough for Config.DrainPacking,
	// so the backfill order packs its drain.
	packDrain bool
}

// recheck is model.Plan.Recheck as an offset from now (0: none): the
// next job to starve, or the first running job to outlive its prediction
// on a node reserved from then on. Its expected end then moves to its
// deadline, and the reservation with it, which opens holes in front of
// the reservation; a node no reservation waits for opens none.
func (s *sched) recheck() int64 {
	at := s.starvingAt
	for _, pe := range s.predicted {
		if (at == 0 || pe.off < at) && s.reservedFrom(pe) {
			at = pe.off
		}
	}
	return at
}

// reservedFrom reports whether a reservation holds one of pe's nodes from
// pe's end on (it starts there because the node frees then). pe.off is at
// least a second, so running holders (start -1) and starts of this plan
// (start 0) never count.
func (s *sched) reservedFrom(pe predictedEnd) bool {
	if p := s.cl.pool; p != nil {
		return slices.ContainsFunc(pe.nodes, func(n int) bool { return p.fmin[n] != never && p.fmin[n] >= pe.off })
	}
	return slices.ContainsFunc(s.cl.nodes[pe.node].holders, func(h holder) bool { return h.start >= pe.off })
}

type nowCache struct {
	gen   int
	nodes []int
}

type missCache struct {
	gen  int
	text string
	wait string
}

// newSched prepares one Schedule or Explain call on a fresh cluster.
func newSched(in *Input, cfg *Config) *sched { return newSchedOn(newCluster(in.Nodes), in, cfg) }

// scratch is a call's working storage that a Planner keeps between calls
// (cluster.scr): the candidate lists, the lazy reasons and the per-call
// maps, emptied at the start of each call instead of allocated again.
// Nothing in it outlives a call's plan: the plan's own maps and slices
// are always new.
type scratch struct {
	cands, sorted []candidate
	keys          []candKey
	fillKeys      []fillKey
	fillBuf       []candidate
	lazy          []lazyReason
	predicted     []predictedEnd
	jobs          map[model.JobID]*model.Job
	tasksRun      map[model.JobID]int
	dept, part    map[string]*usageCount
	partN         map[string][]int
	ever          map[shapeKey]string
	failMin       map[shapeKey]int64
	nowC          map[shapeKey]nowCache
	miss          map[shapeKey]missCache
	preempted     map[gangKey]bool
	victimList    map[victimSet][]victim
	preemptFail   map[preemptKey]int64
}

// take empties the kept storage for a new call of jobs jobs (maps keep
// their buckets; a new job map is sized for jobs).
func (sc *scratch) take(jobs int) {
	clear(sc.cands[:cap(sc.cands)]) // drop the last call's jobs for the collector
	clear(sc.sorted[:cap(sc.sorted)])
	sc.lazy = sc.lazy[:0]
	if sc.jobs == nil {
		*sc = scratch{cands: sc.cands, sorted: sc.sorted, keys: sc.keys, fillKeys: sc.fillKeys, fillBuf: sc.fillBuf, lazy: sc.lazy, predicted: sc.predicted,
			jobs: make(map[model.JobID]*model.Job, jobs), tasksRun: map[model.JobID]int{},
			dept: map[string]*usageCount{}, part: map[string]*usageCount{}, partN: map[string][]int{},
			ever: map[shapeKey]string{}, failMin: map[shapeKey]int64{}, nowC: map[shapeKey]nowCache{},
			miss: map[shapeKey]missCache{}, preempted: map[gangKey]bool{}, victimList: map[victimSet][]victim{},
			preemptFail: map[preemptKey]int64{}}
		return
	}
	clear(sc.jobs)
	clear(sc.tasksRun)
	clear(sc.dept)
	clear(sc.part)
	clear(sc.partN)
	clear(sc.ever)
	clear(sc.failMin)
	clear(sc.nowC)
	clear(sc.miss)
	clear(sc.preempted)
	clear(sc.victimList)
	clear(sc.preemptFail)
}

// newSchedOn prepares one call on cl, a cluster of in.Nodes without holders
// (fresh, or a Planner's after reset, with its kept scratch).
func newSchedOn(cl *cluster, in *Input, cfg *Config) *sched {
	sc := cl.scr
	if sc == nil {
		sc = &scratch{}
	}
	sc.take(len(in.Jobs))
	s := &sched{
		in: in, cfg: cfg, cl: cl, scr: sc,
		plan:        model.Plan{Pending: make(map[model.JobID]string, len(in.Jobs))},
		jobs:        sc.jobs,
		tasksRun:    sc.tasksRun,
		dept:        sc.dept,
		part:        sc.part,
		partN:       sc.partN,
		ever:        sc.ever,
		failMin:     sc.failMin,
		nowC:        sc.nowC,
		miss:        sc.miss,
		preempted:   sc.preempted,
		victimList:  sc.victimList,
		preemptFail: sc.preemptFail,
		lazy:        sc.lazy,
		predicted:   sc.predicted[:0],
		lowestQOS:   -1,
	}
	for _, j := range in.Jobs {
		s.jobs[j.ID] = j
	}
	s.loadAllocs()
	if cfg.Policy == PolicyDefault {
		if p := cl.pool; p != nil {
			s.fs = p.fairShare(s)
		} else {
			s.fs = fairShare(in, cfg, s.jobs)
		}
	}
	return s
}

// loadAllocs turns every non-terminal allocation into a holder and counts
// the running work per department, partition and array.
func (s *sched) loadAllocs() {
	if p := s.cl.pool; p != nil {
		p.load(s)
		return
	}
	allocs := s.in.Allocs
	if !strictlySorted(allocs) {
		// (A strictly increasing input is the one order a sort gives, so
		// it is used as it is: hpcsim keeps its list so.)
		allocs = slices.Clone(allocs)
		slices.SortFunc(allocs, cmpAlloc)
	}
	s.allocs = allocs
	var tot runTotals
	for _, a := range allocs {
		if a.State.Terminal() {
			continue
		}
		n, u, ok := s.cl.allocUse(a)
		if !ok {
			continue
		}
		s.cl.add(n, holder{u: u, start: -1, end: s.holderEnd(a, n, nil), job: a.Job, task: a.Task})
		tot.add(s, a, len(a.Placement.Cores), len(a.Placement.GPUs))
	}
	tot.flush(s)
}

// holderEnd is when a running allocation's holder ends: its expected end,
// or the stop grace when it is being stopped. An end that is the job's
// prediction is kept for recheck, with the node (or the pool's run of
// nodes) it frees.
func (s *sched) holderEnd(a *model.Alloc, node int, nodes []int) int64 {
	end, predicted := s.allocEndBy(a)
	if a.StopRequested {
		return min(end, s.stopGrace())
	}
	if predicted {
		s.predicted = append(s.predicted, predictedEnd{off: end, node: node, nodes: nodes})
	}
	return end
}

// predictedEnd is a running holder whose end is its job's prediction:
// off from now, on node (full path) or on nodes (the pool's run).
type predictedEnd struct {
	off   int64
	node  int
	nodes []int
}

// runTotals adds the running work of allocations in gang order to the
// department, partition and array totals (loadAllocs, pool.load). The
// totals are added per job (consecutive allocations), not per allocation:
// the same sums with fewer map lookups. Allocations are sorted by gang, so
// a gang's first counted allocation is the one whose gang differs from the
// last counted.
type runTotals struct {
	last               gangKey
	counted            bool
	cj                 *model.Job
	cores, gpus, njobs int
}

// add counts a (or a run of its gang's allocations holding cores and gpus).
func (t *runTotals) add(s *sched, a *model.Alloc, cores, gpus int) {
	j := s.jobs[a.Job]
	if j == nil {
		return
	}
	if j != t.cj {
		t.flush(s)
		t.cj, t.cores, t.gpus, t.njobs = j, 0, 0, 0
	}
	t.cores += cores
	t.gpus += gpus
	if k := (gangKey{a.Job, a.Task}); !t.counted || k != t.last {
		t.last, t.counted = k, true
		t.njobs++
		s.tasksRun[a.Job]++
	}
}

// flush adds the current job's totals.
func (t *runTotals) flush(s *sched) {
	if t.cj != nil {
		s.count(t.cj, t.cores, t.gpus, t.njobs)
	}
}

// cmpAlloc orders allocations by gang: job, task, rank.
func cmpAlloc(a, b *model.Alloc) int {
	switch {
	case a.Job != b.Job:
		return cmpU(uint64(a.Job), uint64(b.Job))
	case a.Task != b.Task:
		return cmpU(uint64(a.Task), uint64(b.Task))
	}
	return a.Rank - b.Rank
}

// strictlySorted reports whether allocs are in strictly increasing
// cmpAlloc order (no two of one gang and rank).
func strictlySorted(allocs []*model.Alloc) bool {
	for i := 1; i < len(allocs); i++ {
		if cmpAlloc(allocs[i-1], allocs[i]) >= 0 {
			return false
		}
	}
	return true
}

// count adds work to the department's and partition's running totals.
func (s *sched) count(j *model.Job, cores, gpus, jobs int) {
	for _, m := range []struct {
		m   map[string]*usageCount
		key string
	}{{s.dept, j.Department}, {s.part, s.partition(j)}} {
		u := m.m[m.key]
		if u == nil {
			u = &usageCount{}
			m.m[m.key] = u
		}
		u.cores += cores
		u.gpus += gpus
		u.jobs += jobs
	}
}

// partition is the partition a job runs in (its own or the default).
func (s *sched) partition(j *model.Job) string {
	if j.Partition != "" {
		return j.Partition
	}
	return s.cfg.DefaultPartition
}

// partNodes returns the ready nodes of a partition ("" = every node), in
// name order.
func (s *sched) partNodes(part string) []int {
	if ns, ok := s.partN[part]; ok {
		return ns
	}
	ns := []int{}
	for i, n := range s.cl.nodes {
		if n.info.ready && (part == "" || n.info.node.Partition == part) {
			ns = append(ns, i)
		}
	}
	s.partN[part] = ns
	return ns
}

func cmpU(a, b uint64) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}
