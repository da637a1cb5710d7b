package hpcbench

import (
	"math"
	"testing"
)

func TestParseSizes(t *testing.T) {
	cases := []struct {
		in      string
		gpu     bool
		want    int
		wantErr bool
	}{
		{"auto", true, 8192, false},
		{"auto", false, 1024, false},
		{"", false, 1024, false},
		{"small", true, 128, false},
		{"2048", false, 2048, false},
		{"100", false, 0, true},
		{"huge", false, 0, true},
	}
	for _, tc := range cases {
		t.Run(tc.in, func(t *testing.T) {
			s, err := ParseSizes(tc.in, tc.gpu)
			if (err != nil) != tc.wantErr {
				t.Fatalf("err %v, wantErr %v", err, tc.wantErr)
			}
			if s.GEMM != tc.want {
				t.Fatalf("GEMM %d, want %d", s.GEMM, tc.want)
			}
		})
	}
}

func TestSelect(t *testing.T) {
	cases := []struct {
		in   string
		want int
		err  bool
	}{{"", 9, false}, {"all", 9, false}, {"stream-triad, sgemm", 2, false}, {"nope", 0, true}}
	for _, tc := range cases {
		t.Run(tc.in, func(t *testing.T) {
			ws, err := Select(tc.in)
			if (err != nil) != tc.err || len(ws) != tc.want {
				t.Fatalf("got %d, %v", len(ws), err)
			}
		})
	}
	ws, _ := Select("stream-triad,sgemm")
	if ws[0].Name != SGEMM {
		t.Fatalf("not in catalogue order: %v", ws)
	}
}

func TestBF16(t *testing.T) {
	cases := []struct {
		in, want float32
	}{{1, 1}, {-2.5, -2.5}, {1 + 1.0/256, 1}, {1 + 3.0/256, 1 + 1.0/64}, {0, 0}}
	for _, tc := range cases {
		if got := FromBF16(ToBF16(tc.in)); got != tc.want {
			t.Errorf("bf16(%g) = %g, want %g", tc.in, got, tc.want)
		}
	}
}

func TestPeakForAndFinish(t *testing.T) {
	d := Device{PeakFP32GFLOPS: 100, PeakFP64GFLOPS: 50, PeakTensorGFLOPS: 400, PeakMemGBs: 20}
	cases := []struct {
		name string
		ai   float64
		want float64
	}{{SGEMM, 0, 100}, {DGEMM, 0, 50}, {TCGEMM, 0, 400}, {StreamTriad, 0, 20}, {Stencil7, 0.5, 10}}
	for _, tc := range cases {
		ws, _ := Select(tc.name)
		if got := PeakFor(d, ws[0], tc.ai); got != tc.want {
			t.Errorf("%s: %g, want %g", tc.name, got, tc.want)
		}
	}
	r := Result{Value: 10, Peak: 40, VendorValue: 20, Flops: 8, Bytes: 16}
	r.Finish()
	if r.PercentOfPeak != 25 || r.RatioToVendor != 0.5 || r.Intensity != 0.5 {
		t.Fatalf("finish: %+v", r)
	}
}

func TestMaxRelError(t *testing.T) {
	e, err := MaxRelError([]float64{1, 2.2}, []float64{1, 2})
	if err != nil || math.Abs(e-0.1) > 1e-12 {
		t.Fatalf("%g %v", e, err)
	}
	if e, _ := MaxRelError([]float32{float32(math.NaN())}, []float32{1}); !math.IsInf(e, 1) {
		t.Fatalf("NaN: %g", e)
	}
	if _, err := MaxRelError([]float64{1}, nil); err == nil {
		t.Fatal("length mismatch: want error")
	}
}
