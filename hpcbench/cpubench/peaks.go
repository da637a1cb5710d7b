package cpubench

import (
	"bufio"
	"fmt"
	"io/fs"
	"strconv"
	"strings"

	"vhpc/hpcbench"
)

// CPUInfo is what the peaks are computed from: the model, the clock and the
// vector ISA, read from /proc/cpuinfo and cpufreq in FS (an fs.FS rooted at
// "/" on a real host, a fstest.MapFS in tests).
type CPUInfo struct {
	Model    string
	ClockMHz float64
	// AVX512, AVX2 and FMA are the flags that set the vector width.
	AVX512, AVX2, FMA bool
}

// ReadCPUInfo reads /proc/cpuinfo and, when present, cpufreq's
// cpuinfo_max_freq (preferred: the cpuinfo MHz line is the current clock).
func ReadCPUInfo(fsys fs.FS) (CPUInfo, error) {
	f, err := fsys.Open("proc/cpuinfo")
	if err != nil {
		return CPUInfo{}, fmt.Errorf("read cpu info: %w", err)
	}
	defer f.Close()
	var info CPUInfo
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 64*1024), 1<<20)
	for sc.Scan() {
		key, val, ok := strings.Cut(sc.Text(), ":")
		if !ok {
			continue
		}
		key, val = strings.TrimSpace(key), strings.TrimSpace(val)
		switch key {
		case "model name":
			if info.Model == "" {
				info.Model = val
			}
		case "cpu MHz":
			if mhz, err := strconv.ParseFloat(val, 64); err == nil {
				info.ClockMHz = max(info.ClockMHz, mhz)
			}
		case "flags":
			for _, fl := range strings.Fields(val) {
				switch fl {
				case "avx512f":
					info.AVX512 = true
				case "avx2":
					info.AVX2 = true
				case "fma":
					info.FMA = true
				}
			}
		}
	}
	if err := sc.Err(); err != nil {
		return CPUInfo{}, fmt.Errorf("read cpu info: %w", err)
	}
	if b, err := fs.ReadFile(fsys, "sys/devices/system/cpu/cpu0/cpufreq/cpuinfo_max_freq"); err == nil {
		if khz, err := strconv.ParseFloat(strings.TrimSpace(string(b)), 64); err == nil && khz > 0 {
			info.ClockMHz = khz / 1000
		}
	}
	return info, nil
}

// FP64PerCycle is the FP64 flops one core can retire per clock: vector
// lanes x 2 (an FMA is two flops) x 2 FMA pipes, from the ISA flags. It is a
// formula on the ISA, not a per-product table; FP32 is twice this.
func (c CPUInfo) FP64PerCycle() float64 {
	switch {
	case c.AVX512:
		return 8 * 2 * 2
	case c.AVX2 && c.FMA:
		return 4 * 2 * 2
	default:
		return 2 * 2 // SSE2: one add and one multiply of two lanes
	}
}

// Device returns the report's device for cores cores of this CPU, with the
// peaks: cores x clock x flops per cycle; memGBs is the memory peak when
// known (a flag), else 0.
func (c CPUInfo) Device(cores int, memGBs float64) hpcbench.Device {
	fp64 := float64(cores) * c.ClockMHz / 1e3 * c.FP64PerCycle()
	isa := "sse2"
	switch {
	case c.AVX512:
		isa = "avx512"
	case c.AVX2 && c.FMA:
		isa = "avx2+fma"
	}
	return hpcbench.Device{
		Kind:             "cpu",
		Name:             c.Model,
		Units:            cores,
		ClockMHz:         c.ClockMHz,
		PeakFP32GFLOPS:   2 * fp64,
		PeakFP64GFLOPS:   fp64,
		PeakTensorGFLOPS: 2 * fp64,
		PeakMemGBs:       memGBs,
		PeakNote: fmt.Sprintf("%d cores x %.0f MHz x %.0f FP64 flops/cycle (%s, 2 FMA pipes); FP32 and bf16 twice that; Go kernels are scalar, gonum's use SSE2",
			cores, c.ClockMHz, c.FP64PerCycle(), isa),
	}
}
