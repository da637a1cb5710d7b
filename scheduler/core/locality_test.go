package core

import (
	"slices"
	"testing"
	"time"

	"vhpc/scheduler/model"
)

// TestImageLocality checks the locality term of cmpCand: among the nodes a
// job fits, those whose cache holds its image win after the GPU leftover
// and before cores; it never keeps a job from a node without the image.
func TestImageLocality(t *testing.T) {
	const img = "sha256:1111111111111111111111111111111111111111111111111111111111111111"
	const other = "sha256:2222222222222222222222222222222222222222222222222222222222222222"
	small := hwSpec{numa: 1, phys: 2, smt: 1, memMiB: 1000}
	big := hwSpec{numa: 1, phys: 8, smt: 1, memMiB: 1000}
	twoGPU := hwSpec{numa: 1, phys: 8, smt: 1, gpus: 2, model: "H100", memMiB: 1000}
	fourGPU := hwSpec{numa: 1, phys: 8, smt: 1, gpus: 4, model: "H100", memMiB: 1000}
	notReady := mkNode("b", big)
	notReady.State = model.NodeDraining
	tests := []struct {
		name   string
		nodes  []*model.Node
		busy   []model.Placement // running job 99 until now+1h
		images map[string][]string
		image  string // the job's ImageDigest
		req    model.Request
		start  []string // nodes of the start; nil: none
		res    []string // nodes of the reservation; nil: none
	}{
		{
			name:  "both fit: the node with the image",
			nodes: []*model.Node{mkNode("a", big), mkNode("b", big)},
			image: img, images: map[string][]string{img: {"b"}},
			req: model.Request{TasksPerNode: 2}, start: []string{"b"},
		},
		{
			name:  "only the node without the image fits: it runs there",
			nodes: []*model.Node{mkNode("a", big), mkNode("b", small)},
			image: img, images: map[string][]string{img: {"b"}},
			req: model.Request{TasksPerNode: 4}, start: []string{"a"},
		},
		{
			name:   "job without an image: the choice without locality",
			nodes:  []*model.Node{mkNode("a", big), mkNode("b", big)},
			images: map[string][]string{img: {"b"}},
			req:    model.Request{TasksPerNode: 2}, start: []string{"a"},
		},
		{
			name:  "no node holds the job's image: the choice without locality",
			nodes: []*model.Node{mkNode("a", big), mkNode("b", big)},
			image: img, images: map[string][]string{other: {"b"}},
			req: model.Request{TasksPerNode: 2}, start: []string{"a"},
		},
		{
			name:  "only an unknown or not-ready node holds it: as without",
			nodes: []*model.Node{mkNode("a", big), notReady, mkNode("c", big)},
			image: img, images: map[string][]string{img: {"b", "zz"}},
			req: model.Request{TasksPerNode: 2}, start: []string{"a"},
		},
		{
			name:  "GPU best fit comes before locality",
			nodes: []*model.Node{mkNode("a", twoGPU), mkNode("b", fourGPU)},
			image: img, images: map[string][]string{img: {"b"}},
			req: model.Request{GPUs: 2, GPUModel: "H100"}, start: []string{"a"},
		},
		{
			name:  "locality comes before the core leftover",
			nodes: []*model.Node{mkNode("a", small), mkNode("b", big)},
			image: img, images: map[string][]string{img: {"b"}},
			req: model.Request{TasksPerNode: 2}, start: []string{"b"},
		},
		{
			name:  "gang of 2: the node with the image and the next best",
			nodes: []*model.Node{mkNode("a", big), mkNode("b", big), mkNode("c", big)},
			image: img, images: map[string][]string{img: {"c"}},
			req: model.Request{Nodes: 2, TasksPerNode: 2}, start: []string{"a", "c"},
		},
		{
			name:  "gang of 2 without an image: the first two",
			nodes: []*model.Node{mkNode("a", big), mkNode("b", big), mkNode("c", big)},
			req:   model.Request{Nodes: 2, TasksPerNode: 2}, start: []string{"a", "b"},
		},
		{
			name:  "reservation: on the node with the image",
			nodes: []*model.Node{mkNode("a", small), mkNode("b", small)},
			busy: []model.Placement{{Node: "a", Cores: []int{0, 1}, NUMA: []int{0}},
				{Node: "b", Cores: []int{0, 1}, NUMA: []int{0}}},
			image: img, images: map[string][]string{img: {"b"}},
			req: model.Request{TasksPerNode: 2}, res: []string{"b"},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			j := mkJob(1, tc.req, time.Hour)
			j.ImageDigest = tc.image
			in := Input{Now: t0, Nodes: tc.nodes, Jobs: []*model.Job{j}, ImageNodes: tc.images}
			for i, p := range tc.busy {
				in.Allocs = append(in.Allocs, &model.Alloc{ID: model.AllocID(rune('a' + i)), Job: 99, Placement: p,
					State: model.AllocRunning, Created: t0, Deadline: t0.Add(time.Hour)})
			}
			plan := Schedule(in, DefaultConfig())
			var start, res []string
			if len(plan.Starts) == 1 {
				start = nodesOf(plan.Starts[0].Placements)
				if err := CheckStart(in, plan.Starts[0]); err != nil {
					t.Fatalf("CheckStart rejects the plan's own start: %v", err)
				}
			}
			if len(plan.Reservations) == 1 {
				res = slices.Sorted(slices.Values(plan.Reservations[0].Nodes))
			}
			if !slices.Equal(start, tc.start) || !slices.Equal(res, tc.res) {
				t.Fatalf("start on %v, reservation on %v; want %v, %v (pending: %q)", start, res, tc.start, tc.res, plan.Pending[1])
			}
			if tc.start != nil {
				ex := Explain(in, DefaultConfig(), 1)
				if !slices.Equal(ex.Nodes, tc.start) {
					t.Fatalf("Explain says nodes %v, want %v", ex.Nodes, tc.start)
				}
			}
		})
	}
}
