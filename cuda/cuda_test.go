package cuda

import (
	"errors"
	"math"
	"strings"
	"testing"
)

// TestOpenMissingDriver checks a host without the driver gets the clear
// error, not a crash: with a library name that cannot exist, and with the
// real default where this host has no driver.
func TestOpenMissingDriver(t *testing.T) {
	cases := []struct {
		name string
		libs Libraries
		want error
	}{
		{"no driver", Libraries{Driver: []string{"libcuda-does-not-exist.so.1"}}, ErrNoDriver},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Open(tc.libs)
			if !errors.Is(err, tc.want) {
				t.Fatalf("Open: %v, want %v", err, tc.want)
			}
			if !strings.Contains(err.Error(), "libcuda.so.1 not found: this host has no NVIDIA driver; use --cpu") {
				t.Fatalf("message %q", err)
			}
		})
	}
	d, err := Open(Libraries{})
	if err == nil {
		t.Skipf("this host has a driver (%v); the default-path case needs a host without one", d != nil)
	}
	if !errors.Is(err, ErrNoDriver) && !errors.Is(err, ErrNoNVRTC) {
		t.Fatalf("Open on this host: %v", err)
	}
}

// TestPeaks computes peaks from attributes of a Hopper-like device.
func TestPeaks(t *testing.T) {
	cases := []struct {
		name           string
		a              Attributes
		fp32, fp64, bw float64
	}{
		{"sm_90 132 SMs", Attributes{Major: 9, SMs: 132, ClockKHz: 1980000, MemClockKHz: 2619000, BusWidthBits: 5120}, 66908, 33454, 3352},
		{"sm_80 108 SMs", Attributes{Major: 8, SMs: 108, ClockKHz: 1410000, MemClockKHz: 1593000, BusWidthBits: 5120}, 19492, 9746, 2039},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			p := ComputePeaks(tc.a)
			for _, c := range []struct{ got, want float64 }{{p.FP32GFLOPS, tc.fp32}, {p.FP64GFLOPS, tc.fp64}, {p.MemGBs, tc.bw}} {
				if math.Abs(c.got-c.want) > 1 {
					t.Errorf("got %.1f, want %.0f (%+v)", c.got, c.want, p)
				}
			}
			if p.TensorGFLOPS <= p.FP32GFLOPS {
				t.Errorf("tensor %g <= fp32 %g", p.TensorGFLOPS, p.FP32GFLOPS)
			}
		})
	}
}

// TestKernelsEmbedded checks every source is in the binary and names the
// kernels gpubench launches.
func TestKernelsEmbedded(t *testing.T) {
	cases := []struct {
		file    string
		kernels []string
	}{
		{GemmSource, []string{"sgemm_128x128", "dgemm_dmma_64x64", "dgemm_simt"}},
		{TCGemmSource, []string{"tcgemm_bf16_128x128", "mma.sync.aligned.m16n8k16", "ldmatrix"}},
		{MemorySource, []string{"stream_copy", "stream_scale", "stream_add", "stream_triad", "reduce_sum"}},
		{StencilSource, []string{"stencil7"}},
	}
	for _, tc := range cases {
		t.Run(tc.file, func(t *testing.T) {
			src, err := Source(tc.file)
			if err != nil {
				t.Fatal(err)
			}
			for _, k := range tc.kernels {
				if !strings.Contains(src, k) {
					t.Errorf("%s has no %s", tc.file, k)
				}
			}
		})
	}
}
