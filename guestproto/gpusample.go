package guestproto

import (
	"encoding/json"
	"fmt"
	"time"
)

// GPUSamplesFile receives one EncodeGPUSample line per GPU every sampling
// period while the job runs in a guest that has GPUs. hpc-guest appends
// to it; the agent tails it (GPUs passed through are invisible to host
// NVML), maps each guest GPU to the host GPU it was given, exports the
// samples as metrics and accounts the job's GPU usage.
const GPUSamplesFile = "gpu-samples.jsonl"

// GPUSample is one line of GPUSamplesFile: what the guest's driver says
// about one GPU at one time. The guest reports values as its driver gives
// them; the host normalises them (nodeagent/gpumetrics.ParseGuestSample).
//
// The JSON keys are the Go field names of the first version of this file
// (which was nodeagent/gpu.Sample's encoding), so lines written by an
// older hpc-guest still decode. Add fields only as optional keys.
type GPUSample struct {
	UUID string `json:"UUID"`
	// PCIBusID is the GPU's address inside the guest, as the driver
	// writes it ("00000000:07:00.0"); the host normalises it and maps it
	// to the host GPU the guest was given.
	PCIBusID string `json:"PCIBusID"`
	// Model is the product name as the driver reports it ("NVIDIA H100
	// 80GB HBM3"); the host shortens it to the model name ("H100"). Older
	// hpc-guest binaries wrote the short name, which the host keeps.
	Model string    `json:"Model"`
	Time  time.Time `json:"Time"`
	// UtilizationPct is 0..100, the GPU busy over the driver's last period.
	UtilizationPct   float64 `json:"UtilizationPct"`
	MemoryUsedBytes  uint64  `json:"MemoryUsedBytes"`
	MemoryTotalBytes uint64  `json:"MemoryTotalBytes"`
	TemperatureC     float64 `json:"TemperatureC"`
	PowerW           float64 `json:"PowerW"`
}

// EncodeGPUSample returns s as one line of GPUSamplesFile (JSON and a
// newline). hpc-guest calls it for every sample it appends; the host uses
// only complete lines, so a line being written is read on the next poll.
func EncodeGPUSample(s GPUSample) ([]byte, error) {
	b, err := json.Marshal(s)
	if err != nil {
		return nil, fmt.Errorf("encode GPU sample: %w", err)
	}
	return append(b, '\n'), nil
}

// DecodeGPUSample reads one line of GPUSamplesFile (with or without its
// newline). The host calls it for every complete line it tails; an error
// means the line is not a sample and is to be skipped.
func DecodeGPUSample(line []byte) (GPUSample, error) {
	var s GPUSample
	if err := json.Unmarshal(line, &s); err != nil {
		return GPUSample{}, fmt.Errorf("decode %s line: %w", GPUSamplesFile, err)
	}
	return s, nil
}
