package hpcbench

import (
	"context"
	"fmt"
	"sync"
	"time"
)

// TelemetrySample is one reading of a GPU's clocks, power and temperature.
type TelemetrySample struct {
	SMClockMHz, MemClockMHz, PowerW, TempC float64
}

// TelemetrySource reads the GPU a run measures: gpubench's NVML source on
// a real host, a fake in tests. Read is called from one goroutine at a
// time.
type TelemetrySource interface {
	Read() (TelemetrySample, error)
}

// DefaultSampleEvery is how often WithTelemetry reads its source.
const DefaultSampleEvery = 100 * time.Millisecond

// Aggregate returns the min/mean/max of samples (Samples 0 and NotSampled
// set when there are none).
func Aggregate(samples []TelemetrySample) Telemetry {
	if len(samples) == 0 {
		return Telemetry{NotSampled: "no sample was read while the workload ran"}
	}
	t := Telemetry{Samples: len(samples)}
	fields := []struct {
		dst *Stat
		get func(TelemetrySample) float64
	}{
		{&t.SMClockMHz, func(s TelemetrySample) float64 { return s.SMClockMHz }},
		{&t.MemClockMHz, func(s TelemetrySample) float64 { return s.MemClockMHz }},
		{&t.PowerW, func(s TelemetrySample) float64 { return s.PowerW }},
		{&t.TempC, func(s TelemetrySample) float64 { return s.TempC }},
	}
	for _, f := range fields {
		first := f.get(samples[0])
		st := Stat{Min: first, Max: first}
		var sum float64
		for _, s := range samples {
			v := f.get(s)
			st.Min, st.Max = min(st.Min, v), max(st.Max, v)
			sum += v
		}
		st.Mean = sum / float64(len(samples))
		*f.dst = st
	}
	return t
}

// WithTelemetry wraps b so that src is read every `every` (at least once,
// at the start) while each workload runs, and the min/mean/max go into
// Result.Telemetry. A nil src with a reason (no NVML) marks every result
// "not sampled: reason" instead. Sampling errors end sampling for that
// workload; the error is kept in NotSampled when nothing was read.
func WithTelemetry(b Backend, src TelemetrySource, notSampled string, every time.Duration) Backend {
	if every <= 0 {
		every = DefaultSampleEvery
	}
	return &telemetered{Backend: b, src: src, why: notSampled, every: every}
}

type telemetered struct {
	Backend
	src   TelemetrySource
	why   string
	every time.Duration
}

// Run implements Backend.
func (t *telemetered) Run(ctx context.Context, w Workload) Result {
	if t.src == nil {
		r := t.Backend.Run(ctx, w)
		r.Telemetry = &Telemetry{NotSampled: "not sampled: " + t.why}
		return r
	}
	var (
		mu      sync.Mutex
		samples []TelemetrySample
		readErr error
	)
	done := make(chan struct{})
	stopped := make(chan struct{})
	go func() {
		defer close(stopped)
		tick := time.NewTicker(t.every)
		defer tick.Stop()
		for {
			s, err := t.src.Read()
			mu.Lock()
			if err != nil {
				readErr = err
				mu.Unlock()
				return
			}
			samples = append(samples, s)
			mu.Unlock()
			select {
			case <-done:
				return
			case <-tick.C:
			}
		}
	}()
	r := t.Backend.Run(ctx, w)
	close(done)
	<-stopped
	tel := Aggregate(samples)
	if tel.Samples == 0 && readErr != nil {
		tel.NotSampled = fmt.Sprintf("not sampled: %v", readErr)
	}
	r.Telemetry = &tel
	return r
}
