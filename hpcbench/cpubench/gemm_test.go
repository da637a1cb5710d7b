package cpubench

import (
	"fmt"
	"math/rand/v2"
	"runtime"
	"testing"

	"vhpc/hpcbench"
)

// TestGemmMatchesNaive checks the tiled kernel against the naive reference
// on shapes that hit every edge of the blocking.
func TestGemmMatchesNaive(t *testing.T) {
	cases := []struct {
		name    string
		m, n, k int
	}{
		{"tiny", 1, 1, 1},
		{"odd", 7, 5, 3},
		{"square128", 128, 128, 128},
		{"tall", 130, 9, 300},
		{"wide", 5, 1030, 17},
		{"deep", 66, 70, 513},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			rng := rand.New(rand.NewPCG(1, 2))
			a, b := randSlice[float64](rng, tc.m*tc.k), randSlice[float64](rng, tc.k*tc.n)
			c := make([]float64, tc.m*tc.n)
			Gemm(tc.m, tc.n, tc.k, a, b, c, 3)
			e, err := hpcbench.MaxRelError(c, NaiveGemm(tc.m, tc.n, tc.k, a, b))
			if err != nil || e > hpcbench.Tolerance(hpcbench.DGEMM, tc.k) {
				t.Fatalf("max error %g (err %v), tolerance %g", e, err, hpcbench.Tolerance(hpcbench.DGEMM, tc.k))
			}
			a32, b32 := toF32(a), toF32(b)
			c32 := make([]float32, tc.m*tc.n)
			Gemm(tc.m, tc.n, tc.k, a32, b32, c32, 2)
			e, _ = hpcbench.MaxRelError(toF64(c32), NaiveGemm(tc.m, tc.n, tc.k, a32, b32))
			if e > hpcbench.Tolerance(hpcbench.SGEMM, tc.k) {
				t.Fatalf("fp32 max error %g, tolerance %g", e, hpcbench.Tolerance(hpcbench.SGEMM, tc.k))
			}
		})
	}
}

func toF32(x []float64) []float32 {
	out := make([]float32, len(x))
	for i, v := range x {
		out[i] = float32(v)
	}
	return out
}

func toF64(x []float32) []float64 {
	out := make([]float64, len(x))
	for i, v := range x {
		out[i] = float64(v)
	}
	return out
}

// BenchmarkGemm times our kernel and gonum's on the same inputs; compare the
// two lines' ns/op (or GFLOP/s metrics) as a ratio, not as absolute numbers.
func BenchmarkGemm(b *testing.B) {
	for _, n := range []int{256, 512} {
		for _, impl := range []string{"ours", "gonum"} {
			b.Run(fmt.Sprintf("dgemm/%s/%d", impl, n), func(b *testing.B) {
				rng := rand.New(rand.NewPCG(1, 2))
				x, y := randSlice[float64](rng, n*n), randSlice[float64](rng, n*n)
				z := make([]float64, n*n)
				for b.Loop() {
					if impl == "ours" {
						Gemm(n, n, n, x, y, z, runtime.GOMAXPROCS(0))
					} else {
						gonumDgemm(n, n, n, x, y, z)
					}
				}
				b.ReportMetric(2*float64(n*n*n)*float64(b.N)/b.Elapsed().Seconds()/1e9, "GFLOP/s")
			})
			b.Run(fmt.Sprintf("sgemm/%s/%d", impl, n), func(b *testing.B) {
				rng := rand.New(rand.NewPCG(1, 2))
				x, y := randSlice[float32](rng, n*n), randSlice[float32](rng, n*n)
				z := make([]float32, n*n)
				for b.Loop() {
					if impl == "ours" {
						Gemm(n, n, n, x, y, z, runtime.GOMAXPROCS(0))
					} else {
						gonumSgemm(n, n, n, x, y, z)
					}
				}
				b.ReportMetric(2*float64(n*n*n)*float64(b.N)/b.Elapsed().Seconds()/1e9, "GFLOP/s")
			})
		}
	}
}
