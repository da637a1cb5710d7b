package gpumetrics

import (
	"encoding/json"
	"testing"
	"time"

	"vhpc/guestproto"
	"vhpc/nodeagent/gpu"
)

func TestParseGuestSample(t *testing.T) {
	at := time.Date(2026, 11, 30, 12, 0, 0, 0, time.UTC)
	line := func(s guestproto.GPUSample) []byte {
		b, err := guestproto.EncodeGPUSample(s)
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	// older hpc-guest binaries wrote gpu.Sample itself, already normalised
	old, err := json.Marshal(gpu.Sample{UUID: "GPU-old", PCIBusID: "0000:07:00.0", Model: "A100", Time: at, PowerW: 250})
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name    string
		line    []byte
		want    gpu.Sample
		wantErr bool
	}{
		{
			name: "as nvidia-smi reports it",
			line: line(guestproto.GPUSample{UUID: "GPU-aaa", PCIBusID: "00000000:07:00.0", Model: "NVIDIA H100 80GB HBM3", Time: at,
				UtilizationPct: 87, MemoryUsedBytes: 40 << 30, MemoryTotalBytes: 80 << 30, TemperatureC: 61, PowerW: 512.5}),
			want: gpu.Sample{UUID: "GPU-aaa", PCIBusID: "0000:07:00.0", Model: "H100", Time: at,
				UtilizationPct: 87, MemoryUsedBytes: 40 << 30, MemoryTotalBytes: 80 << 30, TemperatureC: 61, PowerW: 512.5},
		},
		{
			name: "older hpc-guest",
			line: old,
			want: gpu.Sample{UUID: "GPU-old", PCIBusID: "0000:07:00.0", Model: "A100", Time: at, PowerW: 250},
		},
		{name: "bad pci address", line: line(guestproto.GPUSample{UUID: "GPU-bad", PCIBusID: "nonsense"}), wantErr: true},
		{name: "not json", line: []byte("{half"), wantErr: true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := ParseGuestSample(tc.line)
			if (err != nil) != tc.wantErr {
				t.Fatalf("err %v, want error %v", err, tc.wantErr)
			}
			if !tc.wantErr && got != tc.want {
				t.Errorf("got %+v\nwant %+v", got, tc.want)
			}
		})
	}
}
