package cpubench

import (
	"sync"

	"gonum.org/v1/gonum/floats"
)

// parallelFor splits [0, n) into workers contiguous chunks and runs f on each.
func parallelFor(n, workers int, f func(lo, hi int)) {
	workers = max(1, min(workers, n))
	chunk := (n + workers - 1) / workers
	var wg sync.WaitGroup
	for lo := 0; lo < n; lo += chunk {
		hi := min(lo+chunk, n)
		wg.Go(func() { f(lo, hi) })
	}
	wg.Wait()
}

// StreamOp is one of the four STREAM kernels on (a, b, c) with scalar q.
type StreamOp func(a, b, c []float64, q float64, lo, hi int)

// The STREAM kernels, as in McCalpin's stream.c.
func streamCopy(a, _, c []float64, _ float64, lo, hi int) {
	copy(c[lo:hi], a[lo:hi])
}

func streamScale(_, b, c []float64, q float64, lo, hi int) {
	bs, cs := b[lo:hi], c[lo:hi]
	for i := range bs {
		bs[i] = q * cs[i]
	}
}

func streamAdd(a, b, c []float64, _ float64, lo, hi int) {
	as, bs, cs := a[lo:hi], b[lo:hi], c[lo:hi]
	for i := range cs {
		cs[i] = as[i] + bs[i]
	}
}

func streamTriad(a, b, c []float64, q float64, lo, hi int) {
	as, bs, cs := a[lo:hi], b[lo:hi], c[lo:hi]
	for i := range as {
		as[i] = bs[i] + q*cs[i]
	}
}

// naiveStream is the reference: the same operation element by element.
func naiveStream(name string, a, b, c []float64, q float64) {
	for i := range a {
		switch name {
		case "copy":
			c[i] = a[i]
		case "scale":
			b[i] = q * c[i]
		case "add":
			c[i] = a[i] + b[i]
		case "triad":
			a[i] = b[i] + q*c[i]
		}
	}
}

// Sum is the parallel reduction: each worker sums its chunk with four
// independent accumulators, then the partial sums are added.
func Sum(x []float64, workers int) float64 {
	workers = max(1, min(workers, len(x)))
	parts := make([]float64, workers)
	chunk := (len(x) + workers - 1) / workers
	parallelFor(len(x), workers, func(lo, hi int) {
		s := x[lo:hi]
		var s0, s1, s2, s3 float64
		i := 0
		for ; i+4 <= len(s); i += 4 {
			s0 += s[i]
			s1 += s[i+1]
			s2 += s[i+2]
			s3 += s[i+3]
		}
		for ; i < len(s); i++ {
			s0 += s[i]
		}
		parts[lo/chunk] = (s0 + s1) + (s2 + s3)
	})
	var t float64
	for _, p := range parts {
		t += p
	}
	return t
}

// gonumSum is the vendor reduction: gonum's floats.Sum (assembly) on the
// same chunks and goroutines.
func gonumSum(x []float64, workers int) float64 {
	workers = max(1, min(workers, len(x)))
	parts := make([]float64, workers)
	chunk := (len(x) + workers - 1) / workers
	parallelFor(len(x), workers, func(lo, hi int) { parts[lo/chunk] = floats.Sum(x[lo:hi]) })
	return floats.Sum(parts)
}

// Stencil coefficients of the Jacobi step: out = C0*center + C1*(6 neighbours).
const (
	StencilC0 = -6.0 / 7
	StencilC1 = 1.0 / 7
)

// Stencil7 runs one 7-point Jacobi step on an n^3 grid (x fastest): each
// interior point of out gets C0*in[p] + C1*(sum of its 6 neighbours); the
// boundary of out is left alone. Workers split the z planes.
func Stencil7(n int, in, out []float64, workers int) {
	plane := n * n
	parallelFor(n-2, workers, func(lo, hi int) {
		for z := lo + 1; z < hi+1; z++ {
			for y := 1; y < n-1; y++ {
				base := z*plane + y*n
				c := in[base : base+n]
				ym, yp := in[base-n:base], in[base+n:base+2*n]
				zm, zp := in[base-plane:base-plane+n], in[base+plane:base+plane+n]
				o := out[base : base+n]
				for x := 1; x < n-1; x++ {
					o[x] = StencilC0*c[x] + StencilC1*(((c[x-1]+c[x+1])+(ym[x]+yp[x]))+(zm[x]+zp[x]))
				}
			}
		}
	})
}

// naiveStencil7 is the reference with plain index arithmetic.
func naiveStencil7(n int, in, out []float64) {
	at := func(x, y, z int) float64 { return in[(z*n+y)*n+x] }
	for z := 1; z < n-1; z++ {
		for y := 1; y < n-1; y++ {
			for x := 1; x < n-1; x++ {
				s := at(x-1, y, z) + at(x+1, y, z) + at(x, y-1, z) + at(x, y+1, z) + at(x, y, z-1) + at(x, y, z+1)
				out[(z*n+y)*n+x] = StencilC0*at(x, y, z) + StencilC1*s
			}
		}
	}
}
