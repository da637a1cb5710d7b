package gpu

import (
	"slices"
	"testing"
)

func TestEvaluateHealth(t *testing.T) {
	a := DeviceInfo{UUID: "GPU-a", PCIBusID: "0000:18:00.0"}
	b := DeviceInfo{UUID: "GPU-b", PCIBusID: "0000:2a:00.0"}
	ok := func(d DeviceInfo) Sample { return Sample{UUID: d.UUID, PCIBusID: d.PCIBusID, ECCOK: true} }
	tests := []struct {
		name     string
		expected []DeviceInfo
		samples  []Sample
		events   []Event
		want     []Drain
	}{
		{name: "all fine", expected: []DeviceInfo{a, b}, samples: []Sample{ok(a), ok(b)}},
		{name: "corrected ECC is fine", expected: []DeviceInfo{a}, samples: []Sample{{UUID: "GPU-a", PCIBusID: a.PCIBusID, ECCCorrected: 100}}},
		{
			name: "uncorrectable ECC", expected: []DeviceInfo{a, b},
			samples: []Sample{ok(a), {UUID: "GPU-b", PCIBusID: b.PCIBusID, ECCUncorrected: 1}},
			want:    []Drain{{UUID: "GPU-b", PCIBusID: b.PCIBusID, Reason: "uncorrectable ECC errors: 1"}},
		},
		{
			name: "device gone", expected: []DeviceInfo{a, b}, samples: []Sample{ok(b)},
			want: []Drain{{UUID: "GPU-a", PCIBusID: a.PCIBusID, Reason: "GPU gone: expected but not reported by the driver"}},
		},
		{
			name: "device lost", expected: []DeviceInfo{a}, samples: []Sample{{UUID: "GPU-a", PCIBusID: a.PCIBusID, Lost: true, Err: "ERROR_GPU_IS_LOST"}},
			want: []Drain{{UUID: "GPU-a", PCIBusID: a.PCIBusID, Reason: "GPU lost: the driver no longer reaches it (ERROR_GPU_IS_LOST)"}},
		},
		{
			name: "critical xids by uuid only, non-critical ignored", expected: []DeviceInfo{a, b}, samples: []Sample{ok(a), ok(b)},
			events: []Event{{UUID: "GPU-b", XID: 13}, {UUID: "GPU-b", XID: 95}, {UUID: "GPU-a", XID: 31}, {UUID: "GPU-b", XID: 95}},
			want:   []Drain{{UUID: "GPU-b", PCIBusID: b.PCIBusID, Reason: "XID 95 (uncontained ECC error)"}},
		},
		{
			name: "several reasons join", expected: []DeviceInfo{a},
			samples: []Sample{{UUID: "GPU-a", PCIBusID: a.PCIBusID, ECCUncorrected: 3}},
			events:  []Event{{PCIBusID: a.PCIBusID, XID: 48}, {UUID: "GPU-a", XID: 74}},
			want:    []Drain{{UUID: "GPU-a", PCIBusID: a.PCIBusID, Reason: "uncorrectable ECC errors: 3; XID 48 (double-bit ECC error); XID 74 (NVLink error)"}},
		},
		{
			name: "guest sample for a GPU not expected", samples: []Sample{{PCIBusID: "0000:9a:00.0", ECCUncorrected: 1}},
			want: []Drain{{PCIBusID: "0000:9a:00.0", Reason: "uncorrectable ECC errors: 1"}},
		},
		{
			name: "sorted by pci", expected: []DeviceInfo{b, a},
			events:  []Event{{UUID: "GPU-b", XID: 79}, {UUID: "GPU-a", XID: 79}},
			samples: []Sample{ok(a), ok(b)},
			want: []Drain{
				{UUID: "GPU-a", PCIBusID: a.PCIBusID, Reason: "XID 79 (GPU has fallen off the bus)"},
				{UUID: "GPU-b", PCIBusID: b.PCIBusID, Reason: "XID 79 (GPU has fallen off the bus)"},
			},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got := EvaluateHealth(tc.expected, tc.samples, tc.events)
			if !slices.Equal(got, tc.want) {
				t.Errorf("got  %+v\nwant %+v", got, tc.want)
			}
		})
	}
}

func TestCriticalXID(t *testing.T) {
	for _, x := range []uint64{48, 63, 64, 74, 79, 94, 95} {
		if _, ok := CriticalXID(x); !ok {
			t.Errorf("XID %d should be critical", x)
		}
	}
	for _, x := range []uint64{13, 31, 43, 45} {
		if _, ok := CriticalXID(x); ok {
			t.Errorf("XID %d (application fault) should not drain", x)
		}
	}
}

func TestNormalizePCIBusID(t *testing.T) {
	tests := []struct{ name, in, want string }{
		{"nvml", "00000000:3B:00.0", "0000:3b:00.0"},
		{"sysfs", "0000:3b:00.0", "0000:3b:00.0"},
		{"no domain", "3b:00.1", "0000:3b:00.1"},
		{"nul padded", "00000000:DB:00.0\x00\x00", "0000:db:00.0"},
		{"bad", "3b-00", ""},
		{"bad function", "0000:3b:00.9", ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := NormalizePCIBusID(tc.in)
			if (err != nil) != (tc.want == "") || got != tc.want {
				t.Errorf("NormalizePCIBusID(%q) = %q, %v; want %q", tc.in, got, err, tc.want)
			}
		})
	}
}

func TestModelFromName(t *testing.T) {
	tests := []struct{ name, in, want string }{
		{"h100 sxm", "NVIDIA H100 80GB HBM3", "H100"},
		{"h100 pcie", "NVIDIA H100 PCIe", "H100"},
		{"a100", "NVIDIA A100-SXM4-80GB", "A100"},
		{"v100", "Tesla V100-SXM2-16GB", "V100"},
		{"geforce", "NVIDIA GeForce RTX 4090", "RTX4090"},
		{"workstation", "NVIDIA RTX A6000", "A6000"},
		{"l40s", "NVIDIA L40S", "L40S"},
		{"gh200", "NVIDIA GH200 480GB", "GH200"},
		{"empty", "", ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := ModelFromName(tc.in); got != tc.want {
				t.Errorf("ModelFromName(%q) = %q, want %q", tc.in, got, tc.want)
			}
		})
	}
}
