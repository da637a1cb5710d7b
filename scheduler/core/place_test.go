package core

import (
	"slices"
	"strings"
	"testing"
	"time"

	"vhpc/scheduler/model"
)

func TestPlacement(t *testing.T) {
	drained := mkNode("a", dgx)
	drained.GPUs[0].Drained = "xid 79"
	reserved := mkNode("a", hwSpec{numa: 1, phys: 4, smt: 1, memMiB: 1000})
	reserved.ReservedCores = []int{0, 1}
	notReady := mkNode("a", dgx)
	notReady.State = model.NodeDraining
	// The two GPUs of NUMA node 0 sit behind one PCIe switch without ACS:
	// one IOMMU group, so they can only go to one guest together.
	shared := mkNode("a", dgx)
	shared.GPUs[0].IOMMUGroup, shared.GPUs[1].IOMMUGroup = 100, 100
	shared.GPUs[0].IOMMUShared, shared.GPUs[1].IOMMUShared = true, true
	tests := []struct {
		name   string
		nodes  []*model.Node
		busy   []model.Placement // already allocated (job 99)
		req    model.Request
		want   []model.Placement // nil: not started
		reason string            // substring of the pending reason
	}{
		{
			name:  "gpu job gets cores and memory on the GPUs' NUMA node",
			nodes: []*model.Node{mkNode("a", dgx)},
			busy:  []model.Placement{{Node: "a", GPUs: []string{"0000:01:00.0"}, Cores: []int{0, 16}, NUMA: []int{0}}},
			req:   model.Request{GPUs: 1, GPUModel: "H100", TasksPerNode: 2, MemoryMiB: 1024},
			want:  []model.Placement{{Node: "a", Cores: []int{1, 17}, NUMA: []int{0}, GPUs: []string{"0000:02:00.0"}, MemoryMiB: 1024}},
		},
		{
			name:   "two GPUs on one NUMA node, one free on each: miss with reason",
			nodes:  []*model.Node{mkNode("a", dgx)},
			busy:   []model.Placement{{Node: "a", GPUs: []string{"0000:01:00.0", "0000:11:00.0"}, Cores: []int{0}, NUMA: []int{0}}},
			req:    model.Request{GPUs: 2, GPUModel: "H100"},
			reason: "needs 2 GPUs of model H100 on one NUMA node; largest free: 1",
		},
		{
			name:  "cross-NUMA allowed: takes one GPU from each NUMA node",
			nodes: []*model.Node{mkNode("a", dgx)},
			busy:  []model.Placement{{Node: "a", GPUs: []string{"0000:01:00.0", "0000:11:00.0"}, Cores: []int{0, 16}, NUMA: []int{0}}},
			req:   model.Request{GPUs: 2, GPUModel: "H100", CrossNUMA: true, MemoryMiB: 3},
			// NUMA 1 has more free cores, so the cores come from there.
			want: []model.Placement{{Node: "a", Cores: []int{8, 24}, NUMA: []int{0, 1}, GPUs: []string{"0000:02:00.0", "0000:12:00.0"}, MemoryMiB: 3}},
		},
		{
			name:  "odd core count takes whole SMT cores",
			nodes: []*model.Node{mkNode("a", dgx)},
			req:   model.Request{TasksPerNode: 3},
			want:  []model.Placement{{Node: "a", Cores: []int{0, 1, 16, 17}, NUMA: []int{0}, GPUs: []string{}}},
		},
		{
			name:  "reserved cores are never given out",
			nodes: []*model.Node{reserved},
			req:   model.Request{TasksPerNode: 2},
			want:  []model.Placement{{Node: "a", Cores: []int{2, 3}, NUMA: []int{0}, GPUs: []string{}}},
		},
		{
			name:   "reserved cores make a full-node request impossible",
			nodes:  []*model.Node{reserved},
			req:    model.Request{TasksPerNode: 4},
			reason: "can never be placed",
		},
		{
			name:  "drained GPU is skipped",
			nodes: []*model.Node{drained},
			req:   model.Request{GPUs: 1},
			want:  []model.Placement{{Node: "a", Cores: []int{0, 16}, NUMA: []int{0}, GPUs: []string{"0000:02:00.0"}}},
		},
		{
			name:  "one GPU comes from a group of its own, not from a shared group",
			nodes: []*model.Node{shared},
			req:   model.Request{GPUs: 1},
			want:  []model.Placement{{Node: "a", Cores: []int{8, 24}, NUMA: []int{1}, GPUs: []string{"0000:11:00.0"}}},
		},
		{
			name:  "two GPUs take a shared group whole",
			nodes: []*model.Node{shared},
			busy:  []model.Placement{{Node: "a", GPUs: []string{"0000:11:00.0"}, Cores: []int{8, 24}, NUMA: []int{1}}},
			req:   model.Request{GPUs: 2},
			want:  []model.Placement{{Node: "a", Cores: []int{0, 16}, NUMA: []int{0}, GPUs: []string{"0000:01:00.0", "0000:02:00.0"}}},
		},
		{
			name:   "a shared group is never split",
			nodes:  []*model.Node{shared},
			busy:   []model.Placement{{Node: "a", GPUs: []string{"0000:11:00.0", "0000:12:00.0"}, Cores: []int{8, 24}, NUMA: []int{1}}},
			req:    model.Request{GPUs: 1},
			reason: "waiting for resources",
		},
		{
			name:  "three GPUs across NUMA nodes: the shared group and one more",
			nodes: []*model.Node{shared},
			req:   model.Request{GPUs: 3, CrossNUMA: true},
			want:  []model.Placement{{Node: "a", Cores: []int{0, 16}, NUMA: []int{0, 1}, GPUs: []string{"0000:01:00.0", "0000:02:00.0", "0000:11:00.0"}}},
		},
		{
			name:   "node not ready takes no work",
			nodes:  []*model.Node{notReady},
			req:    model.Request{GPUs: 1},
			reason: "waiting for nodes",
		},
		{
			name:   "wrong GPU model can never be placed",
			nodes:  []*model.Node{mkNode("a", dgx)},
			req:    model.Request{GPUs: 1, GPUModel: "A100"},
			reason: "can never be placed: needs 1 node(s) with 1 cores, 1 GPU of model A100",
		},
		{
			name:  "best fit: small job goes to the partly used node",
			nodes: []*model.Node{mkNode("a", dgx), mkNode("b", dgx)},
			busy:  []model.Placement{{Node: "b", GPUs: []string{"0000:01:00.0"}, Cores: []int{0, 16}, NUMA: []int{0}}},
			req:   model.Request{GPUs: 1},
			want:  []model.Placement{{Node: "b", Cores: []int{1, 17}, NUMA: []int{0}, GPUs: []string{"0000:02:00.0"}}},
		},
		{
			name:  "cpu-only job avoids the NUMA node with free GPUs",
			nodes: []*model.Node{mkNode("a", dgx)},
			busy:  []model.Placement{{Node: "a", GPUs: []string{"0000:11:00.0", "0000:12:00.0"}, Cores: []int{8, 24}, NUMA: []int{1}}},
			req:   model.Request{TasksPerNode: 2},
			want:  []model.Placement{{Node: "a", Cores: []int{9, 25}, NUMA: []int{1}, GPUs: []string{}}},
		},
		{
			name:  "request larger than one NUMA node spans without CrossNUMA",
			nodes: []*model.Node{mkNode("a", dgx)},
			req:   model.Request{TasksPerNode: 20, MemoryMiB: 100000},
			want: []model.Placement{{Node: "a", Cores: []int{0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 16, 17, 18, 19, 20, 21, 22, 23, 24, 25},
				NUMA: []int{0, 1}, GPUs: []string{}, MemoryMiB: 100000}},
		},
		{
			name:   "memory that fits the node but no NUMA node waits without CrossNUMA",
			nodes:  []*model.Node{mkNode("a", dgx)},
			busy:   []model.Placement{{Node: "a", Cores: []int{0}, NUMA: []int{0, 1}, MemoryMiB: 60000}},
			req:    model.Request{MemoryMiB: 40000},
			reason: "no node has 1 cores, 40000 MiB memory free at once",
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			j := mkJob(1, tc.req, time.Hour)
			in := Input{Now: t0, Nodes: tc.nodes, Jobs: []*model.Job{j}}
			for i, p := range tc.busy {
				in.Allocs = append(in.Allocs, &model.Alloc{ID: model.AllocID(rune('a' + i)), Job: 99, Placement: p,
					State: model.AllocRunning, Created: t0, Deadline: t0.Add(time.Hour)})
			}
			plan := Schedule(in, DefaultConfig())
			if tc.want == nil {
				if len(plan.Starts) != 0 {
					t.Fatalf("started %+v, want pending", plan.Starts)
				}
				if got := plan.Pending[1]; !strings.Contains(got, tc.reason) {
					t.Fatalf("reason %q, want it to contain %q", got, tc.reason)
				}
				return
			}
			if len(plan.Starts) != 1 {
				t.Fatalf("no start; pending: %q", plan.Pending[1])
			}
			if got := plan.Starts[0].Placements; !slices.EqualFunc(got, tc.want, eqPlacement) {
				t.Fatalf("placements\n got %+v\nwant %+v", got, tc.want)
			}
			if err := CheckStart(in, plan.Starts[0]); err != nil {
				t.Fatalf("CheckStart rejects the plan's own start: %v", err)
			}
		})
	}
}

func eqPlacement(a, b model.Placement) bool {
	return a.Node == b.Node && slices.Equal(a.Cores, b.Cores) && slices.Equal(a.NUMA, b.NUMA) &&
		slices.Equal(a.GPUs, b.GPUs) && a.MemoryMiB == b.MemoryMiB
}

func TestCheckStartRefusesHalfAnIOMMUGroup(t *testing.T) {
	n := mkNode("a", dgx)
	n.GPUs[0].IOMMUGroup, n.GPUs[1].IOMMUGroup = 100, 100
	n.GPUs[0].IOMMUShared, n.GPUs[1].IOMMUShared = true, true
	in := Input{Now: t0, Nodes: []*model.Node{n}, Jobs: []*model.Job{mkJob(1, model.Request{GPUs: 1}, time.Hour)}}
	err := CheckStart(in, model.Start{Job: 1, Placements: []model.Placement{{Node: "a", Cores: []int{0, 16}, NUMA: []int{0}, GPUs: []string{"0000:01:00.0"}}}})
	if err == nil || !strings.Contains(err.Error(), "shares IOMMU group 100 with GPU 0000:02:00.0") {
		t.Fatalf("CheckStart = %v, want a refusal naming the group mate", err)
	}
}
