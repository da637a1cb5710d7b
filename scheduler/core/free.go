package core

import (
	"slices"

	"vhpc/scheduler/model"
)

// free is what is free on one node over some time window: identity
// resources as bitsets, amounts per NUMA index, and totals for quick checks.
type free struct {
	phys    bitset
	gpu     bitset
	reg     []int64 // regular memory per NUMA index
	huge    []int64
	numaLog []int // free usable logical CPUs per NUMA index
	log     int
	gpus    int
	regTot  int64
	hugeTot int64
	scratch int64
}

// use is what one holder (allocation, planned start, reservation) takes on
// one node.
type use struct {
	phys    []int // phys indices
	gpus    []int // GPU table indices
	numa    []int // NUMA indices the memory comes from, sorted
	reg     []int64
	huge    []int64
	scratch int64
}

func (ni *hw) newFull() free {
	k := len(ni.numaID)
	f := free{
		phys: newBitset(len(ni.phys)), gpu: newBitset(len(ni.gpus)),
		reg: slices.Clone(ni.regCap), huge: slices.Clone(ni.hugeCap),
		numaLog: slices.Clone(ni.logCap), scratch: ni.scratch,
	}
	_ = k
	for i, p := range ni.phys {
		f.phys.set(i)
		f.log += len(p.ids)
	}
	for i, g := range ni.gpus {
		if !g.drained {
			f.gpu.set(i)
			f.gpus++
		}
	}
	for i := range f.reg {
		f.regTot += f.reg[i]
		f.hugeTot += f.huge[i]
	}
	return f
}

// copyFrom makes f an independent copy of o, reusing f's storage.
func (f *free) copyFrom(o *free) {
	f.phys = append(f.phys[:0], o.phys...)
	f.gpu = append(f.gpu[:0], o.gpu...)
	f.reg = append(f.reg[:0], o.reg...)
	f.huge = append(f.huge[:0], o.huge...)
	f.numaLog = append(f.numaLog[:0], o.numaLog...)
	f.log, f.gpus, f.regTot, f.hugeTot, f.scratch = o.log, o.gpus, o.regTot, o.hugeTot, o.scratch
}

// takeIDs removes u's cores and GPUs (identity resources) from f.
func (f *free) takeIDs(ni *nodeInfo, u *use) {
	for _, p := range u.phys {
		if f.phys.has(p) {
			f.phys.clear(p)
			n := len(ni.phys[p].ids)
			f.log -= n
			f.numaLog[ni.phys[p].numa] -= n
		}
	}
	for _, g := range u.gpus {
		if f.gpu.has(g) {
			f.gpu.clear(g)
			f.gpus--
		}
	}
}

// takeAmounts subtracts u's memory and scratch from f.
func (f *free) takeAmounts(u *use) {
	for i, k := range u.numa {
		f.reg[k] -= u.reg[i]
		f.huge[k] -= u.huge[i]
		f.regTot -= u.reg[i]
		f.hugeTot -= u.huge[i]
	}
	f.scratch -= u.scratch
}

// useOf converts a placement on ni into a use; unknown cores and GPUs (bad
// data) are ignored rather than trusted. Storage comes from a.
func (ni *hw) useOf(p *model.Placement, a *arena) use {
	u := use{phys: a.intSlice(len(p.Cores)), gpus: a.intSlice(len(p.GPUs)), numa: a.intSlice(len(p.NUMA)),
		reg: a.i64Slice(len(p.NUMA)), huge: a.i64Slice(len(p.NUMA)), scratch: p.Scratch}
	for _, c := range p.Cores {
		if pi, ok := ni.physOf(c); ok {
			u.phys = append(u.phys, pi)
		}
	}
	// SMT siblings name one physical core: keep it once.
	slices.Sort(u.phys)
	u.phys = slices.Compact(u.phys)
	for _, g := range p.GPUs {
		if gi, ok := ni.gpuIdx[g]; ok {
			u.gpus = append(u.gpus, gi)
		}
	}
	k := int64(len(p.NUMA))
	for i, id := range p.NUMA {
		nk, ok := slices.BinarySearch(ni.numaID, id)
		if !ok {
			continue
		}
		u.numa = append(u.numa, nk)
		u.reg = append(u.reg, share(p.MemoryMiB-p.Hugepages, k, i))
		u.huge = append(u.huge, share(p.Hugepages, k, i))
	}
	return u
}

// placementBufs are the backing arrays one gang's placements share (each
// placement's slices are capped at their length, so appending to one never
// writes into another).
type placementBufs struct {
	cores, numa []int
	gpus        []string
}

// newPlacementBufs sizes the backing arrays for uses on nis.
func newPlacementBufs(nis []*nodeInfo, uses []use) placementBufs {
	nc, nn, ng := 0, 0, 0
	for i := range uses {
		for _, pi := range uses[i].phys {
			nc += len(nis[i].phys[pi].ids)
		}
		nn += len(uses[i].numa)
		ng += len(uses[i].gpus)
	}
	return placementBufs{cores: make([]int, 0, nc), numa: make([]int, 0, nn), gpus: make([]string, 0, ng)}
}

// placementOf converts a use on ni back into a model.Placement whose
// slices come from b.
func (ni *nodeInfo) placementOf(u *use, r *model.Request, b *placementBufs) model.Placement {
	p := model.Placement{Node: ni.node.Name, MemoryMiB: r.MemoryMiB, Scratch: r.ScratchMiB, Hugepages: r.HugepagesMiB}
	from := len(b.cores)
	for _, pi := range u.phys {
		b.cores = append(b.cores, ni.phys[pi].ids...)
	}
	p.Cores = b.cores[from:len(b.cores):len(b.cores)]
	slices.Sort(p.Cores)
	from = len(b.numa)
	for _, k := range u.numa {
		b.numa = append(b.numa, ni.numaID[k])
	}
	p.NUMA = b.numa[from:len(b.numa):len(b.numa)]
	from = len(b.gpus)
	for _, g := range u.gpus {
		b.gpus = append(b.gpus, ni.gpus[g].gpu.PCIAddress)
	}
	p.GPUs = b.gpus[from:len(b.gpus):len(b.gpus)]
	slices.Sort(p.GPUs)
	return p
}
