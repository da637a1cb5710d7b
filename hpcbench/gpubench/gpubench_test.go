package gpubench

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"vhpc/cuda"
	"vhpc/hpcbench"
)

// TestNoDriver checks New reports the missing driver as cuda.ErrNoDriver.
func TestNoDriver(t *testing.T) {
	_, err := New(Options{Libs: cuda.Libraries{Driver: []string{"libcuda-missing.so.1"}}})
	if !errors.Is(err, cuda.ErrNoDriver) {
		t.Fatalf("New: %v, want ErrNoDriver", err)
	}
}

// TestGPUWorkloads runs every workload on small sizes on a real GPU.
func TestGPUWorkloads(t *testing.T) {
	sizes, _ := hpcbench.ParseSizes("small", true)
	b, err := New(Options{Sizes: sizes, Timing: hpcbench.Timing{MinTime: time.Millisecond, MinReps: 1, MaxReps: 3}})
	if errors.Is(err, cuda.ErrNoDriver) {
		t.Skip("no NVIDIA GPU: libcuda.so.1 not loadable")
	}
	if err != nil {
		t.Fatal(err)
	}
	defer func() {
		if err := b.Close(); err != nil {
			t.Error(err)
		}
	}()
	if b.Device().PCIBusID == "" {
		t.Error("device without a PCI address")
	}
	backend, closeNVML := WithNVML(b, 10*time.Millisecond)
	defer closeNVML()
	rep := hpcbench.Run(context.Background(), backend, hpcbench.Catalog())
	for _, r := range rep.Workloads {
		t.Run(r.Name, func(t *testing.T) {
			if r.Error != "" || !r.Validated || r.Value <= 0 {
				t.Fatalf("%+v", r)
			}
			if r.Telemetry == nil || (r.Telemetry.Samples == 0 && r.Telemetry.NotSampled == "") {
				t.Errorf("telemetry %+v", r.Telemetry)
			}
			t.Logf("%s: %.1f %s, NVML %+v", r.Name, r.Value, r.Unit, r.Telemetry)
		})
	}
}

// TestOpenNVMLWithoutNVML: a host without NVML gets the reason its runs
// are "not sampled", never a crash.
func TestOpenNVMLWithoutNVML(t *testing.T) {
	src, err := OpenNVML("0000:3b:00.0")
	if err == nil {
		src.Close()
		t.Skip("this host has NVML and a GPU at 0000:3b:00.0")
	}
	if !strings.Contains(err.Error(), "NVML") {
		t.Fatalf("error %q does not name NVML", err)
	}
}
