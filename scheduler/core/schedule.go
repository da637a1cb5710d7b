package core

import (
	"cmp"
	"fmt"
	"slices"
	"strings"
	"time"

	"vhpc/scheduler/model"
)

// run is the cycle: candidates in priority order; each either starts now
// (as many array tasks as fit), gets a reservation (the first
// ReservationDepth blocked jobs), or gets a reason.
func (s *sched) run() {
	depth := 0
	switch s.cfg.Policy {
	case PolicyFCFSEasy, PolicySJFEasy:
		depth = 1
	case PolicyDefault:
		depth = max(s.cfg.ReservationDepth, 0)
	}
	var blockedBy model.JobID
	cands := s.candidates()
	s.protect = s.cfg.Estimate == EstimatePredicted && len(cands) > 0 && cands[0].starved
	if s.protect {
		s.leadID = cands[0].j.ID
		s.packDrain = s.cfg.Backfill == BackfillShortest && s.drainPacked(cands[0].j)
		// Within its grace the lead still trusts consistent predictions.
		over := s.wait(cands[0].j) - float64(s.starveAge)
		s.trust = over < float64(s.cfg.StarvationGrace)
	}
	s.yieldToShort(cands)
	sorted := s.cfg.Policy != PolicyDefault || s.cfg.Backfill == BackfillPriority
	for rank := range cands {
		if !sorted && s.nres >= depth {
			// Every reservation is placed: the rest only fill holes.
			s.backfillOrder(cands[rank:])
			sorted = true
		}
		c := cands[rank]
		j := c.j
		if c.yielded { // started in front of the wide lead: nothing left to plan
			if s.explain != nil && s.explain.id == j.ID {
				s.explain.record(s, c, rank, "")
			}
			continue
		}
		why := s.depReason(j)
		if why == "" {
			why = s.staticReason(j, c.key)
		}
		if why == "" && blockedBy != 0 {
			why = fmt.Sprintf("fcfs: waiting behind job %d", blockedBy)
		}
		if why == "" {
			var lz lazyReason
			var waits bool
			why, lz, waits = s.startAll(c, depth)
			if waits {
				lz.id = j.ID
				s.lazy = append(s.lazy, lz)
				if s.cfg.Policy == PolicyFCFS {
					blockedBy = j.ID
				}
			}
		}
		if why != "" {
			s.plan.Pending[j.ID] = why
		}
		if s.explain != nil && s.explain.id == j.ID {
			s.explain.record(s, c, rank, why)
		}
	}
	s.scr.lazy = s.lazy
	s.fillLazy()
	if s.cfg.Policy == PolicyDefault && s.cfg.StarvationAge > 0 {
		s.noteStarvation(cands)
	}
	if at := s.recheck(); at > 0 {
		s.plan.Recheck = s.in.Now.Add(time.Duration(at))
	}
	s.scr.predicted = s.predicted
	slices.SortFunc(s.plan.Starts, func(a, b model.Start) int {
		if a.Job != b.Job {
			return cmpU(uint64(a.Job), uint64(b.Job))
		}
		return cmpU(uint64(a.Task), uint64(b.Task))
	})
}

// yieldToShort starts, before a wide starving lead's reservation is
// placed (Config.DrainYield), the jobs behind it that are planned to run
// at most DrainYield, as many of an array's tasks as fit in order, and
// marks a job yielded once nothing of it is left to start. It starts
// nothing unless a packed drain leads (packDrain). A job waiting on a
// dependency or a static limit is left to the cycle, which gives it its
// reason; so are an array's tasks past a quota or its parallel limit,
// and those that do not fit now (the cycle reserves or backfills them
// behind the lead, from the first task not started here).
func (s *sched) yieldToShort(cands []candidate) {
	if !s.packDrain || s.cfg.DrainYield <= 0 {
		return
	}
	for i := 1; i < len(cands); i++ {
		c := &cands[i]
		j := c.j
		if c.starved {
			continue
		}
		d := s.planned(*c)
		if d > int64(s.cfg.DrainYield) || s.depReason(j) != "" || s.staticReason(j, c.key) != "" {
			continue
		}
		left := startsLeft(j)
		for ; c.started < left; c.started++ {
			if s.quotaReason(j) != "" || !s.tryStart(*c, startTask(j, c.started), d, false) {
				break
			}
		}
		c.yielded = c.started == left
	}
}

// startsLeft is how many starts j still needs: one for a plain job, its
// tasks left for an array. startAll and yieldToShort count with it.
func startsLeft(j *model.Job) int64 {
	if j.Array != nil {
		return j.TasksLeft()
	}
	return 1
}

// startTask is the task of j's i-th start (0 <= i < startsLeft): task 0
// for a plain job, the array's i-th task still to start
// (model.Job.TaskAt) otherwise.
func startTask(j *model.Job, i int64) int64 {
	if j.Array != nil {
		return j.TaskAt(i)
	}
	return 0
}

// speculativeHole is how long a hole must be for c to start
// speculatively (SpeculativeBackfill): its prediction plus
// Config.SpeculativeSlack times it, at most d, its planned walltime. The
// start is planned for that long. Called by startAll.
func (s *sched) speculativeHole(c candidate, d int64) int64 {
	return min(int64(float64(c.est)*(1+s.cfg.SpeculativeSlack)), d)
}

// planned is how long c is planned to run, in nanoseconds: its estimate,
// or while a starving job leads (protect) its walltime, so that nothing
// predicted too short overruns into the lead's reservation, unless the
// lead's grace still trusts c's consistent prediction. startAll and
// yieldToShort plan with it.
func (s *sched) planned(c candidate) int64 {
	if s.protect && !(s.trust && s.consistent(c.j)) {
		return int64(s.walltime(c.j))
	}
	return int64(c.est)
}

// drainPacked reports whether lead, the starving job that leads the
// cycle, is wide enough for Config.DrainPacking: it needs at least that
// share of the ready capacity.
func (s *sched) drainPacked(lead *model.Job) bool {
	if s.cfg.DrainPacking <= 0 {
		return false
	}
	capacity := s.capacity()
	return capacity > 0 && s.width(lead) >= s.cfg.DrainPacking*capacity
}

// backfillOrder sorts the candidates left behind the reservations for
// BackfillPacking: starving jobs first (oldest first), then urgent ones
// (past Config.SlowdownGuard) in priority order, then small jobs (area at
// most Config.SmallJobArea) by expansion factor, highest first, then the
// rest by area, largest first; ties keep priority order. BackfillShortest
// keeps the starving and urgent tiers and orders the rest by estimate,
// shortest first, but in a packed drain (Config.DrainPacking), where it
// orders them as BackfillPacking does with Config.DrainSmallArea.
func (s *sched) backfillOrder(rest []candidate) {
	small := s.cfg.SmallJobArea
	if s.packDrain {
		small = s.cfg.DrainSmallArea
	}
	for i := range rest {
		c := &rest[i]
		if s.cfg.Backfill == BackfillShortest && !s.packDrain {
			c.small, c.fill = false, -c.est.Seconds()
			continue
		}
		area := s.width(c.j) * c.est.Seconds()
		c.small = area <= small
		c.fill = area
		if c.small {
			c.fill = s.expansion(c.j, c.est)
		}
	}
	// A stable sort of small keys (the position breaks ties), then one
	// permutation: a candidate is large to move.
	keys := slices.Grow(s.scr.fillKeys[:0], len(rest))[:len(rest)]
	s.scr.fillKeys = keys
	for i := range rest {
		c := &rest[i]
		keys[i] = fillKey{c.starved, c.urgent, c.small, c.fill, i}
	}
	slices.SortFunc(keys, func(a, b fillKey) int {
		if c := trueFirst(a.starved, b.starved); c != 0 || a.starved {
			if c == 0 {
				return a.i - b.i
			}
			return c
		}
		if c := trueFirst(a.urgent, b.urgent); c != 0 {
			return c
		}
		if c := trueFirst(a.small, b.small); c != 0 {
			return c
		}
		if c := cmp.Compare(b.fill, a.fill); c != 0 {
			return c
		}
		return a.i - b.i
	})
	tmp := append(s.scr.fillBuf[:0], rest...)
	for i, k := range keys {
		rest[i] = tmp[k.i]
	}
	clear(tmp)
	s.scr.fillBuf = tmp
}

// fillKey is a candidate's backfill sort key and position.
type fillKey struct {
	starved, urgent, small bool
	fill                   float64
	i                      int
}

// startAll starts as many of c's tasks as fit (one for a plain job) and
// returns why the rest wait: a final reason, or (for resource waits,
// waits true) a lazy one completed with the placement miss after the
// cycle. The reason is empty and waits false when nothing is left.
func (s *sched) startAll(c candidate, depth int) (why string, lz lazyReason, waits bool) {
	j := c.j
	left := startsLeft(j)
	d := s.planned(c)
	for i := c.started; i < left; i++ { // yieldToShort may have started the first
		task := startTask(j, i)
		if why := s.quotaReason(j); why != "" {
			return why, lazyReason{}, false
		}
		if s.tryStart(c, task, d, false) {
			continue
		}
		if s.protect && s.speculative() && d > int64(c.est) && !c.starved && !ranBefore(j, task) {
			// Its walltime does not fit in front of the starving job's
			// reservation; its prediction may (SpeculativeBackfill).
			// Not for a rerun: a gang preempted past its prediction
			// would fit the same hole again and be stopped again,
			// StopGrace after StopGrace, until the reservation comes.
			if s.tryStart(c, task, s.speculativeHole(c, d), true) {
				continue
			}
		}
		// The slowdown guard's reservations come on top of the depth.
		count, limit := &s.nres, depth
		if c.urgent {
			count, limit = &s.nurgent, s.cfg.SlowdownReservations
		}
		if why := s.tryPreempt(c, task, d); why != "" {
			// The preempting task is reserved at the stop grace: that
			// is this job's reservation, counted like any other.
			*count++
			return why, lazyReason{}, false
		}
		lz = lazyReason{key: c.key, prefix: waitPrefix}
		if *count >= limit {
			return "", lz, true
		}
		t, nodes, uses, ok := s.earliestFor(c, d)
		if !ok {
			lz.prefix = "waiting for resources (no start time found while running jobs end): "
			return "", lz, true
		}
		if t == 0 { // fits now after all (a different node order): start it
			s.start(c, task, nodes, uses, d, false)
			continue
		}
		s.reserve(c, task, nodes, uses, t, d)
		*count++
		at := s.in.Now.Add(time.Duration(t)).UTC().Format(time.RFC3339)
		lz.prefix = fmt.Sprintf("reserved: expected to start at %s on %s (%s", at, nodeList(s, nodes), waitPrefix)
		lz.suffix = ")"
		return "", lz, true
	}
	return "", lazyReason{}, false
}

// tryStart places one task of c now, if it fits without touching any
// reservation before it would end; speculative marks the start
// (model.Start.Speculative: d is the prediction where the walltime did
// not fit).
func (s *sched) tryStart(c candidate, task int64, d int64, speculative bool) bool {
	if m, ok := s.failMin[c.key]; ok && d >= m {
		return false
	}
	if picked, uses, ok := s.gangNow(c, d); ok {
		s.start(c, task, picked, uses, d, speculative)
		return true
	}
	if m, ok := s.failMin[c.key]; !ok || d < m {
		s.failMin[c.key] = d
	}
	return false
}

// nowNodes lists the partition's nodes whose current free totals pass the
// quick check for key; cached until the plan changes.
func (s *sched) nowNodes(key shapeKey) []int {
	nc, ok := s.nowC[key]
	if ok && nc.gen == s.cl.gen {
		return nc.nodes
	}
	// The stale list's storage is reused: tryStart, the only caller, is
	// done with it before the plan changes.
	out := nc.nodes[:0]
	for _, n := range s.partNodes(key.part) {
		if quickFits(&s.cl.nodes[n].now, &key.req) {
			out = append(out, n)
		}
	}
	s.nowC[key] = nowCache{gen: s.cl.gen, nodes: out}
	return out
}

// start adds a start to the plan and its holders to the cluster.
func (s *sched) start(c candidate, task int64, nodes []int, uses []use, d int64, speculative bool) {
	j := c.j
	st := model.Start{Job: j.ID, Task: task, Placements: s.placements(j, nodes, uses), Speculative: speculative}
	cores, gpus := 0, 0
	s.cl.hold(nodes, uses, 0, d, j.ID, task)
	for _, p := range st.Placements {
		cores += len(p.Cores)
		gpus += len(p.GPUs)
	}
	s.plan.Starts = append(s.plan.Starts, st)
	s.tasksRun[j.ID]++
	s.count(j, cores, gpus, 1)
}

// reserve holds the gang's resources from t for d and records it. The
// caller counts it against the reservation depth where it applies.
func (s *sched) reserve(c candidate, task int64, nodes []int, uses []use, t, d int64) {
	j := c.j
	s.cl.hold(nodes, uses, t, t+d, j.ID, task)
	ps, names := s.reservedOn(j, nodes, uses)
	s.plan.Reservations = append(s.plan.Reservations, model.Reservation{
		Job: j.ID, Task: task, Nodes: names, Placements: ps,
		At: s.in.Now.Add(time.Duration(t)), End: s.in.Now.Add(time.Duration(t + d)),
	})
}

// placements converts uses to model placements sorted by node name (the
// gang's rank order). Node indexes follow name order (newCluster), so the
// indexes are sorted instead of the names.
func (s *sched) placements(j *model.Job, nodes []int, uses []use) []model.Placement {
	if p := s.cl.pool; p != nil {
		return p.placements(s, j, nodes, uses)
	}
	ps := make([]model.Placement, len(nodes))
	nis := make([]*nodeInfo, len(nodes))
	for i, n := range nodes {
		nis[i] = s.cl.nodes[n].info
	}
	b := newPlacementBufs(nis, uses)
	for i, k := range byNodeIndex(nodes) {
		ps[i] = nis[k].placementOf(&uses[k], &j.Request, &b)
	}
	return ps
}

// byNodeIndex returns the positions of nodes in increasing node index
// (= name) order.
func byNodeIndex(nodes []int) []int {
	// Sort (index, position) pairs packed in one word: an ordered sort
	// without a comparison function. Indexes and positions are below 2^31.
	keys := make([]uint64, len(nodes))
	for i, n := range nodes {
		keys[i] = uint64(n)<<32 | uint64(i)
	}
	slices.Sort(keys)
	order := make([]int, len(nodes))
	for i, k := range keys {
		order[i] = int(k & (1<<32 - 1))
	}
	return order
}

// nodeList names nodes in name order for a reason: all of them, or the
// count and the first four (found in one pass, not by sorting all).
func nodeList(s *sched, nodes []int) string {
	first := nodes[:min(len(nodes), 4)]
	if !slices.IsSorted(nodes) {
		first = make([]int, 0, 5)
		for _, n := range nodes {
			if i, _ := slices.BinarySearch(first, n); i < 4 {
				first = slices.Insert(first, i, n)
				first = first[:min(len(first), 4)]
			}
		}
	}
	names := make([]string, len(first))
	for i, n := range first {
		names[i] = s.cl.nodes[n].info.node.Name
	}
	if len(nodes) > 4 {
		return fmt.Sprintf("%d nodes (%s, ...)", len(nodes), strings.Join(names, ", "))
	}
	return strings.Join(names, ", ")
}

// ranBefore reports whether task of j has been started before and is
// waiting again (preempted, requeued by its node, or retried after a
// failure): a job's Attempt once placed, an array task among
// RetryTasks. startAll never starts such a task speculatively.
func ranBefore(j *model.Job, task int64) bool {
	if j.Array != nil {
		return slices.Contains(j.RetryTasks, task)
	}
	return j.Attempt > 0
}
