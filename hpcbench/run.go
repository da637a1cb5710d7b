package hpcbench

import (
	"context"
	"math"
	"os"
	"runtime"
	"time"
)

// Backend runs workloads on one device: cpubench.Bench or gpubench.Bench.
type Backend interface {
	// Device describes the device and its peaks.
	Device() Device
	// Run measures one workload; a failure is reported in Result.Error.
	Run(ctx context.Context, w Workload) Result
}

// Run measures each workload on b and returns the report.
func Run(ctx context.Context, b Backend, workloads []Workload) *Report {
	rep := &Report{Schema: Schema, Started: time.Now().UTC(), Host: ThisHost(), Device: b.Device()}
	for _, w := range workloads {
		r := b.Run(ctx, w)
		r.Name, r.Unit = w.Name, w.Unit
		if r.Error == "" {
			if r.Peak == 0 {
				r.Peak = PeakFor(rep.Device, w, intensity(r))
			}
			r.Finish()
		}
		rep.Workloads = append(rep.Workloads, r)
	}
	return rep
}

func intensity(r Result) float64 {
	if r.Bytes == 0 {
		return 0
	}
	return r.Flops / r.Bytes
}

// ThisHost describes the machine hpcbench runs on.
func ThisHost() Host {
	name, _ := os.Hostname()
	return Host{Hostname: name, OS: runtime.GOOS, Arch: runtime.GOARCH, CPUs: runtime.NumCPU(), GoVersion: runtime.Version()}
}

// PeakFor returns the peak w's value is compared with: the compute peak of
// its precision, the memory bandwidth, or for a memory-bound GFLOP/s
// workload the roofline at its intensity, min(fp64, intensity x bandwidth).
// 0 when the device does not know it.
func PeakFor(d Device, w Workload, ai float64) float64 {
	switch w.Peak {
	case "fp32":
		return d.PeakFP32GFLOPS
	case "fp64":
		return d.PeakFP64GFLOPS
	case "tensor":
		return d.PeakTensorGFLOPS
	case "mem":
		return d.PeakMemGBs
	case "mem-bound":
		if d.PeakMemGBs == 0 {
			return 0
		}
		return math.Min(d.PeakFP64GFLOPS, ai*d.PeakMemGBs)
	}
	return 0
}

// ToBF16 rounds x to the nearest bfloat16 (ties to even) and returns its bits.
func ToBF16(x float32) uint16 {
	bits := math.Float32bits(x)
	bits += 0x7fff + (bits>>16)&1
	return uint16(bits >> 16)
}

// FromBF16 widens bfloat16 bits to a float32 (exact).
func FromBF16(h uint16) float32 { return math.Float32frombits(uint32(h) << 16) }
