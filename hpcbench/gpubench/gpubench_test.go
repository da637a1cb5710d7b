package gpubench

import (
	"context"
	"errors"
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
	rep := hpcbench.Run(context.Background(), b, hpcbench.Catalog())
	for _, r := range rep.Workloads {
		t.Run(r.Name, func(t *testing.T) {
			if r.Error != "" || !r.Validated || r.Value <= 0 {
				t.Fatalf("%+v", r)
			}
		})
	}
}
