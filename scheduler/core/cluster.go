package core

import (
	"math"
	"slices"
	"strings"

	"vhpc/scheduler/model"
)

// never is the end of time for the timeline (offsets from now, ns).
const never = int64(math.MaxInt64)

// holder is one claim on a node's resources over [start, end), in ns
// relative to Input.Now: running allocations (start <= 0), starts made in
// this plan (start 0) and reservations (start > 0).
type holder struct {
	u          use
	start, end int64
	job        model.JobID
	task       int64
}

// nodeState is one node during a Schedule call: its hardware, every holder,
// and the free view at "now", kept up to date as the plan grows.
type nodeState struct {
	info      *nodeInfo
	holders   []holder
	now       free
	futureMin int64 // earliest start of a holder with start > 0
	// dirty is true once the node got a holder since the last reset (it
	// is then listed in cluster.dirty).
	dirty bool
}

// cluster is the mutable planning state of one Schedule call. A Planner
// keeps it between calls over the same nodes: the index (names, hardware
// tables) stays, and reset empties the nodes that got holders.
type cluster struct {
	nodes  []*nodeState // sorted by name
	byName map[string]int
	// src is Input.Nodes as given (same pointers, same order): the index
	// is reused only for the same slice contents (see Planner).
	src []*model.Node
	// dirty lists the nodes with holders since the last reset, so that a
	// reset touches only them.
	dirty []int
	// hbuf is the slab a node's first holders are cut from (see add).
	hbuf []holder
	// memo keeps each allocation's node and use between the calls of a
	// Planner (nil in a one-off cluster); calls counts resets, seen the
	// allocations looked up since the last one (see allocUse, reset).
	memo  map[*model.Alloc]*allocMemo
	calls uint64
	seen  int
	pl    placer
	buf   free
	cps   []int64
	usage []int64
	cands []cand
	gen   int // bumped whenever a holder is added
	ar    arena
	peak  []int64
	times []int64
	// scr is a Planner's per-call storage, kept between calls (nil in a
	// one-off cluster: each call then makes its own).
	scr *scratch
	// pool, when set (a Planner's one-slot call), takes the holders
	// instead of the nodes (see pool).
	pool *pool
	// readyCores and readyGPUs are the usable cores and GPUs of the ready
	// nodes (sched.backlog's capacity), counted once per index
	// (readyCounted).
	readyCores, readyGPUs int
	readyCounted          bool
}

// readyCapacity returns the usable cores and GPUs of the ready nodes,
// counted on the first call for this index. Kept because counting them
// each cycle (a pass over every node's record) made the 10,000-job,
// 4,096-node replay 1.3 s slower.
func (c *cluster) readyCapacity() (cores, gpus int) {
	if !c.readyCounted {
		for _, ns := range c.nodes {
			if nd := ns.info.node; ns.info.ready {
				c.readyCores += len(nd.Cores) - len(nd.ReservedCores)
				c.readyGPUs += len(nd.GPUs)
			}
		}
		c.readyCounted = true
	}
	return c.readyCores, c.readyGPUs
}

// cand is a node with its best-fit score at some time.
type cand struct {
	n      int
	lg, lc int
	lm     int64
	// gap is how long the node would sit idle next to the window (see
	// idleGap): among nodes that fit equally well in resources, the one
	// that fits tightest in time wins.
	gap      int64
	t        int64
	monotone bool
	// far is true when the job names an image and the node's cache does
	// not hold it (the node would pull it first); see cmpCand.
	far bool
}

func newCluster(nodes []*model.Node) *cluster {
	sorted := slices.Clone(nodes)
	slices.SortFunc(sorted, func(a, b *model.Node) int { return strings.Compare(a.Name, b.Name) })
	c := &cluster{byName: make(map[string]int, len(sorted)), src: slices.Clone(nodes)}
	states := make([]nodeState, len(sorted))
	infos := make([]nodeInfo, len(sorted))
	c.pl.ar = &c.ar
	var prev *hw
	for _, n := range sorted {
		if _, dup := c.byName[n.Name]; dup {
			continue
		}
		i := len(c.nodes)
		ni := &infos[i]
		*ni = nodeInfo{idx: i, node: n, ready: n.State == model.NodeReady}
		if prev != nil && sameHardware(prev.src, n) {
			ni.hw = prev
		} else {
			ni.hw = newHW(n)
			prev = ni.hw
		}
		ns := &states[i]
		*ns = nodeState{info: ni, futureMin: never, now: c.ar.cloneFree(&ni.full)}
		c.byName[n.Name] = i
		c.nodes = append(c.nodes, ns)
	}
	return c
}

// takeNow removes what a holder running now takes from the node's now view.
func (ns *nodeState) takeNow(h *holder) {
	ns.now.takeIDs(ns.info, &h.u)
	ns.now.takeAmounts(&h.u)
}

// reset empties every node that got a holder since the last reset: no
// holders, the now view back to the whole usable node. The cluster is then
// as newCluster left it, at the cost of the nodes used, not all nodes.
func (c *cluster) reset() {
	for _, n := range c.dirty {
		ns := c.nodes[n]
		clear(ns.holders) // drop the old uses for the collector
		ns.holders = ns.holders[:0]
		ns.now.copyFrom(&ns.info.full)
		ns.futureMin = never
		ns.dirty = false
	}
	c.dirty = c.dirty[:0]
	if len(c.memo) > 2*c.seen+1024 {
		// Forget the allocations the last call no longer had.
		for a, m := range c.memo {
			if m.seen != c.calls {
				delete(c.memo, a)
			}
		}
	}
	c.calls++
	c.seen = 0
}

// allocMemo is an allocation's node index and use, kept by a Planner.
type allocMemo struct {
	n    int
	u    use
	seen uint64 // the last call that looked it up
}

// allocUse returns the node index of a's placement and what the placement
// takes there; ok is false when the node is not in the cluster. A
// Planner's cluster keeps the conversion per allocation (a Placement is
// never changed in place, see Planner).
func (c *cluster) allocUse(a *model.Alloc) (n int, u use, ok bool) {
	if m, hit := c.memo[a]; hit {
		m.seen = c.calls
		c.seen++
		return m.n, m.u, true
	}
	if n, ok = c.byName[a.Placement.Node]; !ok {
		return 0, use{}, false
	}
	u = c.nodes[n].info.useOf(&a.Placement, &c.ar)
	if c.memo != nil {
		c.memo[a] = &allocMemo{n: n, u: u, seen: c.calls}
		c.seen++
	}
	return n, u, true
}

// holderSlab is how many holders add cuts from one allocation.
const holderSlab = 1024

// add records a holder on node n and updates its now view.
func (c *cluster) add(n int, h holder) {
	if c.pool != nil {
		c.pool.add(n, h)
		c.gen++
		return
	}
	ns := c.nodes[n]
	if !ns.dirty {
		ns.dirty = true
		c.dirty = append(c.dirty, n)
	}
	if cap(ns.holders) == 0 {
		if len(c.hbuf) < 4 {
			c.hbuf = make([]holder, holderSlab)
		}
		ns.holders = c.hbuf[:0:4]
		c.hbuf = c.hbuf[4:]
	}
	ns.holders = append(ns.holders, h)
	if h.start <= 0 {
		ns.takeNow(&h)
	} else if h.start < ns.futureMin {
		ns.futureMin = h.start
	}
	c.gen++
}

// hold adds a gang's holders over [start, end): uses[i] on nodes[i]. On
// the pool the gang is recorded once (pool.hold), not a holder per node.
// Called by start and reserve.
func (c *cluster) hold(nodes []int, uses []use, start, end int64, job model.JobID, task int64) {
	if c.pool != nil {
		c.pool.hold(nodes, start, end)
		c.gen++
		return
	}
	for i, n := range nodes {
		c.add(n, holder{u: uses[i], start: start, end: end, job: job, task: task})
	}
}

// fitsAt reports whether r fits node n during [t0, t0+d).
func (c *cluster) fitsAt(n int, r *model.Request, t0, d int64) bool {
	f := c.view(n, t0, t0+d)
	return quickFits(f, r) && c.pl.fits(c.nodes[n].info, f, r)
}

// detach removes the holders of a running gang (job, task; start <= 0) from
// every node and returns them with their node indexes, for attach to put
// back. The nodes' now views are rebuilt.
func (c *cluster) detach(job model.JobID, task int64, nodes []int) []placedHolder {
	var out []placedHolder
	for _, n := range nodes {
		ns := c.nodes[n]
		kept := ns.holders[:0]
		for _, h := range ns.holders {
			if h.job == job && h.task == task && h.start <= 0 {
				out = append(out, placedHolder{n, h})
				continue
			}
			kept = append(kept, h)
		}
		ns.holders = kept
		ns.now.copyFrom(&ns.info.full)
		for i := range ns.holders {
			if h := &ns.holders[i]; h.start <= 0 {
				ns.takeNow(h)
			}
		}
	}
	c.gen++
	return out
}

// placedHolder is a holder with the node it sits on.
type placedHolder struct {
	n int
	h holder
}

// attach puts detached holders back.
func (c *cluster) attach(hs []placedHolder) {
	for _, ph := range hs {
		c.add(ph.n, ph.h)
	}
}

// view returns what is free on node n during all of [t0, t1). The result is
// valid until the next call to view or add, and read-only (it may be the
// node's own now view or its hardware's full one).
func (c *cluster) view(n int, t0, t1 int64) *free {
	ns := c.nodes[n]
	if t0 <= 0 && t1 <= ns.futureMin {
		return &ns.now
	}
	// No holder during the window (nor at t0, for an empty one): the
	// whole node is free, as the computation below would find.
	busy := false
	for i := range ns.holders {
		if h := &ns.holders[i]; h.end > t0 && h.start < max(t1, t0+1) {
			busy = true
			break
		}
	}
	if !busy {
		return &ns.info.full
	}
	f := &c.buf
	f.copyFrom(&ns.info.full)
	c.cps = append(c.cps[:0], t0)
	for i := range ns.holders {
		h := &ns.holders[i]
		if h.start < t1 && h.end > t0 {
			f.takeIDs(ns.info, &h.u)
			if h.start > t0 {
				c.cps = append(c.cps, h.start)
			}
		}
	}
	// Amounts: the peak over the window, which is reached at t0 or at a
	// holder's start.
	k := len(ns.info.numaID)
	c.usage = slices.Grow(c.usage[:0], 2*k+1)[:2*k+1]
	c.peak = slices.Grow(c.peak[:0], 2*k+1)[:2*k+1]
	peak := c.peak
	clear(peak)
	for _, cp := range c.cps {
		clear(c.usage)
		for i := range ns.holders {
			h := &ns.holders[i]
			if h.start <= cp && h.end > cp {
				for j, nk := range h.u.numa {
					c.usage[nk] += h.u.reg[j]
					c.usage[k+nk] += h.u.huge[j]
				}
				c.usage[2*k] += h.u.scratch
			}
		}
		for i, v := range c.usage {
			peak[i] = max(peak[i], v)
		}
	}
	for i := 0; i < k; i++ {
		f.reg[i] -= peak[i]
		f.huge[i] -= peak[k+i]
		f.regTot -= peak[i]
		f.hugeTot -= peak[k+i]
	}
	f.scratch -= peak[2*k]
	return f
}

// hasFuture reports whether node n has a holder starting after now, so that
// its free resources may shrink later.
func (c *cluster) hasFuture(n int) bool { return c.nodes[n].futureMin != never }

// scoreAt fills a cand for node n if r passes the quick check at [t0,t0+d).
// img is the set of nodes holding the job's image (sched.imageNodes); nil
// when there is no preference.
func (c *cluster) scoreAt(n int, r *model.Request, img bitset, t0, d int64) (cand, bool) {
	f := c.view(n, t0, t0+d)
	if !quickFits(f, r) {
		return cand{}, false
	}
	return cand{n: n, lg: f.gpus - r.GPUs, lc: f.log - r.CoresPerNode(), lm: f.regTot - (r.MemoryMiB - r.HugepagesMiB),
		gap: c.idleGap(n, t0, t0+d), t: t0, far: img != nil && !img.has(n)}, true
}

// openEnded stands for "no holder after the window" in idleGap: larger than
// any real gap, small enough to add without overflow.
const openEnded = int64(1) << 60

// idleGap is the time node n would sit idle around a window [t0, t1): from
// the last holder that ends by t0 (or from now) to t0, plus from t1 to the
// first holder that starts at or after t1 (openEnded when none). Preferring
// small gaps is what EASY's "extra nodes" rule asks: a reservation takes the
// nodes that free up just before it, leaving nodes free now to backfill jobs
// that run past it, and a backfilled job takes the node whose reservation
// it ends just before, leaving open-ended nodes to longer jobs.
func (c *cluster) idleGap(n int, t0, t1 int64) int64 {
	ns := c.nodes[n]
	if t0 <= 0 && ns.futureMin == never {
		return openEnded
	}
	lastEnd, nextStart := int64(0), openEnded
	for i := range ns.holders {
		h := &ns.holders[i]
		if h.end <= t0 && h.end > lastEnd {
			lastEnd = h.end
		}
		if h.start >= t1 && h.start-t1 < nextStart {
			nextStart = h.start - t1
		}
	}
	return max(t0, 0) - lastEnd + nextStart
}

// cmpCand orders candidate nodes, best first: fewest GPUs left over, then
// image locality, then fewest cores left over, least memory left over,
// smallest idle gap, and the node index for determinism.
//
// Image locality sits right after the GPU leftover: a pull costs seconds
// to minutes once per node and image, while a GPU left stranded on a
// node fragments the scarcest resource for as long as the job runs, so
// GPU best fit wins. Among nodes that leave the same GPUs free, a cached
// image saves the pull outright, which matters more than which node keeps
// a few more cores or MiB. far is false for every node when the job names
// no image or no node holds it, so then the order is the one without it.
func cmpCand(a, b cand) int {
	switch {
	case a.lg != b.lg:
		return a.lg - b.lg
	case a.far != b.far:
		if b.far {
			return -1
		}
		return 1
	case a.lc != b.lc:
		return a.lc - b.lc
	case a.lm != b.lm:
		if a.lm < b.lm {
			return -1
		}
		return 1
	case a.gap != b.gap:
		if a.gap < b.gap {
			return -1
		}
		return 1
	}
	return a.n - b.n
}

// gangAt places r on r.Nodes distinct nodes among nodes, all during
// [t0, t0+d), best fit first (cmpCand; img, the nodes holding the job's
// image or nil, only orders). It returns the chosen nodes (best fit order)
// and their uses.
func (c *cluster) gangAt(r *model.Request, img bitset, nodes []int, t0, d int64) ([]int, []use, bool) {
	want := max(r.Nodes, 1)
	cs := c.cands[:0]
	for _, n := range nodes {
		if cd, ok := c.scoreAt(n, r, img, t0, d); ok {
			cs = append(cs, cd)
		}
	}
	c.cands = cs
	if len(cs) < want {
		return nil, nil, false
	}
	if want == 1 {
		// Most single-node placements succeed on the best node: find it
		// in one pass, and sort the rest only when it fails.
		bi := 0
		for i := range cs {
			if cmpCand(cs[i], cs[bi]) < 0 {
				bi = i
			}
		}
		n := cs[bi].n
		if u, ok := c.pl.place(c.nodes[n].info, c.view(n, t0, t0+d), r); ok {
			return []int{n}, []use{u}, true
		}
		cs[bi] = cs[len(cs)-1]
		cs = cs[:len(cs)-1]
	}
	// cmpCand is a total order (the node index breaks ties), so popping
	// the best one left visits the candidates in sorted order, which is
	// the order repeated best-of scans would visit; a heap pops the few a
	// gang takes without sorting the thousands it does not.
	// A gang that takes a large share of them sorts (a sort is cheaper
	// than popping most of a heap).
	sorted := want*4 >= len(cs)
	if sorted {
		slices.SortFunc(cs, cmpCand)
	} else {
		heapInit(cs)
	}
	picked, uses := make([]int, 0, want), make([]use, 0, want)
	for len(cs) > 0 {
		var cd cand
		if sorted {
			cd, cs = cs[0], cs[1:]
		} else {
			cd, cs = heapPop(cs)
		}
		if u, ok := c.pl.place(c.nodes[cd.n].info, c.view(cd.n, t0, t0+d), r); ok {
			picked, uses = append(picked, cd.n), append(uses, u)
			if len(picked) == want {
				return picked, uses, true
			}
		}
	}
	return nil, nil, false
}

// firstFit returns the earliest t >= 0 at which r fits node n for d, trying
// now and every holder end on the node.
func (c *cluster) firstFit(n int, r *model.Request, d int64) (int64, bool) {
	ns := c.nodes[n]
	times := append(c.times[:0], 0)
	for i := range ns.holders {
		if e := ns.holders[i].end; e > 0 && e != never {
			times = append(times, e)
		}
	}
	slices.Sort(times)
	times = slices.Compact(times)
	c.times = times
	for _, t := range times {
		f := c.view(n, t, t+d)
		if !quickFits(f, r) {
			continue
		}
		if c.pl.fits(ns.info, f, r) {
			return t, true
		}
	}
	return 0, false
}

// earliest finds the earliest time at which the gang r fits for d on nodes,
// and the placement then. Each node fits from its first fit t_n until a later
// holder start would reach into the window (valid); the gang is tried at the
// first time enough nodes are valid together; img orders the nodes at that
// time as in gangAt.
func (c *cluster) earliest(r *model.Request, img bitset, nodes []int, d int64) (int64, []int, []use, bool) {
	type win struct {
		n        int
		from, to int64
	}
	var ws []win
	for _, n := range nodes {
		t, ok := c.firstFit(n, r, d)
		if !ok {
			continue
		}
		to := never
		for _, h := range c.nodes[n].holders {
			if h.start >= t+d && h.start-d < to {
				to = h.start - d
			}
		}
		ws = append(ws, win{n, t, to})
	}
	want := max(r.Nodes, 1)
	if len(ws) < want {
		return 0, nil, nil, false
	}
	times := make([]int64, 0, len(ws))
	for _, w := range ws {
		times = append(times, w.from)
	}
	slices.Sort(times)
	times = slices.Compact(times)
	var at []int
	for _, t := range times {
		at = at[:0]
		for _, w := range ws {
			if w.from <= t && t <= w.to {
				at = append(at, w.n)
			}
		}
		if len(at) < want {
			continue
		}
		if picked, uses, ok := c.gangAt(r, img, at, t, d); ok {
			return t, picked, uses, true
		}
	}
	return 0, nil, nil, false
}

// heapInit orders cs as a binary min-heap under cmpCand.
func heapInit(cs []cand) {
	for i := len(cs)/2 - 1; i >= 0; i-- {
		siftDown(cs, i)
	}
}

// heapPop removes the best candidate (cmpCand) from the heap cs and returns
// it with the shorter heap.
func heapPop(cs []cand) (cand, []cand) {
	top := cs[0]
	last := len(cs) - 1
	cs[0] = cs[last]
	cs = cs[:last]
	siftDown(cs, 0)
	return top, cs
}

func siftDown(cs []cand, i int) {
	for {
		l := 2*i + 1
		if l >= len(cs) {
			return
		}
		m := l
		if r := l + 1; r < len(cs) && cmpCand(cs[r], cs[l]) < 0 {
			m = r
		}
		if cmpCand(cs[m], cs[i]) >= 0 {
			return
		}
		cs[i], cs[m] = cs[m], cs[i]
		i = m
	}
}
