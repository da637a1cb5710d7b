package inventory

import (
	"cmp"
	"fmt"
	"slices"
	"strings"

	"vhpc/nodeagent/gpu"
	"vhpc/scheduler/model"
)

// AddNVML merges what the host driver knows about its GPUs (gpu.Source's
// Devices) into the PCI view: UUID, exact model and memory, health. GPUs
// bound to vfio-pci are invisible to NVML and keep the values from the PCI
// device id table. The agent calls it after Scan when NVML is available.
func (inv *Inventory) AddNVML(devs []gpu.DeviceInfo) {
	for _, d := range devs {
		addr := normalizePCI(d.PCIBusID)
		i := slices.IndexFunc(inv.GPUs, func(g GPU) bool { return g.Address == addr })
		if i < 0 {
			inv.Notes = append(inv.Notes, fmt.Sprintf("NVML reports GPU %s (%s) that is not an NVIDIA GPU on the PCI bus in sysfs", addr, d.UUID))
			continue
		}
		g := &inv.GPUs[i]
		g.UUID = d.UUID
		if d.Model != "" {
			g.Model = d.Model
		}
		if d.MemoryMiB > 0 {
			g.MemoryMiB = d.MemoryMiB
		}
		if !d.Healthy {
			g.Unhealthy = d.HealthReason
			if g.Unhealthy == "" {
				g.Unhealthy = "unhealthy according to NVML"
			}
		}
	}
}

// ToNode turns the inventory into the node the agent registers with the
// master. It fills Name, Cores (online CPUs only), NUMA, GPUs and ScratchMiB;
// the agent sets Partition, Hypervisor, ReservedCores and State.
//
// Core.PhysicalCore is a host-wide id per (package, core_id), numbered in
// that order from 0, so SMT siblings share it and equal core_ids on two
// sockets do not. A GPU that cannot be passed through, or that NVML calls
// unhealthy, is listed with Drained set to the reason, so that "hpcsub nodes"
// shows why it is never used.
func (inv *Inventory) ToNode(name string) *model.Node {
	n := &model.Node{Name: name, ScratchMiB: inv.ScratchMiB}

	type coreKey struct{ pkg, core int }
	var keys []coreKey
	for _, c := range inv.CPUs {
		if c.Online {
			keys = append(keys, coreKey{c.Package, c.CoreID})
		}
	}
	slices.SortFunc(keys, func(a, b coreKey) int { return cmp.Or(cmp.Compare(a.pkg, b.pkg), cmp.Compare(a.core, b.core)) })
	keys = slices.Compact(keys)
	for _, c := range inv.CPUs {
		if !c.Online {
			continue
		}
		pc, _ := slices.BinarySearchFunc(keys, coreKey{c.Package, c.CoreID}, func(a, b coreKey) int {
			return cmp.Or(cmp.Compare(a.pkg, b.pkg), cmp.Compare(a.core, b.core))
		})
		n.Cores = append(n.Cores, model.Core{ID: c.ID, NUMA: c.NUMA, PhysicalCore: pc})
	}
	for _, m := range inv.NUMA {
		n.NUMA = append(n.NUMA, model.NUMANode{ID: m.ID, MemoryMiB: m.MemoryMiB, HugepagesMiB: m.HugepagesMiB})
	}
	for _, g := range inv.GPUs {
		var drained []string
		if !g.Passthrough {
			drained = append(drained, g.Reason)
		}
		if g.Unhealthy != "" {
			drained = append(drained, g.Unhealthy)
		}
		n.GPUs = append(n.GPUs, model.GPU{
			PCIAddress: g.Address,
			UUID:       g.UUID,
			Model:      g.Model,
			MemoryMiB:  g.MemoryMiB,
			NUMA:       g.NUMA,
			IOMMUGroup: g.IOMMUGroup,
			// Another GPU in the group: the scheduler keeps them together.
			IOMMUShared: g.IOMMUGroup >= 0 && slices.ContainsFunc(inv.GPUs, func(o GPU) bool {
				return o.Address != g.Address && o.IOMMUGroup == g.IOMMUGroup
			}),
			Drained: strings.Join(drained, "; "),
		})
	}
	return n
}
