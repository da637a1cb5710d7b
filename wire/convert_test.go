package wire

import (
	"reflect"
	"strings"
	"testing"

	"vhpc/scheduler/model"
)

func TestNodeRoundTrip(t *testing.T) {
	n := model.Node{
		Name: "gpu7", Partition: "a100", Hypervisor: "kvm", ScratchMiB: 1 << 20, ReservedCores: []int{0, 32},
		Cores: []model.Core{{ID: 0, NUMA: 0, PhysicalCore: 0}, {ID: 32, NUMA: 1, PhysicalCore: 16}},
		NUMA:  []model.NUMANode{{ID: 0, MemoryMiB: 512 << 10, HugepagesMiB: 64 << 10}, {ID: 1, MemoryMiB: 512 << 10}},
		GPUs: []model.GPU{
			{PCIAddress: "0000:3b:00.0", UUID: "GPU-1", Model: "H100", MemoryMiB: 80 << 10, NUMA: 0, IOMMUGroup: 12, IOMMUShared: true},
			{PCIAddress: "0000:86:00.0", Model: "H100", NUMA: 1, IOMMUGroup: 40, Drained: "shares IOMMU group", Health: "XID 79"},
		},
	}
	got := NodeFromProto(NodeToProto(&n))
	// State, reason and last-seen are the master's, not the agent's.
	if !reflect.DeepEqual(got, n) {
		t.Fatalf("round trip changed the node:\n got %+v\nwant %+v", got, n)
	}
}

func TestAllocToProtoMarksStops(t *testing.T) {
	cases := []struct {
		name string
		stop bool
		want string
	}{
		{"running", false, "run"},
		{"asked to stop", true, "stop"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			a := &model.Alloc{ID: "1.0.0.1", Job: 1, Attempt: 1, StopRequested: c.stop,
				Placement: model.Placement{Node: "n", Cores: []int{2, 3}, GPUs: []string{"0000:3b:00.0"}, MemoryMiB: 512}}
			p := AllocToProto(a, &model.Job{SpecJSON: []byte(`{"name":"x"}`), SubmitDir: "/home/ada", ImageRef: "public/tiny:latest", ImageDigest: "sha256:ab", Inputs: "sha256:cd"})
			if p.GetDesired() != c.want || p.GetSpecJson() != `{"name":"x"}` || p.GetInputs() != "sha256:cd" || len(p.GetCores()) != 2 ||
				p.GetImageRef() != "public/tiny:latest" || p.GetImageDigest() != "sha256:ab" {
				t.Fatalf("AllocToProto = %v", p)
			}
			if strings.Contains(p.String(), "/home/ada") {
				t.Fatalf("an agent's allocation carries the submitter's directory: %v", p)
			}
		})
	}
}
