package cuda

import "fmt"

// Peaks are a device's theoretical throughputs.
type Peaks struct {
	FP32GFLOPS, FP64GFLOPS, TensorGFLOPS, MemGBs float64
	// Note says how they were computed.
	Note string
}

// PerSMClock is what one SM retires per clock, by compute capability: FP32
// and FP64 FMA lanes (an FMA counts two flops) and dense BF16/FP16 tensor
// flops with FP32 accumulate. It is the architecture's formula input, not a
// per-product peak.
type PerSMClock struct {
	FP32Lanes, FP64Lanes int
	TensorFlops          int
}

// PerSM returns the per-SM, per-clock rates of compute capability major.minor.
func PerSM(major, minor int) PerSMClock {
	switch {
	case major == 10:
		return PerSMClock{128, 64, 8192} // Blackwell datacenter
	case major >= 12:
		return PerSMClock{128, 2, 2048} // Blackwell consumer
	case major == 9:
		return PerSMClock{128, 64, 4096} // Hopper
	case major == 8 && minor == 0:
		return PerSMClock{64, 32, 2048} // A100
	case major == 8 && minor == 9:
		return PerSMClock{128, 2, 1024} // Ada
	case major == 8:
		return PerSMClock{128, 2, 1024} // GA10x
	case major == 7 && minor == 5:
		return PerSMClock{64, 2, 1024} // Turing
	case major == 7:
		return PerSMClock{64, 32, 1024} // Volta (FP16 only)
	case major == 6 && minor == 0:
		return PerSMClock{64, 32, 0}
	default:
		return PerSMClock{128, 4, 0}
	}
}

// ComputePeaks computes the peaks from the attributes: SMs x SM clock x
// lanes x 2 for FP32/FP64, SMs x clock x tensor flops for BF16, and
// 2 (double data rate) x memory clock x bus width / 8 for memory.
func ComputePeaks(a Attributes) Peaks {
	r := PerSM(a.Major, a.Minor)
	ghz := float64(a.ClockKHz) / 1e6
	sm := float64(a.SMs)
	return Peaks{
		FP32GFLOPS:   sm * ghz * float64(r.FP32Lanes) * 2,
		FP64GFLOPS:   sm * ghz * float64(r.FP64Lanes) * 2,
		TensorGFLOPS: sm * ghz * float64(r.TensorFlops),
		MemGBs:       2 * float64(a.MemClockKHz) * 1e3 * float64(a.BusWidthBits) / 8 / 1e9,
		Note: fmt.Sprintf("%d SMs x %.0f MHz x (fp32 %d, fp64 %d FMA lanes x 2; bf16 %d flops)/SM/clock (sm_%d%d); memory 2 x %.0f MHz x %d bits",
			a.SMs, float64(a.ClockKHz)/1e3, r.FP32Lanes, r.FP64Lanes, r.TensorFlops, a.Major, a.Minor, float64(a.MemClockKHz)/1e3, a.BusWidthBits),
	}
}
