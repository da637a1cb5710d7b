// Package gpubench runs hpcbench's workloads on an NVIDIA GPU through
// vhpc/cuda: our kernels (compiled by NVRTC for the device) side by side
// with cuBLAS and cuMemcpyDtoD, each validated on a small size against the
// CPU reference first.
package gpubench

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"

	"vhpc/cuda"
	"vhpc/hpcbench"
)

// tcSmemBytes is tcgemm.cu's TC_SMEM_BYTES: 4 stages x 256 rows x 40 bf16.
const tcSmemBytes = 4 * 256 * 40 * 2

// Options of a GPU run.
type Options struct {
	Device int
	Sizes  hpcbench.Sizes
	Timing hpcbench.Timing
	Libs   cuda.Libraries
	Log    *slog.Logger
}

// Bench is the GPU backend of hpcbench.Run.
type Bench struct {
	opts Options
	ctx  *cuda.Context
	dev  hpcbench.Device
	fn   map[string]*cuda.Function
	mods []*cuda.Module
}

// New opens the driver, the device's primary context, and compiles the
// kernels. On a host without a driver the error wraps cuda.ErrNoDriver.
func New(opts Options) (*Bench, error) {
	if opts.Log == nil {
		opts.Log = slog.New(slog.DiscardHandler)
	}
	if opts.Timing.MaxReps == 0 {
		opts.Timing = hpcbench.DefaultTiming()
	}
	drv, err := cuda.Open(opts.Libs)
	if err != nil {
		return nil, err
	}
	if drv.CUBLASErr != nil {
		opts.Log.Warn("no cuBLAS: the vendor GEMM column stays empty", "err", drv.CUBLASErr)
	}
	c, err := drv.Context(opts.Device)
	if err != nil {
		return nil, fmt.Errorf("device %d: %w", opts.Device, err)
	}
	b := &Bench{opts: opts, ctx: c, fn: map[string]*cuda.Function{}}
	if err := b.compile(); err != nil {
		return nil, errors.Join(err, b.Close())
	}
	a := c.Attrs
	p := cuda.ComputePeaks(a)
	b.dev = hpcbench.Device{Kind: "gpu", Index: opts.Device, Name: a.Name, ComputeCapability: a.ComputeCapability,
		Units: a.SMs, ClockMHz: float64(a.ClockKHz) / 1e3, MemClockMHz: float64(a.MemClockKHz) / 1e3,
		BusWidthBits: a.BusWidthBits, MemoryBytes: a.MemoryBytes, PCIBusID: a.PCIBusID,
		Driver:         fmt.Sprintf("CUDA driver %s, NVRTC %s", a.DriverVersion, a.NVRTCVersion),
		PeakFP32GFLOPS: p.FP32GFLOPS, PeakFP64GFLOPS: p.FP64GFLOPS, PeakTensorGFLOPS: p.TensorGFLOPS, PeakMemGBs: p.MemGBs, PeakNote: p.Note}
	if a.Major >= 8 {
		// cuBLAS DGEMM runs on the FP64 tensor cores from sm_80 on; so does ours.
		b.dev.PeakNote += "; dgemm compared with the FP64 peak of the SIMT pipes (DMMA may exceed it)"
	}
	opts.Log.Info("gpu", "name", a.Name, "sm", a.ComputeCapability, "sms", a.SMs, "driver", b.dev.Driver)
	return b, nil
}

func (b *Bench) compile() error {
	if err := b.ctx.Bind(); err != nil {
		return err
	}
	defer b.ctx.Unbind()
	sets := []struct {
		file  string
		names []string
		sm80  bool
	}{
		{cuda.GemmSource, []string{"sgemm_128x128", "dgemm_simt"}, false},
		{cuda.MemorySource, []string{"stream_copy", "stream_scale", "stream_add", "stream_triad", "reduce_sum"}, false},
		{cuda.StencilSource, []string{"stencil7"}, false},
		{cuda.TCGemmSource, []string{"tcgemm_bf16_128x128"}, true},
	}
	for _, s := range sets {
		if s.sm80 && b.ctx.Attrs.Major < 8 {
			continue
		}
		src, err := cuda.Source(s.file)
		if err != nil {
			return err
		}
		m, err := b.ctx.Compile(s.file, src, "-lineinfo")
		if err != nil {
			return err
		}
		b.mods = append(b.mods, m)
		names := s.names
		if s.file == cuda.GemmSource && b.ctx.Attrs.Major >= 8 {
			names = append(names, "dgemm_dmma_64x64")
		}
		for _, n := range names {
			f, err := m.Function(n)
			if err != nil {
				return err
			}
			b.fn[n] = f
		}
	}
	if f := b.fn["tcgemm_bf16_128x128"]; f != nil {
		if err := f.SetDynamicSmem(tcSmemBytes); err != nil {
			return err
		}
	}
	return nil
}

// Close unloads the kernels and releases the context.
func (b *Bench) Close() error {
	var errs []error
	if err := b.ctx.Bind(); err != nil {
		return err
	}
	defer b.ctx.Unbind()
	for _, m := range b.mods {
		errs = append(errs, m.Close())
	}
	errs = append(errs, b.ctx.Close())
	return errors.Join(errs...)
}

// Device implements hpcbench.Backend.
func (b *Bench) Device() hpcbench.Device { return b.dev }

// Run implements hpcbench.Backend.
func (b *Bench) Run(ctx context.Context, w hpcbench.Workload) hpcbench.Result {
	b.opts.Log.Info("workload", "name", w.Name, "device", b.opts.Device)
	r, err := b.run(ctx, w)
	if err != nil {
		b.opts.Log.Error("workload failed", "name", w.Name, "err", err)
		return hpcbench.Result{Error: fmt.Sprintf("%s: %v", w.Name, err)}
	}
	return r
}

func (b *Bench) run(ctx context.Context, w hpcbench.Workload) (hpcbench.Result, error) {
	if err := b.ctx.Bind(); err != nil {
		return hpcbench.Result{}, err
	}
	defer b.ctx.Unbind()
	switch w.Name {
	case hpcbench.SGEMM:
		return b.sgemm(ctx)
	case hpcbench.DGEMM:
		return b.dgemm(ctx)
	case hpcbench.TCGEMM:
		return b.tcgemm(ctx)
	case hpcbench.StreamCopy, hpcbench.StreamScale, hpcbench.StreamAdd, hpcbench.StreamTriad:
		return b.stream(ctx, w.Name)
	case hpcbench.Reduce:
		return b.reduce(ctx)
	case hpcbench.Stencil7:
		return b.stencil(ctx)
	}
	return hpcbench.Result{}, fmt.Errorf("no GPU implementation")
}

// buffers allocates device buffers and frees them all at once.
type buffers struct {
	c   *cuda.Context
	all []cuda.Ptr
}

func (bs *buffers) alloc(bytes int) (cuda.Ptr, error) {
	p, err := bs.c.Alloc(bytes)
	if err == nil {
		bs.all = append(bs.all, p)
	}
	return p, err
}

func (bs *buffers) free() {
	for _, p := range bs.all {
		_ = bs.c.Free(p)
	}
	bs.all = nil
}

func randF64(rng *rand.Rand, n int) []float64 {
	x := make([]float64, n)
	for i := range x {
		x[i] = 2*rng.Float64() - 1
	}
	return x
}
