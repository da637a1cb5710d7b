package hpcbench

import (
	"fmt"
	"strconv"
	"strings"
)

// Workload names, shared by the CPU and GPU backends.
const (
	SGEMM       = "sgemm"
	DGEMM       = "dgemm"
	TCGEMM      = "tcgemm"
	StreamCopy  = "stream-copy"
	StreamScale = "stream-scale"
	StreamAdd   = "stream-add"
	StreamTriad = "stream-triad"
	Reduce      = "reduce"
	Stencil7    = "stencil7"
)

// Workload describes one entry of the catalogue.
type Workload struct {
	Name     string
	Unit     string
	Measures string
	// Peak names the Device peak Value is compared with.
	Peak string
}

// Catalog returns every workload in the order they run and are printed.
func Catalog() []Workload {
	return []Workload{
		{SGEMM, UnitGFLOPS, "C = A*B in FP32, square; FMA throughput of the SIMT cores through a tiled, register-blocked kernel", "fp32"},
		{DGEMM, UnitGFLOPS, "C = A*B in FP64, square; FP64 throughput (DMMA tensor cores on sm_80+)", "fp64"},
		{TCGEMM, UnitGFLOPS, "C = A*B^T, BF16 inputs, FP32 accumulate; tensor cores via mma.sync m16n8k16 + ldmatrix (CPU: bf16-rounded inputs, FP32 math)", "tensor"},
		{StreamCopy, UnitGBs, "STREAM copy c = a (FP64): memory bandwidth, 16 bytes per element", "mem"},
		{StreamScale, UnitGBs, "STREAM scale b = q*c: 16 bytes, 1 flop per element", "mem"},
		{StreamAdd, UnitGBs, "STREAM add c = a+b: 24 bytes, 1 flop per element", "mem"},
		{StreamTriad, UnitGBs, "STREAM triad a = b+q*c: 24 bytes, 2 flops per element", "mem"},
		{Reduce, UnitGBs, "sum of an FP64 vector: read bandwidth of a reduction, 8 bytes and 1 flop per element", "mem"},
		{Stencil7, UnitGFLOPS, "7-point 3D stencil (FP64, Jacobi step on an n^3 grid): 8 flops and 16 compulsory bytes per point", "mem-bound"},
	}
}

// Names returns the catalogue's names.
func Names() []string {
	var out []string
	for _, w := range Catalog() {
		out = append(out, w.Name)
	}
	return out
}

// Select returns the catalogue entries named in list (comma-separated;
// empty or "all" means every one), in catalogue order.
func Select(list string) ([]Workload, error) {
	all := Catalog()
	if list == "" || list == "all" {
		return all, nil
	}
	want := map[string]bool{}
	for _, n := range strings.Split(list, ",") {
		n = strings.TrimSpace(n)
		found := false
		for _, w := range all {
			if w.Name == n {
				found = true
			}
		}
		if !found {
			return nil, fmt.Errorf("unknown workload %q (have %s)", n, strings.Join(Names(), ", "))
		}
		want[n] = true
	}
	var out []Workload
	for _, w := range all {
		if want[w.Name] {
			out = append(out, w)
		}
	}
	return out, nil
}

// Sizes are the problem sizes of one run. GEMM sizes must be multiples of
// 128 (the GPU kernels' tile); vectors of 1024; the stencil grid of 8.
type Sizes struct {
	// GEMM is M = N = K of the timed GEMMs; TCGEMM of the tensor-core one.
	GEMM, TCGEMM int
	// Vector is the element count of each STREAM/reduction vector.
	Vector int
	// Grid is the stencil's edge (Grid^3 points).
	Grid int
	// Check is the GEMM size validated against the naive reference;
	// CheckVector and CheckGrid the same for the other workloads.
	Check, CheckVector, CheckGrid int
}

// preset returns the named preset size and whether it exists.
func preset(name string) (Sizes, bool) {
	switch name {
	case "small":
		return Sizes{GEMM: 128, TCGEMM: 128, Vector: 1 << 16, Grid: 32, Check: 128, CheckVector: 1 << 12, CheckGrid: 16}, true
	case "medium":
		return Sizes{GEMM: 1024, TCGEMM: 1024, Vector: 1 << 24, Grid: 128, Check: 256, CheckVector: 1 << 16, CheckGrid: 32}, true
	case "large":
		return Sizes{GEMM: 8192, TCGEMM: 8192, Vector: 1 << 28, Grid: 512, Check: 256, CheckVector: 1 << 20, CheckGrid: 64}, true
	}
	return Sizes{}, false
}

// ParseSizes turns --size into Sizes: "small", "medium", "large", "auto"
// (large on a GPU, medium on a CPU) or a GEMM edge N (a multiple of 128;
// the other sizes follow the preset closest to it).
func ParseSizes(s string, gpu bool) (Sizes, error) {
	switch s {
	case "", "auto":
		if gpu {
			s = "large"
		} else {
			s = "medium"
		}
	}
	if p, ok := preset(s); ok {
		return p, nil
	}
	n, err := strconv.Atoi(s)
	if err != nil || n <= 0 || n%128 != 0 {
		return Sizes{}, fmt.Errorf("--size %q: want auto, small, medium, large or a positive multiple of 128", s)
	}
	name := "small"
	switch {
	case n >= 4096:
		name = "large"
	case n >= 512:
		name = "medium"
	}
	base, _ := preset(name)
	base.GEMM, base.TCGEMM = n, n
	return base, nil
}
