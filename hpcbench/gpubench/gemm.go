package gpubench

import (
	"context"
	"fmt"
	"math/rand/v2"

	"vhpc/cuda"
	"vhpc/hpcbench"
	"vhpc/hpcbench/cpubench"
)

// gemmSpec is one GEMM workload: how to make and upload inputs of edge n,
// the naive reference on them, our launch and the vendor's, and how to read
// the output back.
type gemmSpec struct {
	name              string
	inBytes, outBytes int
	// inputs uploads random A and B of edge n and returns the reference
	// product (computed only when ref is true).
	inputs   func(n int, a, b cuda.Ptr, ref bool) ([]float64, error)
	ours     func(n int, a, b, c cuda.Ptr) error
	vendor   func(n int, a, b, c cuda.Ptr) error
	download func(c cuda.Ptr, count int) ([]float64, error)
}

func (b *Bench) runGemm(ctx context.Context, g gemmSpec, n int) (hpcbench.Result, error) {
	bufs := &buffers{c: b.ctx}
	defer bufs.free()
	check := b.opts.Sizes.Check
	validate := func(launch func(n int, a, b, c cuda.Ptr) error) (float64, error) {
		pa, err := bufs.alloc(check * check * g.inBytes)
		if err != nil {
			return 0, err
		}
		pb, err := bufs.alloc(check * check * g.inBytes)
		if err != nil {
			return 0, err
		}
		pc, err := bufs.alloc(check * check * g.outBytes)
		if err != nil {
			return 0, err
		}
		ref, err := g.inputs(check, pa, pb, true)
		if err != nil {
			return 0, err
		}
		if err := launch(check, pa, pb, pc); err != nil {
			return 0, err
		}
		got, err := g.download(pc, check*check)
		if err != nil {
			return 0, err
		}
		return hpcbench.MaxRelError(got, ref)
	}
	errOurs, err := validate(g.ours)
	if err != nil {
		return hpcbench.Result{}, fmt.Errorf("validate: %w", err)
	}
	r := hpcbench.Result{MaxError: errOurs, Tolerance: hpcbench.Tolerance(g.name, check)}
	r.Validated = errOurs <= r.Tolerance
	if b.ctx.Attrs.CUBLASAvailable {
		if r.VendorMaxError, err = validate(g.vendor); err != nil {
			return hpcbench.Result{}, fmt.Errorf("validate cuBLAS: %w", err)
		}
	}
	bufs.free()

	pa, err := bufs.alloc(n * n * g.inBytes)
	if err != nil {
		return hpcbench.Result{}, err
	}
	pb, err := bufs.alloc(n * n * g.inBytes)
	if err != nil {
		return hpcbench.Result{}, err
	}
	pc, err := bufs.alloc(n * n * g.outBytes)
	if err != nil {
		return hpcbench.Result{}, err
	}
	if _, err := g.inputs(n, pa, pb, false); err != nil {
		return hpcbench.Result{}, err
	}
	flops := 2 * float64(n) * float64(n) * float64(n)
	r.Seconds, err = hpcbench.Best(ctx, b.opts.Timing, func() (float64, error) {
		return b.ctx.Time(func() error { return g.ours(n, pa, pb, pc) })
	})
	if err != nil {
		return hpcbench.Result{}, err
	}
	r.Value = flops / r.Seconds / 1e9
	if b.ctx.Attrs.CUBLASAvailable {
		r.VendorSeconds, err = hpcbench.Best(ctx, b.opts.Timing, func() (float64, error) {
			return b.ctx.Time(func() error { return g.vendor(n, pa, pb, pc) })
		})
		if err != nil {
			return hpcbench.Result{}, err
		}
		r.Vendor, r.VendorValue = "cuBLAS", flops/r.VendorSeconds/1e9
	} else {
		r.Note = b.ctx.Attrs.CUBLASUnavailable
	}
	r.Size = fmt.Sprintf("%dx%dx%d", n, n, n)
	r.Flops = flops
	r.Bytes = float64(n) * float64(n) * float64(2*g.inBytes+g.outBytes)
	return r, nil
}

func tiles(n, t int) cuda.Dim3 { return cuda.Dim3{X: n / t, Y: n / t, Z: 1} }

func (b *Bench) sgemm(ctx context.Context) (hpcbench.Result, error) {
	rng := rand.New(rand.NewPCG(18, 11))
	f := b.fn["sgemm_128x128"]
	return b.runGemm(ctx, gemmSpec{
		name: hpcbench.SGEMM, inBytes: 4, outBytes: 4,
		inputs: func(n int, pa, pb cuda.Ptr, ref bool) ([]float64, error) {
			x, y := f32(randF64(rng, n*n)), f32(randF64(rng, n*n))
			if err := upload2(b.ctx, pa, x, pb, y); err != nil {
				return nil, err
			}
			if !ref {
				return nil, nil
			}
			return cpubench.NaiveGemm(n, n, n, x, y), nil
		},
		ours: func(n int, pa, pb, pc cuda.Ptr) error {
			return f.Launch(tiles(n, 128), cuda.Dim3{X: 256}, n, n, n, pa, pb, pc)
		},
		vendor: func(n int, pa, pb, pc cuda.Ptr) error { return b.ctx.Sgemm(n, n, n, pa, pb, pc) },
		download: func(p cuda.Ptr, count int) ([]float64, error) {
			out := make([]float32, count)
			err := cuda.Download(b.ctx, out, p)
			return widen(out), err
		},
	}, b.opts.Sizes.GEMM)
}

func (b *Bench) dgemm(ctx context.Context) (hpcbench.Result, error) {
	rng := rand.New(rand.NewPCG(18, 12))
	ours := func(n int, pa, pb, pc cuda.Ptr) error {
		return b.fn["dgemm_simt"].Launch(tiles(n, 16), cuda.Dim3{X: 16, Y: 16}, n, n, n, pa, pb, pc)
	}
	if f := b.fn["dgemm_dmma_64x64"]; f != nil {
		ours = func(n int, pa, pb, pc cuda.Ptr) error {
			return f.Launch(tiles(n, 64), cuda.Dim3{X: 128}, n, n, n, pa, pb, pc)
		}
	}
	return b.runGemm(ctx, gemmSpec{
		name: hpcbench.DGEMM, inBytes: 8, outBytes: 8,
		inputs: func(n int, pa, pb cuda.Ptr, ref bool) ([]float64, error) {
			x, y := randF64(rng, n*n), randF64(rng, n*n)
			if err := upload2(b.ctx, pa, x, pb, y); err != nil {
				return nil, err
			}
			if !ref {
				return nil, nil
			}
			return cpubench.NaiveGemm(n, n, n, x, y), nil
		},
		ours:   ours,
		vendor: func(n int, pa, pb, pc cuda.Ptr) error { return b.ctx.Dgemm(n, n, n, pa, pb, pc) },
		download: func(p cuda.Ptr, count int) ([]float64, error) {
			out := make([]float64, count)
			return out, cuda.Download(b.ctx, out, p)
		},
	}, b.opts.Sizes.GEMM)
}

func (b *Bench) tcgemm(ctx context.Context) (hpcbench.Result, error) {
	f := b.fn["tcgemm_bf16_128x128"]
	if f == nil {
		return hpcbench.Result{}, fmt.Errorf("the BF16 tensor-core GEMM needs sm_80 or newer, this is sm_%s", b.ctx.Attrs.ComputeCapability)
	}
	rng := rand.New(rand.NewPCG(18, 13))
	return b.runGemm(ctx, gemmSpec{
		name: hpcbench.TCGEMM, inBytes: 2, outBytes: 4,
		inputs: func(n int, pa, pb cuda.Ptr, ref bool) ([]float64, error) {
			x, yt := bf16(randF64(rng, n*n)), bf16(randF64(rng, n*n))
			if err := upload2(b.ctx, pa, x, pb, yt); err != nil {
				return nil, err
			}
			if !ref {
				return nil, nil
			}
			// Reference: A * Bt^T on the exact bf16 values.
			xa, yb := make([]float32, n*n), make([]float32, n*n)
			for i := range n {
				for j := range n {
					xa[i*n+j] = hpcbench.FromBF16(x[i*n+j])
					yb[j*n+i] = hpcbench.FromBF16(yt[i*n+j]) // B[k][n] = Bt[n][k]
				}
			}
			return cpubench.NaiveGemm(n, n, n, xa, yb), nil
		},
		ours: func(n int, pa, pb, pc cuda.Ptr) error {
			return f.Launch(tiles(n, 128), cuda.Dim3{X: 256}, n, n, n, pa, pb, pc)
		},
		vendor: func(n int, pa, pb, pc cuda.Ptr) error { return b.ctx.GemmBF16(n, n, n, pa, pb, pc) },
		download: func(p cuda.Ptr, count int) ([]float64, error) {
			out := make([]float32, count)
			err := cuda.Download(b.ctx, out, p)
			return widen(out), err
		},
	}, b.opts.Sizes.TCGEMM)
}

func upload2[T any](c *cuda.Context, pa cuda.Ptr, a []T, pb cuda.Ptr, b []T) error {
	if err := cuda.Upload(c, pa, a); err != nil {
		return err
	}
	return cuda.Upload(c, pb, b)
}

func f32(x []float64) []float32 {
	out := make([]float32, len(x))
	for i, v := range x {
		out[i] = float32(v)
	}
	return out
}

func bf16(x []float64) []uint16 {
	out := make([]uint16, len(x))
	for i, v := range x {
		out[i] = hpcbench.ToBF16(float32(v))
	}
	return out
}

func widen(x []float32) []float64 {
	out := make([]float64, len(x))
	for i, v := range x {
		out[i] = float64(v)
	}
	return out
}
