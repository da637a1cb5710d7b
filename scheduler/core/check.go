package core

import (
	"fmt"
	"slices"

	"vhpc/scheduler/model"
)

// CheckStart re-validates one start against the current state. The FSM
// calls it right before applying a start from a plan computed on an older
// snapshot. It returns an error naming the first problem: unknown or
// non-pending job, wrong gang size, repeated node, node not ready or in
// another partition, a core or GPU that does not exist, is reserved,
// drained, already allocated or splits a physical core with another job,
// too few cores or GPUs, a GPU of the wrong model, or memory or scratch
// beyond what is free.
func CheckStart(in Input, st model.Start) error {
	var j *model.Job
	for _, x := range in.Jobs {
		if x.ID == st.Job {
			j = x
			break
		}
	}
	if j == nil {
		return fmt.Errorf("start of job %d: job is not pending or unknown", st.Job)
	}
	if err := checkTask(j, st.Task, in.Allocs); err != nil {
		return fmt.Errorf("start of job %d: %w", st.Job, err)
	}
	r := &j.Request
	if want := max(r.Nodes, 1); len(st.Placements) != want {
		return fmt.Errorf("start of job %d: gang has %d placements, job needs %d nodes", st.Job, len(st.Placements), want)
	}
	cl := newCluster(in.Nodes)
	for _, a := range in.Allocs {
		if n, ok := cl.byName[a.Placement.Node]; ok && !a.State.Terminal() {
			cl.add(n, holder{u: cl.nodes[n].info.useOf(&a.Placement, &cl.ar), start: -1, end: never, job: a.Job})
		}
	}
	seen := map[string]bool{}
	for _, p := range st.Placements {
		if seen[p.Node] {
			return fmt.Errorf("start of job %d: node %s appears twice in the gang", st.Job, p.Node)
		}
		seen[p.Node] = true
		n, ok := cl.byName[p.Node]
		if !ok {
			return fmt.Errorf("start of job %d: unknown node %s", st.Job, p.Node)
		}
		if err := checkPlacement(cl.nodes[n], j, &p); err != nil {
			return fmt.Errorf("start of job %d on %s: %w", st.Job, p.Node, err)
		}
	}
	return nil
}

func checkTask(j *model.Job, task int64, allocs []*model.Alloc) error {
	if j.Array == nil {
		if j.State != model.JobPending || task != 0 {
			return fmt.Errorf("job is %s (task %d), not pending", j.State, task)
		}
		return nil
	}
	if !j.TaskPending(task) {
		return fmt.Errorf("array task %d is not pending (next %d of %d, retrying %v)", task, j.NextTask, j.Array.Tasks(), j.RetryTasks)
	}
	for _, a := range allocs {
		if a.Job == j.ID && a.Task == task && !a.State.Terminal() {
			return fmt.Errorf("array task %d already has allocation %s", task, a.ID)
		}
	}
	return nil
}

func checkPlacement(ns *nodeState, j *model.Job, p *model.Placement) error {
	ni, f, r := ns.info, &ns.now, &j.Request
	if !ni.ready {
		return fmt.Errorf("node is %s, not ready", ni.node.State)
	}
	if part := j.Partition; part != "" && ni.node.Partition != part {
		return fmt.Errorf("node is in partition %q, job in %q", ni.node.Partition, part)
	}
	logical := 0
	var phys []int
	for _, c := range p.Cores {
		pi, ok := ni.physOf(c)
		if !ok {
			return fmt.Errorf("core %d does not exist or is reserved", c)
		}
		if !f.phys.has(pi) {
			return fmt.Errorf("core %d is already allocated (or shares a physical core with an allocation)", c)
		}
		if !slices.Contains(phys, pi) {
			phys = append(phys, pi)
			for _, sib := range ni.phys[pi].ids {
				if !slices.Contains(p.Cores, sib) {
					return fmt.Errorf("core %d without its SMT sibling %d: whole physical cores only", c, sib)
				}
			}
		}
		logical++
	}
	if logical < r.CoresPerNode() {
		return fmt.Errorf("%d cores placed, job needs %d", logical, r.CoresPerNode())
	}
	if len(p.GPUs) != r.GPUs {
		return fmt.Errorf("%d GPUs placed, job needs %d", len(p.GPUs), r.GPUs)
	}
	for _, a := range p.GPUs {
		gi, ok := ni.gpuIdx[a]
		switch {
		case !ok:
			return fmt.Errorf("GPU %s does not exist", a)
		case ni.gpus[gi].drained:
			return fmt.Errorf("GPU %s is drained: %s", a, ni.gpus[gi].gpu.Unusable())
		case !f.gpu.has(gi):
			return fmt.Errorf("GPU %s is already allocated", a)
		case !ni.gpuMatches(gi, r):
			return fmt.Errorf("GPU %s (%s, %d MiB) does not match the request (%s)", a, ni.gpus[gi].gpu.Model, ni.gpus[gi].gpu.MemoryMiB, gpuWords(r, r.GPUs))
		}
		if ni.groups == nil {
			continue
		}
		for _, m := range ni.groups[ni.groupOf[gi]] {
			if mate := ni.gpus[m].gpu.PCIAddress; !slices.Contains(p.GPUs, mate) {
				return fmt.Errorf("GPU %s shares IOMMU group %d with GPU %s, which the placement lacks: such GPUs go to one guest together", a, ni.gpus[gi].gpu.IOMMUGroup, mate)
			}
		}
	}
	if p.MemoryMiB < r.MemoryMiB || p.Hugepages < r.HugepagesMiB || p.Scratch < r.ScratchMiB {
		return fmt.Errorf("placement holds less memory, hugepages or scratch than the job asks for")
	}
	u := ni.useOf(p, &arena{})
	if len(u.numa) != len(p.NUMA) || (len(p.NUMA) == 0 && p.MemoryMiB > 0) {
		return fmt.Errorf("memory on unknown NUMA nodes %v", p.NUMA)
	}
	for i, k := range u.numa {
		if f.reg[k] < u.reg[i] || f.huge[k] < u.huge[i] {
			return fmt.Errorf("NUMA node %d has %d MiB memory and %d MiB hugepages free, placement needs %d and %d", ni.numaID[k], f.reg[k], f.huge[k], u.reg[i], u.huge[i])
		}
	}
	if f.scratch < p.Scratch {
		return fmt.Errorf("%d MiB scratch free, placement needs %d", f.scratch, p.Scratch)
	}
	return nil
}
