package gpumetrics

import (
	"math"
	"testing"
	"time"

	"vhpc/nodeagent/gpu"
)

func TestAccumulator(t *testing.T) {
	at := func(uuid string, sec int, utilPct, powerW float64) gpu.Sample {
		return gpu.Sample{UUID: uuid, Time: t0.Add(time.Duration(sec) * time.Second), UtilizationPct: utilPct, PowerW: powerW}
	}
	tests := []struct {
		name    string
		samples []gpu.Sample
		want    Usage
	}{
		{name: "nothing", want: Usage{}},
		{name: "one sample covers no time", samples: []gpu.Sample{at("a", 0, 100, 700)}, want: Usage{Samples: 1}},
		{
			name:    "one GPU, one hour flat out",
			samples: []gpu.Sample{at("a", 0, 100, 700), at("a", 1800, 100, 700), at("a", 3600, 100, 700)},
			want:    Usage{GPUHours: 1, MeanUtilizationRatio: 1, EnergyJ: 700 * 3600, Samples: 3},
		},
		{
			name: "two GPUs, trapezoid, interleaved",
			samples: []gpu.Sample{
				at("a", 0, 0, 100), at("b", 0, 50, 300),
				at("a", 60, 100, 500), at("b", 60, 50, 300),
			},
			// a: 60 s at mean 50 %, 300 W; b: 60 s at 50 %, 300 W.
			want: Usage{GPUHours: 120.0 / 3600, MeanUtilizationRatio: 0.5, EnergyJ: 2 * 60 * 300, Samples: 4},
		},
		{
			name:    "out of order and duplicate samples ignored",
			samples: []gpu.Sample{at("a", 0, 100, 100), at("a", 10, 100, 100), at("a", 5, 0, 0), at("a", 10, 0, 0)},
			want:    Usage{GPUHours: 10.0 / 3600, MeanUtilizationRatio: 1, EnergyJ: 1000, Samples: 2},
		},
		{
			name: "lost GPU counts as idle and dark",
			samples: []gpu.Sample{at("a", 0, 100, 400),
				{UUID: "a", Time: t0.Add(20 * time.Second), Lost: true}},
			want: Usage{GPUHours: 20.0 / 3600, MeanUtilizationRatio: 0.5, EnergyJ: 4000, Samples: 2},
		},
	}
	near := func(a, b float64) bool { return math.Abs(a-b) <= 1e-9*math.Max(1, math.Abs(b)) }
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			a := NewAccumulator()
			a.Add(tc.samples...)
			got := a.Usage()
			if !near(got.GPUHours, tc.want.GPUHours) || !near(got.MeanUtilizationRatio, tc.want.MeanUtilizationRatio) ||
				!near(got.EnergyJ, tc.want.EnergyJ) || got.Samples != tc.want.Samples {
				t.Errorf("got %+v, want %+v", got, tc.want)
			}
		})
	}
}
