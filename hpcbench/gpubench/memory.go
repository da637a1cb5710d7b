package gpubench

import (
	"context"
	"fmt"
	"math/rand/v2"

	"vhpc/cuda"
	"vhpc/hpcbench"
	"vhpc/hpcbench/cpubench"
)

func (b *Bench) grid(n2 int) cuda.Dim3 {
	return cuda.Dim3{X: min((n2+255)/256, b.ctx.Attrs.SMs*32)}
}

// stream validates the kernel against the same operation on the host at
// CheckVector, then times it and cuMemcpyDtoD at Vector.
func (b *Bench) stream(ctx context.Context, name string) (hpcbench.Result, error) {
	const q = 3.0
	var bytesPer, flopsPer float64
	var launch func(n int, a, bb, c cuda.Ptr) error
	var host func(a, bb, c []float64)
	switch name {
	case hpcbench.StreamCopy:
		bytesPer, flopsPer = 16, 0
		launch = func(n int, a, _, c cuda.Ptr) error {
			return b.fn["stream_copy"].Launch(b.grid(n/2), cuda.Dim3{X: 256}, n/2, a, c)
		}
		host = func(a, _, c []float64) { copy(c, a) }
	case hpcbench.StreamScale:
		bytesPer, flopsPer = 16, 1
		launch = func(n int, _, bb, c cuda.Ptr) error {
			return b.fn["stream_scale"].Launch(b.grid(n/2), cuda.Dim3{X: 256}, n/2, q, bb, c)
		}
		host = func(_, bb, c []float64) {
			for i := range bb {
				bb[i] = q * c[i]
			}
		}
	case hpcbench.StreamAdd:
		bytesPer, flopsPer = 24, 1
		launch = func(n int, a, bb, c cuda.Ptr) error {
			return b.fn["stream_add"].Launch(b.grid(n/2), cuda.Dim3{X: 256}, n/2, a, bb, c)
		}
		host = func(a, bb, c []float64) {
			for i := range c {
				c[i] = a[i] + bb[i]
			}
		}
	default:
		bytesPer, flopsPer = 24, 2
		launch = func(n int, a, bb, c cuda.Ptr) error {
			return b.fn["stream_triad"].Launch(b.grid(n/2), cuda.Dim3{X: 256}, n/2, q, a, bb, c)
		}
		host = func(a, bb, c []float64) {
			for i := range a {
				a[i] = bb[i] + q*c[i]
			}
		}
	}
	bufs := &buffers{c: b.ctx}
	defer bufs.free()
	alloc3 := func(n int) (p [3]cuda.Ptr, err error) {
		for i := range p {
			if p[i], err = bufs.alloc(8 * n); err != nil {
				return p, err
			}
		}
		return p, nil
	}
	rng := rand.New(rand.NewPCG(18, 21))
	n := b.opts.Sizes.CheckVector
	p, err := alloc3(n)
	if err != nil {
		return hpcbench.Result{}, err
	}
	h := [3][]float64{randF64(rng, n), randF64(rng, n), randF64(rng, n)}
	for i := range p {
		if err := cuda.Upload(b.ctx, p[i], h[i]); err != nil {
			return hpcbench.Result{}, err
		}
	}
	if err := launch(n, p[0], p[1], p[2]); err != nil {
		return hpcbench.Result{}, err
	}
	host(h[0], h[1], h[2])
	var maxErr float64
	for i := range p {
		got := make([]float64, n)
		if err := cuda.Download(b.ctx, got, p[i]); err != nil {
			return hpcbench.Result{}, err
		}
		e, err := hpcbench.MaxRelError(got, h[i])
		if err != nil {
			return hpcbench.Result{}, err
		}
		maxErr = max(maxErr, e)
	}
	bufs.free()

	n = b.opts.Sizes.Vector
	if p, err = alloc3(n); err != nil {
		return hpcbench.Result{}, err
	}
	for i := range p {
		if err := b.ctx.Memset(p[i], 0, 8*n); err != nil {
			return hpcbench.Result{}, err
		}
	}
	ours, err := hpcbench.Best(ctx, b.opts.Timing, func() (float64, error) {
		return b.ctx.Time(func() error { return launch(n, p[0], p[1], p[2]) })
	})
	if err != nil {
		return hpcbench.Result{}, err
	}
	vend, err := hpcbench.Best(ctx, b.opts.Timing, func() (float64, error) {
		return b.ctx.Time(func() error { return b.ctx.CopyDtoD(p[2], p[0], 8*n) })
	})
	if err != nil {
		return hpcbench.Result{}, err
	}
	tol := hpcbench.Tolerance(name, 1)
	return hpcbench.Result{
		Value: bytesPer * float64(n) / ours / 1e9, Vendor: "cuMemcpyDtoD", VendorValue: 16 * float64(n) / vend / 1e9,
		Validated: maxErr <= tol, MaxError: maxErr, Tolerance: tol,
		Size: fmt.Sprintf("%d doubles", n), Seconds: ours, VendorSeconds: vend,
		Flops: flopsPer * float64(n), Bytes: bytesPer * float64(n),
	}, nil
}

func (b *Bench) reduce(ctx context.Context) (hpcbench.Result, error) {
	bufs := &buffers{c: b.ctx}
	defer bufs.free()
	f := b.fn["reduce_sum"]
	sum := func(n int, x, out cuda.Ptr) (float64, error) {
		if err := b.ctx.Memset(out, 0, 8); err != nil {
			return 0, err
		}
		if err := f.Launch(b.grid(n/2), cuda.Dim3{X: 256}, n/2, x, out); err != nil {
			return 0, err
		}
		got := make([]float64, 1)
		return got[0], cuda.Download(b.ctx, got, out)
	}
	rng := rand.New(rand.NewPCG(18, 22))
	n := b.opts.Sizes.CheckVector
	host := make([]float64, n)
	var ref float64
	for i := range host {
		host[i] = rng.Float64()
		ref += host[i]
	}
	x, err := bufs.alloc(8 * n)
	if err != nil {
		return hpcbench.Result{}, err
	}
	out, err := bufs.alloc(8)
	if err != nil {
		return hpcbench.Result{}, err
	}
	if err := cuda.Upload(b.ctx, x, host); err != nil {
		return hpcbench.Result{}, err
	}
	got, err := sum(n, x, out)
	if err != nil {
		return hpcbench.Result{}, err
	}
	maxErr, _ := hpcbench.MaxRelError([]float64{got}, []float64{ref})
	tol := hpcbench.Tolerance(hpcbench.Reduce, n)
	r := hpcbench.Result{Validated: maxErr <= tol, MaxError: maxErr, Tolerance: tol}
	if b.ctx.Attrs.CUBLASAvailable {
		v, err := b.ctx.Dasum(n, x)
		if err != nil {
			return hpcbench.Result{}, err
		}
		r.VendorMaxError, _ = hpcbench.MaxRelError([]float64{v}, []float64{ref})
	}
	bufs.free()

	n = b.opts.Sizes.Vector
	if x, err = bufs.alloc(8 * n); err != nil {
		return hpcbench.Result{}, err
	}
	if out, err = bufs.alloc(8); err != nil {
		return hpcbench.Result{}, err
	}
	if err := b.ctx.Memset(x, 0, 8*n); err != nil {
		return hpcbench.Result{}, err
	}
	r.Seconds, err = hpcbench.Best(ctx, b.opts.Timing, func() (float64, error) {
		return b.ctx.Time(func() error {
			if err := b.ctx.Memset(out, 0, 8); err != nil {
				return err
			}
			return f.Launch(b.grid(n/2), cuda.Dim3{X: 256}, n/2, x, out)
		})
	})
	if err != nil {
		return hpcbench.Result{}, err
	}
	bytes := 8 * float64(n)
	r.Value = bytes / r.Seconds / 1e9
	if b.ctx.Attrs.CUBLASAvailable {
		// Dasum returns its result to the host, so it is timed with its
		// own synchronisation, like a user would call it.
		if r.VendorSeconds, err = hpcbench.Best(ctx, b.opts.Timing, func() (float64, error) {
			return b.ctx.Time(func() error { _, err := b.ctx.Dasum(n, x); return err })
		}); err != nil {
			return hpcbench.Result{}, err
		}
		r.Vendor, r.VendorValue = "cublasDasum", bytes/r.VendorSeconds/1e9
	}
	r.Size, r.Flops, r.Bytes = fmt.Sprintf("%d doubles", n), float64(n), bytes
	return r, nil
}

func (b *Bench) stencil(ctx context.Context) (hpcbench.Result, error) {
	bufs := &buffers{c: b.ctx}
	defer bufs.free()
	f := b.fn["stencil7"]
	launch := func(n int, in, out cuda.Ptr) error {
		grid := cuda.Dim3{X: (n - 2 + 31) / 32, Y: (n - 2 + 7) / 8}
		return f.Launch(grid, cuda.Dim3{X: 32, Y: 8}, n, cpubench.StencilC0, cpubench.StencilC1, in, out)
	}
	rng := rand.New(rand.NewPCG(18, 23))
	n := b.opts.Sizes.CheckGrid
	host := randF64(rng, n*n*n)
	in, err := bufs.alloc(8 * n * n * n)
	if err != nil {
		return hpcbench.Result{}, err
	}
	out, err := bufs.alloc(8 * n * n * n)
	if err != nil {
		return hpcbench.Result{}, err
	}
	if err := cuda.Upload(b.ctx, in, host); err != nil {
		return hpcbench.Result{}, err
	}
	if err := b.ctx.Memset(out, 0, 8*n*n*n); err != nil {
		return hpcbench.Result{}, err
	}
	if err := launch(n, in, out); err != nil {
		return hpcbench.Result{}, err
	}
	got := make([]float64, n*n*n)
	if err := cuda.Download(b.ctx, got, out); err != nil {
		return hpcbench.Result{}, err
	}
	ref := make([]float64, n*n*n)
	cpubench.Stencil7(n, host, ref, 1)
	maxErr, err := hpcbench.MaxRelError(got, ref)
	if err != nil {
		return hpcbench.Result{}, err
	}
	bufs.free()

	n = b.opts.Sizes.Grid
	if in, err = bufs.alloc(8 * n * n * n); err != nil {
		return hpcbench.Result{}, err
	}
	if out, err = bufs.alloc(8 * n * n * n); err != nil {
		return hpcbench.Result{}, err
	}
	if err := b.ctx.Memset(in, 0, 8*n*n*n); err != nil {
		return hpcbench.Result{}, err
	}
	secs, err := hpcbench.Best(ctx, b.opts.Timing, func() (float64, error) {
		return b.ctx.Time(func() error { return launch(n, in, out) })
	})
	if err != nil {
		return hpcbench.Result{}, err
	}
	inner := float64(n-2) * float64(n-2) * float64(n-2)
	tol := hpcbench.Tolerance(hpcbench.Stencil7, 1)
	return hpcbench.Result{
		Value: 8 * inner / secs / 1e9, Validated: maxErr <= tol, MaxError: maxErr, Tolerance: tol,
		Size: fmt.Sprintf("%d^3 grid", n), Seconds: secs,
		Flops: 8 * inner, Bytes: 16 * float64(n) * float64(n) * float64(n),
	}, nil
}
