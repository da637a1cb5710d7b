package core

import (
	"slices"

	"vhpc/scheduler/model"
)

// placer places one per-node request on one node's free view. It keeps
// scratch buffers between calls; the zero value is ready to use.
type placer struct {
	elig   []int // eligible free GPUs per NUMA index
	order  []int // NUMA indices in spanning order
	sorted []int
	gsize  []int // per IOMMU group: its size when whole, free and eligible, else 0
	gcand  []int // groups considered by pickGroups
	reach  []int // pickGroups: group that first reached each sum, -1 none
	// ar, when set, is where take cuts a use's slices from (the cluster's
	// arena: uses live in holders for one call); nil allocates.
	ar *arena
}

// quickFits is the O(1) pre-check on totals: false means place would fail.
func quickFits(f *free, r *model.Request) bool {
	return f.scratch >= r.ScratchMiB && f.log >= r.CoresPerNode() && f.gpus >= r.GPUs &&
		f.regTot >= r.MemoryMiB-r.HugepagesMiB && f.hugeTot >= r.HugepagesMiB
}

// place finds the exact cores, GPUs and memory for r on ni given f.
// Policy (README "Placement"): GPUs, cores and memory from one NUMA node,
// best fit; across the fewest NUMA nodes only if r.CrossNUMA or the request
// could never be NUMA-local on this node. Whole physical cores only.
func (pl *placer) place(ni *nodeInfo, f *free, r *model.Request) (use, bool) {
	set, ok := pl.choose(ni, f, r)
	if !ok {
		return use{}, false
	}
	return pl.take(ni, f, r, set), true
}

// fits is place without building the result.
func (pl *placer) fits(ni *nodeInfo, f *free, r *model.Request) bool {
	_, ok := pl.choose(ni, f, r)
	return ok
}

// choose picks the NUMA set place takes from (valid until the next call).
func (pl *placer) choose(ni *nodeInfo, f *free, r *model.Request) ([]int, bool) {
	if !quickFits(f, r) {
		return nil, false
	}
	k := len(ni.numaID)
	pl.elig = slices.Grow(pl.elig[:0], k)[:k]
	clear(pl.elig)
	grouped := r.GPUs > 0 && ni.groups != nil
	switch {
	case grouped:
		pl.eligibleGroups(ni, f, r)
	case r.GPUs > 0:
		for i := range ni.gpus {
			if f.gpu.has(i) && ni.gpuMatches(i, r) {
				pl.elig[ni.gpus[i].numa]++
			}
		}
	}
	c, reg, huge := r.CoresPerNode(), r.MemoryMiB-r.HugepagesMiB, r.HugepagesMiB
	best, bg, bc := -1, 0, 0
	for i := 0; i < k; i++ {
		if pl.elig[i] < r.GPUs || f.numaLog[i] < c || f.reg[i] < reg || f.huge[i] < huge {
			continue
		}
		if grouped && !pl.groupsAddUp(ni, []int{i}, r.GPUs, nil) {
			continue
		}
		lg, lc := f.numaGPUFree(ni, i)-r.GPUs, f.numaLog[i]-c
		if best < 0 || lg < bg || (lg == bg && lc < bc) {
			best, bg, bc = i, lg, lc
		}
	}
	if best >= 0 {
		pl.order = append(pl.order[:0], best)
		return pl.order, true
	}
	if k < 2 || !(r.CrossNUMA || ni.numaSpanForced(r)) {
		return nil, false
	}
	pl.order = pl.order[:0]
	for i := 0; i < k; i++ {
		pl.order = append(pl.order, i)
	}
	slices.SortStableFunc(pl.order, func(a, b int) int {
		if pl.elig[a] != pl.elig[b] {
			return pl.elig[b] - pl.elig[a]
		}
		return f.numaLog[b] - f.numaLog[a]
	})
	for n := 2; n <= k; n++ {
		if pl.spanFits(f, r, pl.order[:n]) && (!grouped || pl.groupsAddUp(ni, pl.order[:n], r.GPUs, nil)) {
			return pl.order[:n], true
		}
	}
	return nil, false
}

// spanFits checks a NUMA set: enough GPUs and cores in total, and each NUMA
// node able to hold its even share of the memory (model.Placement.MemoryShares).
func (pl *placer) spanFits(f *free, r *model.Request, set []int) bool {
	g, c := 0, 0
	for _, i := range set {
		g += pl.elig[i]
		c += f.numaLog[i]
	}
	if g < r.GPUs || c < r.CoresPerNode() {
		return false
	}
	pl.sorted = append(pl.sorted[:0], set...)
	slices.Sort(pl.sorted)
	k := int64(len(set))
	reg, huge := r.MemoryMiB-r.HugepagesMiB, r.HugepagesMiB
	for j, i := range pl.sorted {
		if f.reg[i] < share(reg, k, j) || f.huge[i] < share(huge, k, j) {
			return false
		}
	}
	return true
}

// take picks GPUs and whole physical cores from the NUMA set in set order,
// lowest indices first, and the memory split over the set.
func (pl *placer) take(ni *nodeInfo, f *free, r *model.Request, set []int) use {
	ar := pl.ar
	if ar == nil {
		ar = &arena{}
	}
	nc := r.CoresPerNode()
	u := use{phys: ar.intSlice(max(min(nc, len(ni.phys)), 0)), gpus: ar.intSlice(max(r.GPUs, 0)),
		numa: ar.intSlice(len(set)), reg: ar.i64Slice(len(set)), huge: ar.i64Slice(len(set))}
	need := r.GPUs
	if ni.groups != nil && need > 0 {
		pl.groupsAddUp(ni, set, need, &u.gpus)
		need = 0
	}
	for _, k := range set {
		for i := range ni.gpus {
			if need == 0 {
				break
			}
			if ni.gpus[i].numa == k && f.gpu.has(i) && ni.gpuMatches(i, r) {
				u.gpus = append(u.gpus, i)
				need--
			}
		}
	}
	for _, k := range set {
		for pi := range ni.phys {
			if nc <= 0 {
				break
			}
			if ni.phys[pi].numa == k && f.phys.has(pi) {
				u.phys = append(u.phys, pi)
				nc -= len(ni.phys[pi].ids)
			}
		}
	}
	slices.Sort(u.phys)
	slices.Sort(u.gpus)
	u.numa = append(u.numa, set...)
	slices.Sort(u.numa)
	// The memory split of model.Placement.MemoryShares.
	k := int64(len(set))
	for j := range u.numa {
		u.reg = append(u.reg, share(r.MemoryMiB-r.HugepagesMiB, k, j))
		u.huge = append(u.huge, share(r.HugepagesMiB, k, j))
	}
	u.scratch = r.ScratchMiB
	return u
}

// share is the j-th of k even shares of total (model.Placement.MemoryShares).
func share(total, k int64, j int) int64 {
	q := total / k
	if int64(j) < total%k {
		q++
	}
	return q
}

// numaGPUFree counts free GPUs (any model) on NUMA index k.
func (f *free) numaGPUFree(ni *nodeInfo, k int) int {
	n := 0
	for i := range ni.gpus {
		if ni.gpus[i].numa == k && f.gpu.has(i) {
			n++
		}
	}
	return n
}

// eligibleGroups fills pl.gsize (see placer) and pl.elig (eligible GPUs per
// NUMA index, counted by whole groups) for a node with shared IOMMU groups.
// A group's NUMA node is its first GPU's.
func (pl *placer) eligibleGroups(ni *nodeInfo, f *free, r *model.Request) {
	pl.gsize = slices.Grow(pl.gsize[:0], len(ni.groups))[:len(ni.groups)]
	for g, members := range ni.groups {
		pl.gsize[g] = len(members)
		for _, i := range members {
			if !f.gpu.has(i) || !ni.gpuMatches(i, r) {
				pl.gsize[g] = 0
				break
			}
		}
		if pl.gsize[g] > 0 {
			pl.elig[ni.gpus[members[0]].numa] += pl.gsize[g]
		}
	}
}

// groupsAddUp reports whether whole eligible groups on the NUMA set add up
// to exactly want GPUs, preferring the smallest groups (larger ones stay
// whole for larger requests). With out non-nil it appends the chosen GPUs.
func (pl *placer) groupsAddUp(ni *nodeInfo, set []int, want int, out *[]int) bool {
	pl.gcand = pl.gcand[:0]
	for g, size := range pl.gsize {
		if size > 0 && slices.Contains(set, ni.gpus[ni.groups[g][0]].numa) {
			pl.gcand = append(pl.gcand, g)
		}
	}
	slices.SortStableFunc(pl.gcand, func(a, b int) int { return pl.gsize[a] - pl.gsize[b] })
	// reach[s] is the group that first made sum s reachable (0/1 knapsack).
	pl.reach = slices.Grow(pl.reach[:0], want+1)[:want+1]
	for s := range pl.reach {
		pl.reach[s] = -1
	}
	pl.reach[0] = len(pl.gsize) // sentinel: the empty sum
	for _, g := range pl.gcand {
		for s := want; s >= pl.gsize[g]; s-- {
			if pl.reach[s] < 0 && pl.reach[s-pl.gsize[g]] >= 0 && pl.reach[s-pl.gsize[g]] != g {
				pl.reach[s] = g
			}
		}
	}
	if pl.reach[want] < 0 {
		return false
	}
	for s := want; s > 0 && out != nil; s -= pl.gsize[pl.reach[s]] {
		*out = append(*out, ni.groups[pl.reach[s]]...)
	}
	return true
}
