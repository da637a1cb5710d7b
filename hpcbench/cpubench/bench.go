// Package cpubench runs hpcbench's workloads on CPU cores in Go: a tiled
// GEMM of our own against gonum's BLAS, STREAM, a reduction and a stencil,
// each validated against a naive reference before it is timed.
package cpubench

import (
	"context"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"runtime"

	"vhpc/hpcbench"
)

// Options of a CPU run.
type Options struct {
	// Workers is the number of goroutines (default GOMAXPROCS).
	Workers int
	Sizes   hpcbench.Sizes
	Timing  hpcbench.Timing
	// MemGBs is the memory bandwidth peak when the operator knows it
	// (nothing in /proc gives it); 0 leaves the GB/s peaks unknown.
	MemGBs float64
	Log    *slog.Logger
}

// Bench is the CPU backend of hpcbench.Run.
type Bench struct {
	opts Options
	dev  hpcbench.Device
}

// New returns a CPU backend for info's cores.
func New(info CPUInfo, opts Options) *Bench {
	if opts.Workers <= 0 {
		opts.Workers = runtime.GOMAXPROCS(0)
	}
	if opts.Log == nil {
		opts.Log = slog.New(slog.DiscardHandler)
	}
	if opts.Timing.MaxReps == 0 {
		opts.Timing = hpcbench.DefaultTiming()
	}
	return &Bench{opts: opts, dev: info.Device(opts.Workers, opts.MemGBs)}
}

// Device implements hpcbench.Backend.
func (b *Bench) Device() hpcbench.Device { return b.dev }

// Run implements hpcbench.Backend.
func (b *Bench) Run(ctx context.Context, w hpcbench.Workload) hpcbench.Result {
	b.opts.Log.Info("workload", "name", w.Name, "device", "cpu", "workers", b.opts.Workers)
	var r hpcbench.Result
	var err error
	switch w.Name {
	case hpcbench.SGEMM:
		r, err = runGemm[float32](ctx, b, w.Name, nil, gonumSgemm)
	case hpcbench.DGEMM:
		r, err = runGemm[float64](ctx, b, w.Name, nil, gonumDgemm)
	case hpcbench.TCGEMM:
		r, err = runGemm[float32](ctx, b, w.Name, roundBF16, gonumSgemm)
		r.Note = "CPU has no tensor cores: bf16-rounded inputs, FP32 multiply-add"
	case hpcbench.StreamCopy, hpcbench.StreamScale, hpcbench.StreamAdd, hpcbench.StreamTriad:
		r, err = b.stream(ctx, w.Name)
	case hpcbench.Reduce:
		r, err = b.reduce(ctx)
	case hpcbench.Stencil7:
		r, err = b.stencil(ctx)
	default:
		err = fmt.Errorf("no CPU implementation")
	}
	if err != nil {
		b.opts.Log.Error("workload failed", "name", w.Name, "err", err)
		return hpcbench.Result{Error: fmt.Sprintf("%s: %v", w.Name, err)}
	}
	return r
}

func roundBF16(x float32) float32 { return hpcbench.FromBF16(hpcbench.ToBF16(x)) }

// runGemm validates our Gemm and the vendor's at Sizes.Check against the
// naive reference, then times both at Sizes.GEMM. round, when set, rounds
// the inputs (bf16 emulation).
func runGemm[T Float](ctx context.Context, b *Bench, name string, round func(T) T, vendor func(m, n, k int, a, b, c []T)) (hpcbench.Result, error) {
	rng := rand.New(rand.NewPCG(18, 1))
	inputs := func(n int) ([]T, []T) {
		x, y := randSlice[T](rng, n*n), randSlice[T](rng, n*n)
		if round != nil {
			for i := range x {
				x[i], y[i] = round(x[i]), round(y[i])
			}
		}
		return x, y
	}
	w := b.opts.Workers
	n := b.opts.Sizes.Check
	x, y := inputs(n)
	ref := NaiveGemm(n, n, n, x, y)
	got := make([]T, n*n)
	Gemm(n, n, n, x, y, got, w)
	errOurs, err := hpcbench.MaxRelError(widen(got), ref)
	if err != nil {
		return hpcbench.Result{}, err
	}
	vendor(n, n, n, x, y, got)
	errVendor, err := hpcbench.MaxRelError(widen(got), ref)
	if err != nil {
		return hpcbench.Result{}, err
	}
	tol := hpcbench.Tolerance(name, n)

	n = b.opts.Sizes.GEMM
	if name == hpcbench.TCGEMM {
		n = b.opts.Sizes.TCGEMM
	}
	x, y = inputs(n)
	c := make([]T, n*n)
	ours, err := hpcbench.Best(ctx, b.opts.Timing, hpcbench.TimeWall(func() { Gemm(n, n, n, x, y, c, w) }))
	if err != nil {
		return hpcbench.Result{}, err
	}
	vend, err := hpcbench.Best(ctx, b.opts.Timing, hpcbench.TimeWall(func() { vendor(n, n, n, x, y, c) }))
	if err != nil {
		return hpcbench.Result{}, err
	}
	flops := 2 * float64(n) * float64(n) * float64(n)
	var zero T
	elem := float64(sizeOf(zero))
	if round != nil {
		elem = 2 // bf16 in memory on a GPU; the same traffic model here
	}
	return hpcbench.Result{
		Value: flops / ours / 1e9, Vendor: "gonum", VendorValue: flops / vend / 1e9,
		Validated: errOurs <= tol, MaxError: errOurs, Tolerance: tol, VendorMaxError: errVendor,
		Size: fmt.Sprintf("%dx%dx%d", n, n, n), Seconds: ours, VendorSeconds: vend,
		Flops: flops, Bytes: 3 * float64(n) * float64(n) * elem,
	}, nil
}

func sizeOf[T Float](T) int {
	var probe any = T(0)
	if _, ok := probe.(float32); ok {
		return 4
	}
	return 8
}

func widen[T Float](x []T) []float64 {
	out := make([]float64, len(x))
	for i, v := range x {
		out[i] = float64(v)
	}
	return out
}

// streamKind maps a workload to its kernel, bytes and flops per element.
func streamKind(name string) (op StreamOp, short string, bytes, flops float64) {
	switch name {
	case hpcbench.StreamCopy:
		return streamCopy, "copy", 16, 0
	case hpcbench.StreamScale:
		return streamScale, "scale", 16, 1
	case hpcbench.StreamAdd:
		return streamAdd, "add", 24, 1
	default:
		return streamTriad, "triad", 24, 2
	}
}

func (b *Bench) stream(ctx context.Context, name string) (hpcbench.Result, error) {
	op, short, bytes, flops := streamKind(name)
	const q = 3.0
	w := b.opts.Workers
	rng := rand.New(rand.NewPCG(18, 2))
	n := b.opts.Sizes.CheckVector
	a, bb, c := randSlice[float64](rng, n), randSlice[float64](rng, n), randSlice[float64](rng, n)
	ra, rb, rc := clone(a), clone(bb), clone(c)
	parallelFor(n, w, func(lo, hi int) { op(a, bb, c, q, lo, hi) })
	naiveStream(short, ra, rb, rc, q)
	var maxErr float64
	for _, pair := range [][2][]float64{{a, ra}, {bb, rb}, {c, rc}} {
		e, err := hpcbench.MaxRelError(pair[0], pair[1])
		if err != nil {
			return hpcbench.Result{}, err
		}
		maxErr = max(maxErr, e)
	}
	tol := hpcbench.Tolerance(name, 1)

	n = b.opts.Sizes.Vector
	a, bb, c = fill(n, 1), fill(n, 2), fill(n, 0)
	ours, err := hpcbench.Best(ctx, b.opts.Timing, hpcbench.TimeWall(func() {
		parallelFor(n, w, func(lo, hi int) { op(a, bb, c, q, lo, hi) })
	}))
	if err != nil {
		return hpcbench.Result{}, err
	}
	vend, err := hpcbench.Best(ctx, b.opts.Timing, hpcbench.TimeWall(func() {
		parallelFor(n, w, func(lo, hi int) { copy(c[lo:hi], a[lo:hi]) })
	}))
	if err != nil {
		return hpcbench.Result{}, err
	}
	total := bytes * float64(n)
	return hpcbench.Result{
		Value: total / ours / 1e9, Vendor: "Go copy (memmove)", VendorValue: 16 * float64(n) / vend / 1e9,
		Validated: maxErr <= tol, MaxError: maxErr, Tolerance: tol,
		Size: fmt.Sprintf("%d doubles", n), Seconds: ours, VendorSeconds: vend,
		Flops: flops * float64(n), Bytes: total,
	}, nil
}

func clone(x []float64) []float64 { return append([]float64(nil), x...) }

func fill(n int, v float64) []float64 {
	x := make([]float64, n)
	for i := range x {
		x[i] = v
	}
	return x
}

func (b *Bench) reduce(ctx context.Context) (hpcbench.Result, error) {
	w := b.opts.Workers
	rng := rand.New(rand.NewPCG(18, 3))
	n := b.opts.Sizes.CheckVector
	x := positive(rng, n)
	var ref float64
	for _, v := range x {
		ref += v
	}
	maxErr, err := hpcbench.MaxRelError([]float64{Sum(x, w)}, []float64{ref})
	if err != nil {
		return hpcbench.Result{}, err
	}
	vErr, _ := hpcbench.MaxRelError([]float64{gonumSum(x, w)}, []float64{ref})
	tol := hpcbench.Tolerance(hpcbench.Reduce, n)

	n = b.opts.Sizes.Vector
	x = positive(rng, n)
	var sink float64
	ours, err := hpcbench.Best(ctx, b.opts.Timing, hpcbench.TimeWall(func() { sink += Sum(x, w) }))
	if err != nil {
		return hpcbench.Result{}, err
	}
	vend, err := hpcbench.Best(ctx, b.opts.Timing, hpcbench.TimeWall(func() { sink += gonumSum(x, w) }))
	if err != nil {
		return hpcbench.Result{}, err
	}
	_ = sink
	bytes := 8 * float64(n)
	return hpcbench.Result{
		Value: bytes / ours / 1e9, Vendor: "gonum floats.Sum", VendorValue: bytes / vend / 1e9,
		Validated: maxErr <= tol, MaxError: maxErr, Tolerance: tol, VendorMaxError: vErr,
		Size: fmt.Sprintf("%d doubles", n), Seconds: ours, VendorSeconds: vend,
		Flops: float64(n), Bytes: bytes,
	}, nil
}

// positive returns n values uniform in [0, 1): a sum with no cancellation,
// so its relative error is meaningful.
func positive(rng *rand.Rand, n int) []float64 {
	x := make([]float64, n)
	for i := range x {
		x[i] = rng.Float64()
	}
	return x
}

func (b *Bench) stencil(ctx context.Context) (hpcbench.Result, error) {
	w := b.opts.Workers
	rng := rand.New(rand.NewPCG(18, 4))
	n := b.opts.Sizes.CheckGrid
	in := randSlice[float64](rng, n*n*n)
	got, ref := make([]float64, n*n*n), make([]float64, n*n*n)
	Stencil7(n, in, got, w)
	naiveStencil7(n, in, ref)
	maxErr, err := hpcbench.MaxRelError(got, ref)
	if err != nil {
		return hpcbench.Result{}, err
	}
	tol := hpcbench.Tolerance(hpcbench.Stencil7, 1)

	n = b.opts.Sizes.Grid
	in = randSlice[float64](rng, n*n*n)
	out := make([]float64, n*n*n)
	ours, err := hpcbench.Best(ctx, b.opts.Timing, hpcbench.TimeWall(func() { Stencil7(n, in, out, w) }))
	if err != nil {
		return hpcbench.Result{}, err
	}
	inner := float64(n-2) * float64(n-2) * float64(n-2)
	return hpcbench.Result{
		Value:     8 * inner / ours / 1e9,
		Validated: maxErr <= tol, MaxError: maxErr, Tolerance: tol,
		Size: fmt.Sprintf("%d^3 grid", n), Seconds: ours,
		Flops: 8 * inner, Bytes: 16 * float64(n) * float64(n) * float64(n),
	}, nil
}
