package vm

import (
	"fmt"
	"slices"
	"strconv"

	"libvirt.org/go/libvirtxml"
)

// cellOf returns the guest cell mirroring host NUMA node, or -1.
func cellOf(s Spec, node int) int {
	return slices.IndexFunc(s.NUMA, func(c NUMACell) bool { return c.HostNode == node })
}

func hostNodes(s Spec) []int {
	out := make([]int, len(s.NUMA))
	for i, c := range s.NUMA {
		out[i] = c.HostNode
	}
	return out
}

// vcpuCores returns the host core of each vCPU, in vCPU order, and the
// guest cell of each vCPU (nil without NUMA cells). With cells, vCPUs are
// numbered cell by cell (cores keep their Spec order within a cell), so
// that guest cell 0 holds vCPUs 0..n-1 and so on; without, vCPU i is
// Cores[i].
func vcpuCores(s Spec) (cores, cells []int) {
	if len(s.NUMA) == 0 {
		return s.Cores, nil
	}
	idx := make([]int, len(s.Cores))
	for i := range idx {
		idx[i] = i
	}
	slices.SortStableFunc(idx, func(a, b int) int { return cellOf(s, s.CoreNUMA[a]) - cellOf(s, s.CoreNUMA[b]) })
	cores, cells = make([]int, len(idx)), make([]int, len(idx))
	for v, i := range idx {
		cores[v], cells[v] = s.Cores[i], cellOf(s, s.CoreNUMA[i])
	}
	return cores, cells
}

// validateNUMA checks the cells against the cores and the memory.
func validateNUMA(s Spec) error {
	if len(s.NUMA) == 0 {
		if len(s.CoreNUMA) > 0 {
			return fmt.Errorf("spec: core NUMA nodes given without NUMA cells")
		}
		return nil
	}
	if len(s.CoreNUMA) != len(s.Cores) {
		return fmt.Errorf("spec: %d core NUMA nodes for %d cores; want one per core", len(s.CoreNUMA), len(s.Cores))
	}
	var total int64
	huge := 0
	for i, c := range s.NUMA {
		if c.HostNode < 0 || cellOf(s, c.HostNode) != i {
			return fmt.Errorf("spec: NUMA cell %d: bad or duplicate host node %d", i, c.HostNode)
		}
		if c.MemoryMiB <= 0 {
			return fmt.Errorf("spec: NUMA cell %d (host node %d) has no memory", i, c.HostNode)
		}
		switch c.HugepagesMiB {
		case 0:
		case c.MemoryMiB:
			huge++
		default:
			return fmt.Errorf("spec: NUMA cell %d (host node %d) has %d MiB hugepages of %d MiB memory: a guest NUMA cell is backed by hugepages entirely or not at all; ask for hugepages equal to memory, or none",
				i, c.HostNode, c.HugepagesMiB, c.MemoryMiB)
		}
		total += c.MemoryMiB
	}
	if huge != 0 && huge != len(s.NUMA) {
		return fmt.Errorf("spec: %d of %d NUMA cells are backed by hugepages; want all or none", huge, len(s.NUMA))
	}
	if total != s.MemoryMiB {
		return fmt.Errorf("spec: NUMA cells hold %d MiB, the domain %d MiB; want them equal", total, s.MemoryMiB)
	}
	for i, n := range s.CoreNUMA {
		if cellOf(s, n) < 0 {
			return fmt.Errorf("spec: core %d is on host NUMA node %d, which is not among the placement's NUMA nodes %v", s.Cores[i], n, hostNodes(s))
		}
	}
	return nil
}

// numa: a guest NUMA topology mirroring the placement's host nodes (one
// cell per host node, in Spec.NUMA order, with the vCPUs of the cores on
// that node and the node's share of the memory), the memory bound
// strictly to those nodes as a whole and cell by cell (numatune memnode),
// and hugepage backing when the cells ask for it.
func numa(d *libvirtxml.Domain, _ Template, s Spec) error {
	if len(s.NUMA) == 0 {
		return nil
	}
	_, cellOfVCPU := vcpuCores(s)
	if d.CPU == nil {
		d.CPU = &libvirtxml.DomainCPU{}
	}
	d.CPU.Numa = &libvirtxml.DomainNuma{}
	tune := &libvirtxml.DomainNUMATune{Memory: &libvirtxml.DomainNUMATuneMemory{Mode: "strict", Nodeset: CPUSet(hostNodes(s))}}
	for i, c := range s.NUMA {
		id := uint(i)
		var vcpus []int
		for v, cell := range cellOfVCPU {
			if cell == i {
				vcpus = append(vcpus, v)
			}
		}
		// A cell without vCPUs is a memory-only node: the placement took
		// memory from a host node it took no cores from.
		d.CPU.Numa.Cell = append(d.CPU.Numa.Cell, libvirtxml.DomainCell{ID: &id, CPUs: CPUSet(vcpus), Memory: uint(c.MemoryMiB), Unit: "MiB"})
		tune.MemNodes = append(tune.MemNodes, libvirtxml.DomainNUMATuneMemNode{CellID: id, Mode: "strict", Nodeset: strconv.Itoa(c.HostNode)})
	}
	d.NUMATune = tune
	if s.NUMA[0].HugepagesMiB > 0 { // validate: all cells or none
		hp := &libvirtxml.DomainMemoryHugepages{}
		if s.HugepageSizeKiB > 0 {
			hp.Hugepages = []libvirtxml.DomainMemoryHugepage{{Size: uint(s.HugepageSizeKiB), Unit: "KiB"}}
		}
		d.MemoryBacking = &libvirtxml.DomainMemoryBacking{MemoryHugePages: hp}
	}
	return nil
}
