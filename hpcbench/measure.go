package hpcbench

import (
	"context"
	"fmt"
	"math"
	"time"
)

// Timing says how long to measure each kernel.
type Timing struct {
	// MinTime is how long to keep repeating a kernel; at least MinReps
	// and at most MaxReps runs are timed after one untimed warm-up run.
	MinTime          time.Duration
	MinReps, MaxReps int
}

// DefaultTiming is one second of repetitions, 3 to 100 runs.
func DefaultTiming() Timing {
	return Timing{MinTime: time.Second, MinReps: 3, MaxReps: 100}
}

// Best runs once untimed, then times run repeatedly (per Timing) and returns
// the fastest run in seconds. run returns the seconds of one run (a GPU
// backend times with events; TimeWall wraps a CPU function).
func Best(ctx context.Context, t Timing, run func() (float64, error)) (float64, error) {
	if _, err := run(); err != nil {
		return 0, fmt.Errorf("warm-up: %w", err)
	}
	best := math.Inf(1)
	start := time.Now()
	for i := 0; i < max(t.MaxReps, 1); i++ {
		if err := ctx.Err(); err != nil {
			return 0, fmt.Errorf("measure: %w", err)
		}
		s, err := run()
		if err != nil {
			return 0, fmt.Errorf("run %d: %w", i, err)
		}
		best = min(best, s)
		if i+1 >= t.MinReps && time.Since(start) >= t.MinTime {
			break
		}
	}
	return best, nil
}

// TimeWall adapts a function to Best by timing it with the wall clock.
func TimeWall(f func()) func() (float64, error) {
	return func() (float64, error) {
		start := time.Now()
		f()
		return time.Since(start).Seconds(), nil
	}
}

// MaxRelError returns max|got-want| / max|want| (max|got-want| when want
// is all zero), and an error when the lengths differ.
func MaxRelError[T float32 | float64](got, want []T) (float64, error) {
	if len(got) != len(want) {
		return 0, fmt.Errorf("compare: %d values, want %d", len(got), len(want))
	}
	var maxDiff, maxRef float64
	for i := range got {
		d := math.Abs(float64(got[i]) - float64(want[i]))
		if math.IsNaN(d) {
			return math.Inf(1), nil
		}
		maxDiff = max(maxDiff, d)
		maxRef = max(maxRef, math.Abs(float64(want[i])))
	}
	if maxRef == 0 {
		return maxDiff, nil
	}
	return maxDiff / maxRef, nil
}

// Tolerance returns the validation tolerance of a workload: relative error
// allowed for its precision and reduction length k.
func Tolerance(name string, k int) float64 {
	eps32 := float64(math.Nextafter32(1, 2) - 1)
	eps64 := math.Nextafter(1, 2) - 1
	kf := math.Max(float64(k), 1)
	switch name {
	case SGEMM, TCGEMM:
		return 4 * eps32 * math.Sqrt(kf) * 8
	case DGEMM:
		return 4 * eps64 * math.Sqrt(kf) * 8
	case Reduce:
		return 4 * eps64 * math.Sqrt(kf) * 8
	default:
		return 16 * eps64
	}
}
