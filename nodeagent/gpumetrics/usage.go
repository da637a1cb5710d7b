package gpumetrics

import (
	"time"

	"vhpc/nodeagent/gpu"
)

// Usage is what one job used of its GPUs, for the accounting record.
type Usage struct {
	GPUHours float64 // GPU time covered by samples, summed over GPUs
	// MeanUtilizationRatio is the time-weighted mean utilisation (0-1) over
	// all the job's GPUs.
	MeanUtilizationRatio float64
	EnergyJ              float64
	Samples              int
}

// Accumulator integrates the samples of one job's GPUs over time. It is
// pure (no clock, no I/O): the agent creates one per allocation, feeds every
// sample of the allocation's GPUs (live or from the guest) with Add, and
// reads Usage when the allocation ends. Not safe for concurrent use.
//
// Between two consecutive samples of one GPU the interval counts as GPU
// time; utilisation and power are integrated with the trapezoid rule. A lost
// GPU counts as idle and drawing nothing. Samples older than or equal to the
// GPU's previous one are ignored.
type Accumulator struct {
	last    map[string]gpu.Sample
	gpuSec  float64
	utilSec float64 // ∫ utilisation ratio dt
	energyJ float64
	samples int
}

// NewAccumulator returns an empty Accumulator.
func NewAccumulator() *Accumulator {
	return &Accumulator{last: map[string]gpu.Sample{}}
}

// Add folds samples into the totals.
func (a *Accumulator) Add(samples ...gpu.Sample) {
	for _, s := range samples {
		id := idOf(s)
		prev, ok := a.last[id]
		if ok && !s.Time.After(prev.Time) {
			continue
		}
		a.last[id] = s
		a.samples++
		if !ok {
			continue
		}
		dt := s.Time.Sub(prev.Time).Seconds()
		a.gpuSec += dt
		a.utilSec += dt * (util(prev) + util(s)) / 2
		a.energyJ += dt * (power(prev) + power(s)) / 2
	}
}

func util(s gpu.Sample) float64 {
	if s.Lost {
		return 0
	}
	return s.UtilizationPct / 100
}

func power(s gpu.Sample) float64 {
	if s.Lost {
		return 0
	}
	return s.PowerW
}

// Usage returns the totals so far.
func (a *Accumulator) Usage() Usage {
	u := Usage{GPUHours: a.gpuSec / time.Hour.Seconds(), EnergyJ: a.energyJ, Samples: a.samples}
	if a.gpuSec > 0 {
		u.MeanUtilizationRatio = a.utilSec / a.gpuSec
	}
	return u
}
