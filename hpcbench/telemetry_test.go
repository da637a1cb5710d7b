package hpcbench

import (
	"bytes"
	"context"
	"errors"
	"strings"
	"testing"
	"time"
)

// fakeSource returns its samples in turn, then repeats the last; err, if
// set, is returned instead.
type fakeSource struct {
	samples []TelemetrySample
	n       int
	err     error
}

func (f *fakeSource) Read() (TelemetrySample, error) {
	if f.err != nil {
		return TelemetrySample{}, f.err
	}
	s := f.samples[min(f.n, len(f.samples)-1)]
	f.n++
	return s, nil
}

// slowBackend takes d per workload.
type slowBackend struct{ d time.Duration }

func (slowBackend) Device() Device { return Device{Kind: "gpu", Name: "fake"} }
func (b slowBackend) Run(context.Context, Workload) Result {
	time.Sleep(b.d)
	return Result{Value: 1}
}

// TestAggregate checks min/mean/max per quantity.
func TestAggregate(t *testing.T) {
	cases := []struct {
		name    string
		samples []TelemetrySample
		want    Telemetry
	}{
		{"none", nil, Telemetry{NotSampled: "no sample was read while the workload ran"}},
		{"one", []TelemetrySample{{1980, 2619, 650, 61}}, Telemetry{Samples: 1, SMClockMHz: Stat{1980, 1980, 1980}, MemClockMHz: Stat{2619, 2619, 2619}, PowerW: Stat{650, 650, 650}, TempC: Stat{61, 61, 61}}},
		{"three", []TelemetrySample{{1980, 2619, 300, 40}, {1755, 2619, 700, 55}, {1800, 2619, 650, 70}},
			Telemetry{Samples: 3, SMClockMHz: Stat{1755, 1845, 1980}, MemClockMHz: Stat{2619, 2619, 2619}, PowerW: Stat{300, 550, 700}, TempC: Stat{40, 55, 70}}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			if got := Aggregate(tc.samples); got != tc.want {
				t.Fatalf("got %+v\nwant %+v", got, tc.want)
			}
		})
	}
}

// TestWithTelemetry samples while each workload runs, says why when there
// is no source or the source fails, and prints both in the table.
func TestWithTelemetry(t *testing.T) {
	w := []Workload{Catalog()[0]}
	src := &fakeSource{samples: []TelemetrySample{{1000, 2000, 100, 30}, {1500, 2000, 300, 50}}}
	rep := Run(context.Background(), WithTelemetry(slowBackend{30 * time.Millisecond}, src, "", time.Millisecond), w)
	tel := rep.Workloads[0].Telemetry
	if tel == nil || tel.Samples < 2 || tel.SMClockMHz.Min != 1000 || tel.SMClockMHz.Max != 1500 || tel.NotSampled != "" {
		t.Fatalf("sampled: %+v", tel)
	}
	var out bytes.Buffer
	if err := WriteTable(&out, rep); err != nil || !strings.Contains(out.String(), "NVML during each workload") || !strings.Contains(out.String(), "1000/") {
		t.Fatalf("%v\n%s", err, out.String())
	}

	rep = Run(context.Background(), WithTelemetry(slowBackend{}, nil, "no NVML on this host", 0), w)
	if tel := rep.Workloads[0].Telemetry; tel == nil || tel.NotSampled != "not sampled: no NVML on this host" {
		t.Fatalf("no source: %+v", tel)
	}
	out.Reset()
	if err := WriteTable(&out, rep); err != nil || !strings.Contains(out.String(), "NVML telemetry: not sampled: no NVML on this host") {
		t.Fatalf("%v\n%s", err, out.String())
	}

	rep = Run(context.Background(), WithTelemetry(slowBackend{}, &fakeSource{err: errors.New("GPU is lost")}, "", time.Millisecond), w)
	if tel := rep.Workloads[0].Telemetry; tel == nil || tel.NotSampled != "not sampled: GPU is lost" {
		t.Fatalf("failing source: %+v", tel)
	}
}
