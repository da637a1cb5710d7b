package runner

import (
	"cmp"
	"context"
	"fmt"
	"log/slog"
	"slices"
	"strings"

	"vhpc/nodeagent/gpureset"
	"vhpc/nodeagent/inventory"
	"vhpc/nodeagent/libvirt"
	"vhpc/nodeagent/vm"
	"vhpc/scheduler/model"
)

// ResolveGPUs turns a placement's GPU addresses into the vm.GPU values
// Task.GPUs carries: the GPU's host NUMA node and every member of its IOMMU
// group, from the inventory. The agent calls it when it turns an
// allocation into a Task. It fails for an address that is not a GPU of the
// inventory or a GPU that cannot be passed through (GPU.Reason).
func ResolveGPUs(inv *inventory.Inventory, addrs []string) ([]vm.GPU, error) {
	var out []vm.GPU
	for _, a := range addrs {
		i := slices.IndexFunc(inv.GPUs, func(g inventory.GPU) bool { return g.Address == a })
		if i < 0 {
			return nil, fmt.Errorf("gpu %s is not an NVIDIA GPU on this host's PCI bus", a)
		}
		g := inv.GPUs[i]
		if !g.Passthrough {
			return nil, fmt.Errorf("gpu %s cannot be passed through: %s", a, g.Reason)
		}
		vg := vm.GPU{Address: g.Address, NUMA: g.NUMA}
		for _, m := range g.GroupMembers {
			vg.Group = append(vg.Group, vm.PCIFunction{Address: m.Address, Class: m.Class})
			if m.Address != g.Address && slices.ContainsFunc(inv.GPUs, func(o inventory.GPU) bool { return o.Address == m.Address }) {
				vg.Mates = append(vg.Mates, m.Address)
			}
		}
		out = append(out, vg)
	}
	return out, nil
}

// gpuPlan is what a GPU task adds to its vm.Spec.
type gpuPlan struct {
	gpus         []vm.GPU
	cells        []vm.NUMACell
	coreNUMA     []int
	housekeeping []int
}

// planGPUs checks a GPU task against the host as it is now (a fresh
// inventory scan: IOMMU on, every GPU present, passable and with the IOMMU
// group the task was resolved with) and lays out its guest: NUMA cells
// mirroring Placement.NUMA with model.Placement.MemoryShares, each core's
// node, and housekeeping cores on the placement's nodes where there are
// any. It returns nil for a GPU-less task, which it does not look at.
func (r *Runner) planGPUs(t Task) (*gpuPlan, error) {
	if len(t.Placement.GPUs) == 0 && len(t.GPUs) == 0 {
		return nil, nil
	}
	var have []string
	for _, g := range t.GPUs {
		have = append(have, g.Address)
	}
	if !slices.Equal(sorted(have), sorted(t.Placement.GPUs)) {
		return nil, fmt.Errorf("task placement has GPUs %v but Task.GPUs resolves %v; fill Task.GPUs with runner.ResolveGPUs", t.Placement.GPUs, have)
	}
	if r.hv != "kvm" {
		return nil, fmt.Errorf("GPU passthrough needs KVM; this node runs guests under %s (%s)", r.hv, r.hvReason)
	}
	inv, err := inventory.Scan(inventory.Options{Root: r.hostFS, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		return nil, fmt.Errorf("gpu checks: %w", err)
	}
	if !inv.IOMMU {
		return nil, fmt.Errorf("gpu checks: the IOMMU is off (no /sys/kernel/iommu_groups); enable VT-d/AMD-Vi in firmware and boot with intel_iommu=on iommu=pt")
	}
	now, err := ResolveGPUs(inv, t.Placement.GPUs)
	if err != nil {
		return nil, fmt.Errorf("gpu checks: %w", err)
	}
	for _, want := range t.GPUs {
		i := slices.IndexFunc(now, func(g vm.GPU) bool { return g.Address == want.Address })
		got := now[i]
		if got.NUMA != want.NUMA || !slices.Equal(groupAddrs(got), groupAddrs(want)) {
			return nil, fmt.Errorf("gpu checks: gpu %s changed since the task was resolved: now NUMA node %d, IOMMU group %v; task says node %d, group %v",
				want.Address, got.NUMA, groupAddrs(got), want.NUMA, groupAddrs(want))
		}
	}
	p := &gpuPlan{gpus: t.GPUs}
	nodeOf := map[int]int{}
	for _, c := range inv.CPUs {
		if c.Online {
			nodeOf[c.ID] = c.NUMA
		}
	}
	var coreNodes []int
	for _, c := range t.Placement.Cores {
		n, ok := nodeOf[c]
		if !ok {
			return nil, fmt.Errorf("gpu checks: core %d of the placement is not an online CPU of this host", c)
		}
		p.coreNUMA = append(p.coreNUMA, n)
		coreNodes = append(coreNodes, n)
	}
	nodes := t.Placement.NUMA
	if len(nodes) == 0 {
		nodes = slices.Compact(sorted(append(coreNodes, gpuNodes(t.GPUs)...)))
	}
	reg, huge := model.Placement{NUMA: nodes, MemoryMiB: memoryMiB(t), Hugepages: t.Placement.Hugepages}.MemoryShares()
	for i, n := range nodes {
		p.cells = append(p.cells, vm.NUMACell{HostNode: n, MemoryMiB: reg[i] + huge[i], HugepagesMiB: huge[i]})
	}
	for _, c := range r.cfg.HousekeepingCores {
		if n, ok := nodeOf[c]; ok && slices.Contains(nodes, n) {
			p.housekeeping = append(p.housekeeping, c)
		}
	}
	if len(p.housekeeping) == 0 {
		p.housekeeping = r.cfg.HousekeepingCores
	}
	return p, nil
}

// apply adds the plan to a spec.
func (p *gpuPlan) apply(s *vm.Spec) {
	s.GPUs, s.NUMA, s.CoreNUMA, s.HousekeepingCores, s.IOThread = p.gpus, p.cells, p.coreNUMA, p.housekeeping, true
}

// returnGPUs resets (and optionally rebinds) every function passed through
// for t, once its domain name is gone; GPU-less tasks: nothing. A domain
// that still exists (its destroy failed) keeps its GPUs: they are not
// touched, and the error says so. Every failure is a *gpureset.Error
// naming the functions, so the agent can drain them.
func (r *Runner) returnGPUs(ctx context.Context, t Task, name string, log *slog.Logger) error {
	var fns []gpureset.Function
	var addrs []string
	for _, g := range t.GPUs {
		passed, err := vm.PassedFunctions(g)
		if err != nil {
			return fmt.Errorf("return gpus: %w", &gpureset.Error{Addresses: []string{g.Address}, Err: err})
		}
		for _, a := range passed {
			fns = append(fns, gpureset.Function{Address: a, GPU: a == g.Address})
			addrs = append(addrs, a)
		}
	}
	if len(fns) == 0 {
		return nil
	}
	cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), cleanupTimeout)
	defer cancel()
	st, err := r.doms.State(cctx, name)
	if err == nil && st != libvirt.StateAbsent {
		err = fmt.Errorf("domain %s still exists (%s)", name, st)
	}
	if err != nil {
		return fmt.Errorf("return gpus: not reset: %w", &gpureset.Error{Addresses: addrs, Err: err})
	}
	if err := r.gpuReturn.Return(fns); err != nil {
		return fmt.Errorf("return gpus: %w", err)
	}
	log.Info("gpus returned", "gpus", strings.Join(t.Placement.GPUs, ","), "driver", r.cfg.GPUReturnDriver)
	return nil
}

func sorted[T cmp.Ordered](s []T) []T {
	c := slices.Clone(s)
	slices.Sort(c)
	return c
}

// groupAddrs is g's IOMMU group by address, the GPU included.
func groupAddrs(g vm.GPU) []string {
	a := []string{g.Address}
	for _, m := range g.Group {
		a = append(a, m.Address)
	}
	return slices.Compact(sorted(a))
}

func gpuNodes(gs []vm.GPU) []int {
	var n []int
	for _, g := range gs {
		n = append(n, g.NUMA)
	}
	return n
}
