package core

import (
	"slices"
	"strings"

	"vhpc/scheduler/model"
)

// physCore is one physical core: the usable (non-reserved) logical CPUs that
// share it. SMT siblings are never split across jobs.
type physCore struct {
	numa int   // NUMA index (into nodeInfo.numaID)
	ids  []int // usable logical CPU ids, sorted
}

// gpuInfo is one GPU in the node's sorted GPU table.
type gpuInfo struct {
	numa    int // NUMA index
	gpu     model.GPU
	drained bool
}

// nodeInfo is one node in a Schedule call: its identity and state, and its
// hardware tables, shared between nodes with identical hardware.
type nodeInfo struct {
	*hw
	idx   int
	node  *model.Node
	ready bool
}

// hw is a node's hardware indexed for placement: NUMA nodes, physical cores
// and GPUs all sorted and numbered. Read-only once built.
type hw struct {
	src    *model.Node // the node it was built from
	numaID []int       // NUMA ids, sorted; index = NUMA index
	phys   []physCore  // sorted by (NUMA index, physical core id)
	// logPhys maps a logical id to its phys index, -1 for reserved or
	// absent ids; sparseLog replaces it on a node whose ids are negative
	// or far apart (bad data). Use physOf.
	logPhys   []int
	sparseLog map[int]int
	gpus      []gpuInfo // sorted by (NUMA index, PCI address)
	gpuIdx    map[string]int
	regCap    []int64 // regular memory per NUMA index (memory - hugepages)
	hugeCap   []int64
	logCap    []int // usable logical CPUs per NUMA index
	full      free  // everything usable free
	scratch   int64
	// groups lists GPU table indices per IOMMU group, and groupOf each
	// GPU's group, only on nodes where some group holds more than one GPU
	// (nil elsewhere): such GPUs can only be passed through together, so
	// they are given out as whole groups (see placer.chooseGroups).
	groups  [][]int
	groupOf []int
}

// sameHardware compares everything placement reads (GPU UUIDs excepted).
func sameHardware(a, b *model.Node) bool {
	if a.ScratchMiB != b.ScratchMiB || !slices.Equal(a.Cores, b.Cores) || !slices.Equal(a.NUMA, b.NUMA) ||
		!slices.Equal(a.ReservedCores, b.ReservedCores) || len(a.GPUs) != len(b.GPUs) {
		return false
	}
	for i := range a.GPUs {
		x, y := a.GPUs[i], b.GPUs[i]
		x.UUID, y.UUID = "", ""
		if x != y {
			return false
		}
	}
	return true
}

// newHW indexes n's hardware. Reserved cores are dropped; drained GPUs are
// kept in the table but never free.
func newHW(n *model.Node) *hw {
	ni := &hw{src: n, scratch: n.ScratchMiB}
	ids := make([]int, 0, len(n.NUMA)+1)
	for _, m := range n.NUMA {
		ids = append(ids, m.ID)
	}
	for _, c := range n.Cores {
		ids = append(ids, c.NUMA)
	}
	for _, g := range n.GPUs {
		ids = append(ids, g.NUMA)
	}
	slices.Sort(ids)
	ni.numaID = slices.Compact(ids)
	k := len(ni.numaID)
	numaIdx := func(id int) int { i, _ := slices.BinarySearch(ni.numaID, id); return i }
	ni.regCap, ni.hugeCap, ni.logCap = make([]int64, k), make([]int64, k), make([]int, k)
	for _, m := range n.NUMA {
		i := numaIdx(m.ID)
		ni.regCap[i] += m.MemoryMiB - m.HugepagesMiB
		ni.hugeCap[i] += m.HugepagesMiB
	}
	ni.buildCores(numaIdx)
	ni.gpus = make([]gpuInfo, 0, len(n.GPUs))
	for _, g := range n.GPUs {
		ni.gpus = append(ni.gpus, gpuInfo{numa: numaIdx(g.NUMA), gpu: g, drained: g.Unusable() != ""})
	}
	slices.SortFunc(ni.gpus, func(a, b gpuInfo) int {
		if a.numa != b.numa {
			return a.numa - b.numa
		}
		return strings.Compare(a.gpu.PCIAddress, b.gpu.PCIAddress)
	})
	ni.gpuIdx = make(map[string]int, len(ni.gpus))
	for i, g := range ni.gpus {
		ni.gpuIdx[g.gpu.PCIAddress] = i
	}
	ni.buildGroups()
	ni.full = ni.newFull()
	return ni
}

// buildGroups fills groups and groupOf when GPUs share an IOMMU group:
// those marked IOMMUShared are grouped by IOMMUGroup; every other GPU is a
// group of its own.
func (ni *hw) buildGroups() {
	byGroup := map[int]int{}
	var groups [][]int
	groupOf := make([]int, len(ni.gpus))
	shared := false
	for i, g := range ni.gpus {
		if id := g.gpu.IOMMUGroup; g.gpu.IOMMUShared {
			if gi, ok := byGroup[id]; ok {
				groups[gi] = append(groups[gi], i)
				groupOf[i] = gi
				shared = true
				continue
			}
			byGroup[id] = len(groups)
		}
		groupOf[i] = len(groups)
		groups = append(groups, []int{i})
	}
	if shared {
		ni.groups, ni.groupOf = groups, groupOf
	}
}

func (ni *hw) buildCores(numaIdx func(int) int) {
	n := ni.src
	reserved := make(map[int]bool, len(n.ReservedCores))
	for _, c := range n.ReservedCores {
		reserved[c] = true
	}
	type key struct{ numa, phys int }
	cores := slices.Clone(n.Cores)
	slices.SortFunc(cores, func(a, b model.Core) int {
		if a.NUMA != b.NUMA {
			return a.NUMA - b.NUMA
		}
		if a.PhysicalCore != b.PhysicalCore {
			return a.PhysicalCore - b.PhysicalCore
		}
		return a.ID - b.ID
	})
	top, dense := -1, true
	for _, c := range cores {
		top = max(top, c.ID)
		dense = dense && c.ID >= 0
	}
	if dense && top < 4*len(cores)+64 {
		ni.logPhys = make([]int, top+1)
		for i := range ni.logPhys {
			ni.logPhys[i] = -1
		}
	} else {
		ni.sparseLog = map[int]int{}
	}
	last := key{-1, -1}
	for _, c := range cores {
		if reserved[c.ID] {
			continue
		}
		k := key{c.NUMA, c.PhysicalCore}
		if k != last || len(ni.phys) == 0 {
			ni.phys = append(ni.phys, physCore{numa: numaIdx(c.NUMA)})
			last = k
		}
		p := &ni.phys[len(ni.phys)-1]
		p.ids = append(p.ids, c.ID)
		if ni.sparseLog != nil {
			ni.sparseLog[c.ID] = len(ni.phys) - 1
		} else {
			ni.logPhys[c.ID] = len(ni.phys) - 1
		}
		ni.logCap[p.numa]++
	}
}

// physOf returns the physical core index of logical CPU c, false when c
// is reserved or not a CPU of this node.
func (ni *hw) physOf(c int) (int, bool) {
	if ni.sparseLog != nil {
		pi, ok := ni.sparseLog[c]
		return pi, ok
	}
	if c < 0 || c >= len(ni.logPhys) || ni.logPhys[c] < 0 {
		return 0, false
	}
	return ni.logPhys[c], true
}

// gpuMatches reports whether GPU i can serve the request's model and memory.
func (ni *hw) gpuMatches(i int, r *model.Request) bool {
	g := &ni.gpus[i]
	return !g.drained && (r.GPUModel == "" || g.gpu.Model == r.GPUModel) && g.gpu.MemoryMiB >= r.GPUMemoryMiB
}

// numaSpanForced reports whether the request exceeds what any single NUMA
// node of this node has in total, so it may span NUMA nodes even without
// Request.CrossNUMA (it could never be NUMA-local here).
func (ni *hw) numaSpanForced(r *model.Request) bool {
	reg, huge := r.MemoryMiB-r.HugepagesMiB, r.HugepagesMiB
	for k := range ni.numaID {
		g := 0
		for i := range ni.gpus {
			if ni.gpus[i].numa == k && ni.gpuMatches(i, r) {
				g++
			}
		}
		if g >= r.GPUs && ni.logCap[k] >= r.CoresPerNode() && ni.regCap[k] >= reg && ni.hugeCap[k] >= huge {
			return false
		}
	}
	return true
}
