package core

import (
	"fmt"
	"time"

	"vhpc/scheduler/model"
)

var t0 = time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)

// hwSpec describes a test node: NUMA nodes x physical cores x SMT threads,
// GPUs per NUMA node of one model, memory per NUMA node.
type hwSpec struct {
	numa, phys, smt, gpus int
	model                 string
	memMiB                int64
}

func mkNode(name string, h hwSpec) *model.Node {
	n := &model.Node{Name: name, State: model.NodeReady, Hypervisor: "kvm", ScratchMiB: 100000}
	id := 0
	for s := 0; s < h.smt; s++ {
		for k := 0; k < h.numa; k++ {
			for p := 0; p < h.phys; p++ {
				n.Cores = append(n.Cores, model.Core{ID: id, NUMA: k, PhysicalCore: k*1000 + p})
				id++
			}
		}
	}
	for k := 0; k < h.numa; k++ {
		n.NUMA = append(n.NUMA, model.NUMANode{ID: k, MemoryMiB: h.memMiB})
		for g := 0; g < h.gpus; g++ {
			n.GPUs = append(n.GPUs, model.GPU{PCIAddress: fmt.Sprintf("0000:%02x:00.0", k*16+g+1), Model: h.model,
				MemoryMiB: 81920, NUMA: k, IOMMUGroup: k*16 + g})
		}
	}
	return n
}

// dgx is a 2-NUMA, 8-core-per-NUMA, SMT-2 node with 2 H100 per NUMA node.
var dgx = hwSpec{numa: 2, phys: 8, smt: 2, gpus: 2, model: "H100", memMiB: 65536}

func mkJob(id model.JobID, r model.Request, wall time.Duration) *model.Job {
	if r.Nodes == 0 {
		r.Nodes = 1
	}
	if r.TasksPerNode == 0 {
		r.TasksPerNode = 1
	}
	if r.CPUsPerTask == 0 {
		r.CPUsPerTask = 1
	}
	return &model.Job{ID: id, User: "alice", Department: "physics", Request: r, Walltime: wall,
		State: model.JobPending, SubmitTime: t0.Add(time.Duration(id) * time.Second)}
}

// allocsFor turns a start into running allocations started at `at`.
func allocsFor(s model.Start, j *model.Job, at time.Time) []*model.Alloc {
	var out []*model.Alloc
	for i, p := range s.Placements {
		out = append(out, &model.Alloc{ID: model.AllocID(fmt.Sprintf("%d.%d.%d", s.Job, s.Task, i)), Job: s.Job, Task: s.Task,
			Rank: i, Attempt: 1, Placement: p.Copy(), State: model.AllocRunning, Created: at, Started: at, Deadline: at.Add(j.Walltime),
			Speculative: s.Speculative})
	}
	return out
}

func cfgWith(policy string) Config {
	c := DefaultConfig()
	c.Policy = policy
	return c
}

// runs is a runtime history of runs of no kind, oldest first.
func runs(ds ...time.Duration) []model.Run {
	out := make([]model.Run, len(ds))
	for i, d := range ds {
		out[i] = model.Run{Runtime: d}
	}
	return out
}
