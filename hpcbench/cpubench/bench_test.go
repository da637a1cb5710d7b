package cpubench

import (
	"bytes"
	"context"
	"encoding/json"
	"strings"
	"testing"
	"testing/fstest"
	"time"

	"vhpc/hpcbench"
)

func smallBench(t *testing.T) *Bench {
	t.Helper()
	sizes, err := hpcbench.ParseSizes("small", false)
	if err != nil {
		t.Fatal(err)
	}
	info := CPUInfo{Model: "test cpu", ClockMHz: 2000, AVX2: true, FMA: true}
	return New(info, Options{Workers: 2, Sizes: sizes, MemGBs: 50,
		Timing: hpcbench.Timing{MinTime: time.Millisecond, MinReps: 1, MaxReps: 2}})
}

// TestRunAllWorkloads runs the whole catalogue on small sizes: every
// workload validates, has a positive value, and the derived fields agree.
func TestRunAllWorkloads(t *testing.T) {
	rep := hpcbench.Run(context.Background(), smallBench(t), hpcbench.Catalog())
	if len(rep.Workloads) != len(hpcbench.Catalog()) {
		t.Fatalf("%d results, want %d", len(rep.Workloads), len(hpcbench.Catalog()))
	}
	for _, r := range rep.Workloads {
		t.Run(r.Name, func(t *testing.T) {
			if r.Error != "" {
				t.Fatalf("error: %s", r.Error)
			}
			if !r.Validated {
				t.Errorf("not validated: max error %g > tolerance %g", r.MaxError, r.Tolerance)
			}
			if r.Value <= 0 || r.Seconds <= 0 || r.Size == "" || r.Unit == "" {
				t.Errorf("empty measurement: %+v", r)
			}
			if r.Peak <= 0 || r.PercentOfPeak <= 0 {
				t.Errorf("peak %g, percent %g; want both > 0 (MemGBs given)", r.Peak, r.PercentOfPeak)
			}
			if r.Name != hpcbench.Stencil7 && (r.VendorValue <= 0 || r.RatioToVendor <= 0) {
				t.Errorf("vendor %g, ratio %g; want > 0", r.VendorValue, r.RatioToVendor)
			}
			if r.Bytes <= 0 {
				t.Errorf("bytes %g; want > 0", r.Bytes)
			}
		})
	}
}

// TestJSONSchema checks the field names users and the plot rely on.
func TestJSONSchema(t *testing.T) {
	b := smallBench(t)
	ws, err := hpcbench.Select("sgemm,stream-triad")
	if err != nil {
		t.Fatal(err)
	}
	rep := hpcbench.Run(context.Background(), b, ws)
	var buf bytes.Buffer
	if err := hpcbench.WriteJSON(&buf, rep); err != nil {
		t.Fatal(err)
	}
	var raw map[string]any
	if err := json.Unmarshal(buf.Bytes(), &raw); err != nil {
		t.Fatal(err)
	}
	for _, k := range []string{"schema", "host", "device", "workloads", "started"} {
		if _, ok := raw[k]; !ok {
			t.Errorf("report has no %q", k)
		}
	}
	w0 := raw["workloads"].([]any)[0].(map[string]any)
	for _, k := range []string{"name", "unit", "value", "peak", "percent_of_peak", "vendor_value",
		"ratio_to_vendor", "validated", "max_error", "size", "seconds", "flops", "bytes", "arithmetic_intensity"} {
		if _, ok := w0[k]; !ok {
			t.Errorf("workload has no %q", k)
		}
	}
	back, err := hpcbench.ReadJSON(&buf)
	if err != nil {
		t.Fatal(err)
	}
	if back.Workloads[0].Name != hpcbench.SGEMM || back.Device.Kind != "cpu" {
		t.Fatalf("round trip: %+v", back)
	}
}

// TestTable checks the human table names every workload and the device.
func TestTable(t *testing.T) {
	ws, _ := hpcbench.Select("dgemm,reduce,stencil7")
	rep := hpcbench.Run(context.Background(), smallBench(t), ws)
	var buf bytes.Buffer
	if err := hpcbench.WriteTable(&buf, rep); err != nil {
		t.Fatal(err)
	}
	out := buf.String()
	for _, want := range []string{"test cpu", "dgemm", "reduce", "stencil7", "GFLOP/s", "GB/s", "gonum", "yes"} {
		if !strings.Contains(out, want) {
			t.Errorf("table has no %q:\n%s", want, out)
		}
	}
}

// TestReadCPUInfo reads a fake /proc and /sys.
func TestReadCPUInfo(t *testing.T) {
	cases := []struct {
		name     string
		fs       fstest.MapFS
		wantMHz  float64
		wantFP64 float64
	}{
		{"avx512 with cpufreq", fstest.MapFS{
			"proc/cpuinfo": {Data: []byte("model name\t: Fake Xeon\ncpu MHz\t\t: 1200.0\nflags\t\t: fpu sse2 avx2 fma avx512f\n")},
			"sys/devices/system/cpu/cpu0/cpufreq/cpuinfo_max_freq": {Data: []byte("3500000\n")},
		}, 3500, 32},
		{"avx2 no cpufreq", fstest.MapFS{
			"proc/cpuinfo": {Data: []byte("model name\t: Fake EPYC\ncpu MHz\t\t: 2450.5\nflags\t\t: sse2 avx2 fma\n\nmodel name\t: Fake EPYC\ncpu MHz\t\t: 2000\n")},
		}, 2450.5, 16},
		{"sse2 only", fstest.MapFS{
			"proc/cpuinfo": {Data: []byte("model name\t: Old\ncpu MHz\t: 1000\nflags\t: sse2\n")},
		}, 1000, 4},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			info, err := ReadCPUInfo(tc.fs)
			if err != nil {
				t.Fatal(err)
			}
			if info.ClockMHz != tc.wantMHz || info.FP64PerCycle() != tc.wantFP64 {
				t.Fatalf("got %+v (fp64/cycle %g), want %g MHz, %g", info, info.FP64PerCycle(), tc.wantMHz, tc.wantFP64)
			}
			d := info.Device(4, 0)
			if want := 4 * tc.wantMHz / 1e3 * tc.wantFP64; d.PeakFP64GFLOPS != want || d.PeakFP32GFLOPS != 2*want {
				t.Fatalf("peaks %g/%g, want %g", d.PeakFP64GFLOPS, d.PeakFP32GFLOPS, want)
			}
		})
	}
	if _, err := ReadCPUInfo(fstest.MapFS{}); err == nil {
		t.Fatal("no /proc/cpuinfo: want an error")
	}
}
