package core

import (
	"cmp"
	"math/bits"
	"slices"

	"vhpc/scheduler/model"
)

// pool is a Planner's fast path for a one-slot cluster (see oneSlot): every
// node is identical and holds one job at a time, so a node is either held
// now (by a running allocation or a start of this plan, until an end) or
// free, and a free node may carry reservations. The cycle is the same
// sched.run with the same decisions; only the cluster operations it calls
// (loadAllocs, the start now, earliest, add, the static and miss counts)
// are answered from that state instead of per-node timelines, giving the
// same nodes in the same order as the timelines would (cmpCand's order
// reduces to the rules below, see gangNow and earliest).
//
// What the pool cannot answer the same way (a request other than one whole
// core and no GPU, a second reservation before earliest, an allocation
// without its core or two on one node, a partition, a zero estimate) sets
// abort: the Planner then discards the plan and runs the cycle on the full
// path (TestPoolMatchesSchedule, TestReplayPlannerMatchesRebuild).
//
// Between calls it keeps each run of allocations (one gang's consecutive
// allocations with the same times) with its node indexes, so that a cycle
// reads the running allocations with pointer comparisons and a word per
// 64 nodes, not a holder per node: an allocation the Planner has seen is
// never changed in place (the Planner's contract), so a run of the same
// pointers is the same run.
type pool struct {
	groups map[*model.Alloc]*runGroup // by the run's first allocation
	call   uint64
	// off is set after an abort: the Planner stops trying the pool.
	off bool
	// retry marks this call's abort as one of this call only (see
	// preempt): the Planner falls back without setting off.
	retry bool

	// Per call.
	abort   bool
	n       int         // nodes
	busy    bitset      // held now: running allocations and this plan's starts
	nbusy   int         // busy.count()
	nspec   int         // busy nodes of speculative runs (see preempt)
	runs    []run       // what holds busy nodes, with its end
	live    []*runGroup // every run of live allocations load read, in order
	fmin    []int64     // earliest reservation start per node (never: none)
	touched []int       // nodes with fmin != never
	nres    int         // reservation holders added this call
	picks   []int       // scratch for earliest
	// gang holds the nodes gangNow and earliest return, valid until the
	// next of them: start and reserve copy what they keep.
	gang    []int
	order   []int
	stretch [][2]int // scratch for sorted
	sortBuf []*model.Alloc
	// useBuf holds useReq's use on a free node, repeated (see uses).
	useBuf []use
	useReq model.Request
	// res is the last reservation's placements (see reservedOn).
	res struct {
		req   model.Request
		nodes []int // sorted
		ps    []model.Placement
		names []string
	}
	mark bitset // scratch for inOrder and preempt
	// endOf and runOf are preempt's scratch: each node's holder end (0
	// when free) and the index of its run in runs.
	endOf []int64
	runOf []int
}

// runGroup is a run of allocations kept between calls: its allocations (to
// check that a later call's run is the same) and what they hold.
type runGroup struct {
	allocs      []*model.Alloc
	nodes       []int // node indexes in the cluster, sorted
	cores, gpus int   // len of the placements' Cores and GPUs, summed
	// allCores and allGPUs are the same sums over every allocation of
	// the run, on a node of the cluster or not (runningWork).
	allCores, allGPUs int
	// sameSize: every placement has the first's numbers of cores and GPUs.
	sameSize bool
	// uniform: every allocation is charged as the first (sameSize, and
	// the same state: a run already shares the job and times), so
	// fairShare adds the first's charge for each.
	uniform bool
	// words are the nodes as a bitset's nonzero words (wordsOf), which
	// load ors into the busy set a word at a time.
	words []bitWord
	seen  uint64
}

// run is one holder of busy nodes in a call: a running run of allocations
// or a start of this plan, with the end the plan expects.
type run struct {
	end   int64
	nodes []int
}

// oneSlot reports whether cl is a cluster the pool covers: at least one
// node, every node ready, in no partition, with the same hardware of one
// NUMA node, one usable logical CPU and no GPU.
func oneSlot(cl *cluster) bool {
	if len(cl.nodes) == 0 {
		return false
	}
	h := cl.nodes[0].info.hw
	if len(h.numaID) != 1 || len(h.phys) != 1 || len(h.phys[0].ids) != 1 || len(h.gpus) != 0 {
		return false
	}
	for _, ns := range cl.nodes {
		if ns.info.hw != h || !ns.info.ready || ns.info.node.Partition != "" {
			return false
		}
	}
	return true
}

// begin readies the per-call state for a cluster of n nodes.
func (p *pool) begin(n int) {
	p.abort, p.retry = false, false
	p.n = n
	if len(p.busy) != (n+63)/64 {
		p.busy = newBitset(n)
		p.fmin = make([]int64, n)
		for i := range p.fmin {
			p.fmin[i] = never
		}
	}
	clear(p.busy)
	for _, i := range p.touched {
		p.fmin[i] = never
	}
	p.touched = p.touched[:0]
	p.runs = p.runs[:0]
	p.live = p.live[:0]
	p.nbusy, p.nres, p.nspec = 0, 0, 0
	if p.groups == nil {
		p.groups = map[*model.Alloc]*runGroup{}
	}
	p.call++
}

// sameRun reports whether b continues a's run: a live allocation of the
// same gang with the same times and stop request, so the same holder end.
func sameRun(a, b *model.Alloc) bool {
	return (b.State == a.State || !b.State.Terminal()) && b.Job == a.Job && b.Task == a.Task && b.StopRequested == a.StopRequested &&
		b.Started == a.Started && b.Created == a.Created && b.Deadline == a.Deadline
}

// load is loadAllocs on the pool: the same running totals, computed per
// run of allocations, and each run's nodes marked busy until its end.
func (p *pool) load(s *sched) {
	allocs := p.sorted(s.in.Allocs)
	s.allocs = allocs
	var tot runTotals
	for i := 0; i < len(allocs); {
		a := allocs[i]
		g := p.keptRun(allocs, i)
		if g == nil {
			if a.State.Terminal() {
				i++
				continue
			}
			k := i + 1
			for k < len(allocs) && sameRun(a, allocs[k]) {
				k++
			}
			if g = p.group(s, allocs[i:k]); g == nil {
				p.abort = true
				return
			}
		}
		g.seen = p.call
		p.live = append(p.live, g)
		i += len(g.allocs)
		if len(g.nodes) == 0 {
			continue
		}
		end := s.holderEnd(a, -1, g.nodes)
		p.busy.or(g.words)
		p.nbusy += len(g.nodes)
		if a.Speculative {
			p.nspec += len(g.nodes)
		}
		p.runs = append(p.runs, run{end: end, nodes: g.nodes})
		tot.add(s, a, g.cores, g.gpus)
	}
	if p.busy.count() != p.nbusy {
		p.abort = true // two holders on one node
		return
	}
	tot.flush(s)
	p.forget()
}

// fairShare is fairShare over Input.Allocs in the order given, with the
// runs load kept: where the list holds a run of this call whole, in its
// order, and the run is uniform, its charge is added once per allocation
// without comparing each (the same additions in the same order; a
// department's sum depends on that order). Anything else is counted
// allocation by allocation, as fairShare does.
func (p *pool) fairShare(s *sched) map[string]float64 {
	if p.abort {
		return fairShare(s.in, s.cfg, s.jobs)
	}
	ch := newCharger(s.in, s.cfg, s.jobs)
	allocs := s.in.Allocs
	for i := 0; i < len(allocs); {
		a := allocs[i]
		if g := p.groups[a]; g != nil && g.seen == p.call && g.uniform && len(g.allocs) <= len(allocs)-i &&
			slices.Equal(g.allocs, allocs[i:i+len(g.allocs)]) {
			ch.add(a, len(g.allocs))
			i += len(g.allocs)
			continue
		}
		ch.add(a, 1)
		i++
	}
	return ch.factors()
}

// sorted returns allocs in cmpAlloc order, as loadAllocs sorts them. A
// replay appends each gang whole, so the list is a few increasing stretches
// of whole gangs: those are sorted by their first allocation (a few hundred
// keys, not thousands of allocations), and the full sort is the fallback
// when the result is not strictly increasing. A kept run (see keptRun) is
// known to be in order, so a stretch starting with one is found by
// pointer comparisons, not by reading each allocation.
func (p *pool) sorted(allocs []*model.Alloc) []*model.Alloc {
	p.stretch = p.stretch[:0]
	inOrder := true
	for i := 0; i < len(allocs); {
		if i > 0 && cmpAlloc(allocs[i-1], allocs[i]) >= 0 {
			inOrder = false
		}
		k := i + 1
		if g := p.keptAt(allocs, i); g != nil {
			// A kept run: cut from an earlier call's sorted list, so
			// in order (its allocations are the same, unchanged).
			k = i + len(g.allocs)
		}
		for k < len(allocs) && allocs[k].Job == allocs[i].Job && allocs[k].Task == allocs[i].Task &&
			allocs[k-1].Rank < allocs[k].Rank {
			k++
		}
		p.stretch = append(p.stretch, [2]int{i, k})
		i = k
	}
	if inOrder {
		return allocs
	}
	slices.SortFunc(p.stretch, func(a, b [2]int) int { return cmpAlloc(allocs[a[0]], allocs[b[0]]) })
	out := p.sortBuf[:0]
	for i, st := range p.stretch {
		if i > 0 && cmpAlloc(out[len(out)-1], allocs[st[0]]) >= 0 {
			// Stretches overlap (a gang split, or listed twice): sort all.
			out = append(out[:0], allocs...)
			slices.SortFunc(out, cmpAlloc)
			break
		}
		out = append(out, allocs[st[0]:st[1]]...)
	}
	p.sortBuf = out
	return out
}

// keptRun returns the kept group whose run starts at allocs[i] when the
// run is still exactly that group's: the same allocation pointers, and
// the allocation after them not continuing the run (sameRun). As the
// allocations are not changed in place, their states, stop requests,
// jobs and times are those the group was made from. nil: the run is
// new or changed, and load scans and converts it (group).
func (p *pool) keptRun(allocs []*model.Alloc, i int) *runGroup {
	g := p.keptAt(allocs, i)
	if g == nil {
		return nil
	}
	if k := i + len(g.allocs); k < len(allocs) && sameRun(allocs[i], allocs[k]) {
		return nil
	}
	return g
}

// keptAt returns the kept group whose allocations start allocs[i:], the
// same pointers in the same order; nil if there is none.
func (p *pool) keptAt(allocs []*model.Alloc, i int) *runGroup {
	g := p.groups[allocs[i]]
	if g == nil || i+len(g.allocs) > len(allocs) || !slices.Equal(g.allocs, allocs[i:i+len(g.allocs)]) {
		return nil
	}
	return g
}

// group converts the run as (live allocations, sameRun with the first)
// and keeps it by its first allocation; nil when an allocation on a node
// of the cluster does not hold its core.
func (p *pool) group(s *sched, as []*model.Alloc) *runGroup {
	g := &runGroup{allocs: slices.Clone(as), sameSize: true, uniform: true}
	ni := s.cl.nodes[0].info
	for _, a := range as {
		g.sameSize = g.sameSize && len(a.Placement.Cores) == len(as[0].Placement.Cores) &&
			len(a.Placement.GPUs) == len(as[0].Placement.GPUs)
		g.uniform = g.uniform && a.State == as[0].State
		g.allCores += len(a.Placement.Cores)
		g.allGPUs += len(a.Placement.GPUs)
		n, ok := s.cl.byName[a.Placement.Node]
		if !ok {
			continue
		}
		// The use allocUse would convert takes the node's one core if
		// any listed core is it (there are no GPUs to take).
		if !slices.ContainsFunc(a.Placement.Cores, func(c int) bool { _, ok := ni.physOf(c); return ok }) {
			return nil
		}
		g.nodes = append(g.nodes, n)
		g.cores += len(a.Placement.Cores)
		g.gpus += len(a.Placement.GPUs)
	}
	slices.Sort(g.nodes)
	g.uniform = g.uniform && g.sameSize
	g.words = wordsOf(g.nodes)
	p.groups[as[0]] = g
	return g
}

// forget drops the kept groups this call did not see, once they are many.
func (p *pool) forget() {
	seen := len(p.runs)
	if len(p.groups) <= 2*seen+256 {
		return
	}
	for a, g := range p.groups { // deletes only: the order does not matter
		if g.seen != p.call {
			delete(p.groups, a)
		}
	}
}

// covers reports whether the pool answers placement of r in part for d the
// way the full path would; when not, the call aborts.
func (p *pool) covers(s *sched, r *model.Request, part string, d int64) bool {
	ni := s.cl.nodes[0].info
	ok := !p.abort && part == "" && d > 0 && r.GPUs == 0 && r.CoresPerNode() == 1 &&
		quickFits(&ni.full, r) && s.cl.pl.fits(ni, &ni.full, r)
	if !ok {
		p.abort = true
	}
	return ok
}

// uses is one node's use of r (the same on every free node), n times. The
// slice is the pool's, valid until the next call: start and reserve copy
// the uses into holders and placements before the cycle asks again.
func (p *pool) uses(s *sched, r *model.Request, n int) []use {
	key := *r
	key.Nodes = 0 // a node's use does not depend on the gang's size
	if len(p.useBuf) == 0 || p.useReq != key {
		ni := s.cl.nodes[0].info
		u, _ := s.cl.pl.place(ni, &ni.full, r)
		p.useBuf, p.useReq = append(p.useBuf[:0], u), key
	}
	for len(p.useBuf) < n {
		p.useBuf = append(p.useBuf, p.useBuf[0])
	}
	return p.useBuf[:n:n]
}

// gangNow is gangAt at now over the free nodes (nowNodes): a free node
// fits for d unless a reservation on it starts before d. cmpCand then
// orders them by idle gap, which is the reservation's start minus d on a
// reserved node and openEnded on the others: reserved nodes first, by
// reservation start, then the rest, each by node index.
func (p *pool) gangNow(s *sched, r *model.Request, part string, d int64) ([]int, []use, bool) {
	if !p.covers(s, r, part, d) {
		return nil, nil, false
	}
	want := max(r.Nodes, 1)
	free := p.n - p.nbusy
	if free < want {
		return nil, nil, false
	}
	p.order = p.order[:0]
	for _, n := range p.touched {
		if p.busy.has(n) {
			continue
		}
		if p.fmin[n] < d {
			free--
		} else {
			p.order = append(p.order, n)
		}
	}
	if free < want {
		return nil, nil, false
	}
	slices.SortFunc(p.order, func(a, b int) int {
		if p.fmin[a] != p.fmin[b] {
			return cmp.Compare(p.fmin[a], p.fmin[b])
		}
		return a - b
	})
	picked := append(p.gang[:0], p.order[:min(want, len(p.order))]...)
	picked = p.freeOpen(picked, want)
	p.gang = picked
	return picked, p.uses(s, r, want), true
}

// freeOpen appends free nodes without a reservation, lowest index first,
// until picked holds want.
func (p *pool) freeOpen(picked []int, want int) []int {
	for w := 0; w < len(p.busy) && len(picked) < want; w++ {
		for b := 0; b < 64 && len(picked) < want; b++ {
			n := w*64 + b
			if n >= p.n {
				break
			}
			if !p.busy.has(n) && p.fmin[n] == never {
				picked = append(picked, n)
			}
		}
	}
	return picked
}

// earliest is cluster.earliest on the pool, before any reservation of the
// call (after one, the call aborts). A free node fits from now, a busy one
// from its holder's end, and nothing starts after either, so the gang
// first fits at t, the want-th smallest of those times, on every node
// free by t; cmpCand orders them by idle gap t - (the end, 0 for a free
// node) + openEnded: the latest end first, free nodes last, each by index.
func (p *pool) earliest(s *sched, r *model.Request, part string, d int64) (int64, []int, []use, bool) {
	if !p.covers(s, r, part, d) || p.nres > 0 {
		p.abort = true
		return 0, nil, nil, false
	}
	want := max(r.Nodes, 1)
	free := p.n - p.nbusy
	if free >= want {
		p.gang = p.freeOpen(p.gang[:0], want)
		return 0, p.gang, p.uses(s, r, want), true
	}
	// Runs by end, then the want-free'th busy node's end is t.
	p.order = p.order[:0]
	for i := range p.runs {
		if p.runs[i].end != never {
			p.order = append(p.order, i)
		}
	}
	slices.SortFunc(p.order, func(a, b int) int { return cmp.Compare(p.runs[a].end, p.runs[b].end) })
	need, t, last := want-free, int64(0), -1
	for k, i := range p.order {
		need -= len(p.runs[i].nodes)
		if need <= 0 {
			t, last = p.runs[i].end, k
			break
		}
	}
	if last < 0 {
		return 0, nil, nil, false
	}
	// Take the latest ends first; runs that end together tie by index.
	for last+1 < len(p.order) && p.runs[p.order[last+1]].end == t {
		last++
	}
	picked := p.gang[:0]
	for hi := last; hi >= 0 && len(picked) < want; {
		lo := hi
		for lo > 0 && p.runs[p.order[lo-1]].end == p.runs[p.order[hi]].end {
			lo--
		}
		p.picks = p.picks[:0]
		for _, i := range p.order[lo : hi+1] {
			p.picks = append(p.picks, p.runs[i].nodes...)
		}
		slices.Sort(p.picks)
		picked = append(picked, p.picks[:min(len(p.picks), want-len(picked))]...)
		hi = lo - 1
	}
	picked = p.freeOpen(picked, want)
	p.gang = picked
	// In node order, which is how reserve and the reason use them (a
	// gang's order never shows: placements and names are sorted).
	return t, p.inOrder(picked), p.uses(s, r, want), true
}

// add is cluster.add on the pool, for one holder (preemption's
// re-attach; off on the pool, so only for completeness).
func (p *pool) add(n int, h holder) { p.hold([]int{n}, h.start, h.end) }

// hold records a gang's holders over [start, end) on nodes: from now, the
// nodes are busy until end (one run); later, a reservation that starts at
// start on each of them.
func (p *pool) hold(nodes []int, start, end int64) {
	if start > 0 {
		for _, n := range nodes {
			if p.fmin[n] == never {
				p.touched = append(p.touched, n)
			}
			p.fmin[n] = min(p.fmin[n], start)
		}
		p.nres += len(nodes)
		return
	}
	for _, n := range nodes {
		if p.busy.has(n) {
			p.abort = true
			return
		}
		p.busy.set(n)
	}
	p.nbusy += len(nodes)
	p.runs = append(p.runs, run{end: end, nodes: slices.Clone(nodes)})
}

// fits is everReason's count on the pool: every node or none, all ready.
func (p *pool) fits(s *sched, r *model.Request, part string) (fitAll, fitReady int) {
	ni := s.cl.nodes[0].info
	if part != "" || !s.cl.pl.fits(ni, &ni.full, r) {
		return 0, 0
	}
	return p.n, p.n
}

// miss is missStats on the pool. A free node's view is the whole node, a
// busy one has no core left, so the counts follow from the free count;
// the memory maxima are left at 0 when no node is free, where formatMiss
// stops at the cores.
func (p *pool) miss(s *sched, r *model.Request, part string) missStats {
	var st missStats
	if !p.covers(s, r, part, 1) {
		return st
	}
	free := p.n - p.nbusy
	if free == 0 {
		return st
	}
	full := &s.cl.nodes[0].info.full
	st.fit = free
	st.cNode, st.cNUMA = full.log, full.numaLog[0]
	st.mem, st.huge, st.scratch = full.regTot, full.hugeTot, full.scratch
	return st
}

// gangNow places c's gang now for d: nowNodes and gangAt, or the pool's
// answer on a one-slot cluster. Called by tryStart.
func (s *sched) gangNow(c candidate, d int64) ([]int, []use, bool) {
	r := &c.j.Request
	if p := s.cl.pool; p != nil {
		return p.gangNow(s, r, c.key.part, d)
	}
	nodes := s.nowNodes(c.key)
	if len(nodes) < max(r.Nodes, 1) {
		return nil, nil, false
	}
	return s.cl.gangAt(r, s.imageNodes(c.j), nodes, 0, d)
}

// earliestFor is cluster.earliest for c over its partition, or the pool's
// answer on a one-slot cluster. Called by startAll.
func (s *sched) earliestFor(c candidate, d int64) (int64, []int, []use, bool) {
	if p := s.cl.pool; p != nil {
		return p.earliest(s, &c.j.Request, c.key.part, d)
	}
	return s.cl.earliest(&c.j.Request, s.imageNodes(c.j), s.partNodes(c.key.part), d)
}

// reservedOn returns the placements of a reservation of j on nodes, in
// name order, and the node names. On the pool, a reservation of the same
// request on the same nodes as the last one gets the last one's slices:
// equal values, shared storage (see Planner: plans are read-only).
// Called by reserve.
func (s *sched) reservedOn(j *model.Job, nodes []int, uses []use) ([]model.Placement, []string) {
	p := s.cl.pool
	if p == nil {
		return s.newReservedOn(j, nodes, uses)
	}
	sorted := nodes
	if !slices.IsSorted(nodes) {
		sorted = p.inOrder(slices.Clone(nodes))
	}
	if p.res.ps != nil && p.res.req == j.Request && slices.Equal(p.res.nodes, sorted) {
		return p.res.ps, p.res.names
	}
	ps, names := s.newReservedOn(j, sorted, uses)
	p.res.req, p.res.nodes, p.res.ps, p.res.names = j.Request, append(p.res.nodes[:0], sorted...), ps, names
	return ps, names
}

func (s *sched) newReservedOn(j *model.Job, nodes []int, uses []use) ([]model.Placement, []string) {
	ps := s.placements(j, nodes, uses)
	names := make([]string, len(ps))
	for i, p := range ps {
		names[i] = p.Node
	}
	return ps, names
}

// inOrder sorts nodes (distinct indexes) in place, by marking them in a
// bitset: O(nodes/64 + len) instead of a sort.
func (p *pool) inOrder(nodes []int) []int {
	if len(p.mark) != len(p.busy) {
		p.mark = newBitset(p.n)
	}
	for _, n := range nodes {
		p.mark.set(n)
	}
	out := nodes[:0]
	for w, word := range p.mark {
		for word != 0 {
			b := bits.TrailingZeros64(word)
			out = append(out, w*64+b)
			word &^= 1 << uint(b)
		}
		p.mark[w] = 0
	}
	return out
}

// placements is sched.placements on the pool: every node of a one-slot
// cluster takes the same use (uses[0]), so each placement is the same
// cores, NUMA ids and amounts on its node, in node order; the slices are
// cut from three shared arrays as newPlacementBufs and placementOf cut
// them (capped at their length, GPU lists empty but not nil).
func (p *pool) placements(s *sched, j *model.Job, nodes []int, uses []use) []model.Placement {
	if !slices.IsSorted(nodes) {
		nodes = p.inOrder(slices.Clone(nodes))
	}
	ni := s.cl.nodes[0].info
	var one placementBufs
	tpl := ni.placementOf(&uses[0], &j.Request, &one)
	nc, nn := len(tpl.Cores), len(tpl.NUMA)
	cores, numa := make([]int, nc*len(nodes)), make([]int, nn*len(nodes))
	gpus := make([]string, 0)
	ps := make([]model.Placement, len(nodes))
	// Field by field into the zeroed array (placementOf sets these
	// fields, and a gang's differ only in the node): cheaper than
	// copying the whole struct, pointers included, for thousands of
	// nodes of a wide reservation.
	for i, n := range nodes {
		pl := &ps[i]
		pl.Node = s.cl.nodes[n].info.node.Name
		pl.Cores = cores[i*nc : (i+1)*nc : (i+1)*nc]
		copy(pl.Cores, tpl.Cores)
		pl.NUMA = numa[i*nn : (i+1)*nn : (i+1)*nn]
		copy(pl.NUMA, tpl.NUMA)
		pl.GPUs = gpus[0:0:0]
		pl.MemoryMiB, pl.Scratch, pl.Hugepages = tpl.MemoryMiB, tpl.Scratch, tpl.Hugepages
	}
	return ps
}

// preempt is preemptSearch on the pool (SpeculativeBackfill's victims:
// the pool runs no QOS preemption), with the same outcome, victims and
// gang. On a one-slot cluster a node fits the task over [grace, grace+d)
// exactly when nothing holds it then: it is free or its holder ends by
// the grace (or is a detached victim's), and no reservation on it starts
// before grace+d. So the search counts nodes instead of re-examining
// timelines: each victim frees the nodes it holds past the grace that no
// reservation blocks, victims are taken in order until enough fit and
// put back, most valuable first, where the rest still suffice, as the
// full path's detach-and-recheck does. The gang is then the fitting nodes
// in cmpCand's order, which on identical one-core nodes is the idle gap
// (see idleGap) and the index.
//
// The pool keeps only a node's earliest reservation start, not its end:
// a reservation that starts before the grace (and could end before it)
// makes the call fall back to the full path for this call only (retry).
// A preemption also sets retry: the preempting task's reservation is a
// second one before any later earliest, which the pool does not answer.
func (p *pool) preempt(s *sched, c candidate, grace, d int64, victims func() []victim) preemptFit {
	r := &c.j.Request
	if !p.covers(s, r, c.key.part, d) {
		return preemptFit{}
	}
	for _, n := range p.touched {
		if p.fmin[n] < grace {
			p.abort, p.retry = true, true
			return preemptFit{}
		}
	}
	if len(p.endOf) != p.n {
		p.endOf, p.runOf = make([]int64, p.n), make([]int, p.n)
	}
	clear(p.endOf)
	for i, ru := range p.runs {
		for _, n := range ru.nodes {
			p.endOf[n], p.runOf[n] = ru.end, i
		}
	}
	unreserved := func(n int) bool { return p.fmin[n] >= grace+d }
	want := max(r.Nodes, 1)
	fitting := 0
	for n := range p.n {
		if p.endOf[n] <= grace && unreserved(n) {
			fitting++
		}
	}
	if fitting >= want {
		return preemptFit{enough: true}
	}
	if fitting+p.nspec < want {
		return preemptFit{} // even every speculative gang would not free enough
	}
	vs := victims()
	var gains []int
	for _, v := range vs {
		g := 0
		for _, n := range v.nodes {
			if p.endOf[n] > grace && unreserved(n) {
				g++
			}
		}
		gains = append(gains, g)
		if fitting += g; fitting >= want {
			break
		}
	}
	if fitting < want {
		return preemptFit{}
	}
	chosen := make([]bool, len(gains))
	for i := len(gains) - 1; i >= 0; i-- {
		if fitting-gains[i] >= want {
			fitting -= gains[i]
			continue
		}
		chosen[i] = true
	}
	fit := preemptFit{}
	if len(p.mark) != len(p.busy) {
		p.mark = newBitset(p.n)
	}
	for i, v := range vs[:len(gains)] {
		if !chosen[i] {
			continue
		}
		fit.chosen = append(fit.chosen, v)
		for _, n := range v.nodes {
			p.mark.set(n) // detached
		}
	}
	// The fitting nodes by idle gap, then index; the gang takes the first.
	type gapNode struct {
		gap int64
		n   int
	}
	var cands []gapNode
	for n := range p.n {
		detached := p.mark.has(n)
		if !unreserved(n) || (!detached && p.endOf[n] > grace) {
			continue
		}
		lastEnd, next := int64(0), openEnded
		if !detached {
			lastEnd = max(p.endOf[n], 0)
		}
		if p.fmin[n] != never {
			next = p.fmin[n] - (grace + d)
		}
		cands = append(cands, gapNode{grace - lastEnd + next, n})
	}
	slices.SortFunc(cands, func(a, b gapNode) int {
		if a.gap != b.gap {
			return cmp.Compare(a.gap, b.gap)
		}
		return a.n - b.n
	})
	for _, cd := range cands[:want] {
		fit.picked = append(fit.picked, cd.n)
	}
	fit.uses = p.uses(s, r, want)
	// The victims hold their nodes until their guests stop.
	for _, v := range fit.chosen {
		for _, n := range v.nodes {
			p.runs[p.runOf[n]].end = min(p.runs[p.runOf[n]].end, grace)
			p.mark.clear(n)
		}
	}
	p.retry = true
	return fit
}

// runningWork is sched.runningWork on the runs load read: the same runs
// in the same order, so the same sum.
func (p *pool) runningWork(s *sched) float64 {
	var work float64
	for _, g := range p.live {
		work += (float64(g.allCores) + s.cfg.GPUWeight*float64(g.allGPUs)) * float64(s.allocEnd(g.allocs[0]))
	}
	return work
}
