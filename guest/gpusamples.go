package guest

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"vhpc/nodeagent/gpu"
)

// GPUSamplesFile receives one JSON gpu.Sample per line, per GPU, every
// sampling period, while the job runs in a guest that has GPUs. The agent
// reads it (GPUs passed through are invisible to host NVML), maps each
// guest GPU to the host GPU it was given, exports the samples as metrics
// and accounts the job's GPU usage.
const GPUSamplesFile = "gpu-samples.jsonl"

// nvidiaSMIQuery is what SampleGPUs asks nvidia-smi for, in this order.
var nvidiaSMIQuery = []string{"uuid", "pci.bus_id", "name", "utilization.gpu", "memory.used", "memory.total", "temperature.gpu", "power.draw"}

// SampleGPUs appends samples of the guest's GPUs to shareDir/GPUSamplesFile
// every period until ctx ends. It reads them with nvidia-smi from the
// department image (argv only, no shell); a guest without nvidia-smi or
// without GPUs writes nothing and returns at once.
func SampleGPUs(ctx context.Context, shareDir string, period time.Duration) error {
	smi, err := exec.LookPath("nvidia-smi")
	if err != nil {
		return nil // no driver in this image: nothing to sample
	}
	f, err := os.OpenFile(filepath.Join(shareDir, GPUSamplesFile), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return fmt.Errorf("gpu samples: %w", err)
	}
	defer f.Close()
	tick := time.NewTicker(period)
	defer tick.Stop()
	for {
		out, err := exec.CommandContext(ctx, smi, "--query-gpu="+strings.Join(nvidiaSMIQuery, ","), "--format=csv,noheader,nounits").Output()
		if err == nil {
			samples, perr := ParseNvidiaSMI(out, time.Now())
			if perr == nil {
				for _, s := range samples {
					b, _ := json.Marshal(s)
					_, _ = f.Write(append(b, '\n'))
				}
			}
		}
		select {
		case <-ctx.Done():
			return nil
		case <-tick.C:
		}
	}
}

// ParseNvidiaSMI reads nvidia-smi's CSV (the nvidiaSMIQuery columns, no
// header, no units). Values nvidia-smi reports as "[N/A]" stay zero.
func ParseNvidiaSMI(out []byte, at time.Time) ([]gpu.Sample, error) {
	var samples []gpu.Sample
	sc := bufio.NewScanner(bytes.NewReader(out))
	for line := 1; sc.Scan(); line++ {
		text := strings.TrimSpace(sc.Text())
		if text == "" {
			continue
		}
		f := strings.Split(text, ",")
		if len(f) != len(nvidiaSMIQuery) {
			return nil, fmt.Errorf("nvidia-smi line %d has %d fields, want %d: %q", line, len(f), len(nvidiaSMIQuery), text)
		}
		for i := range f {
			f[i] = strings.TrimSpace(f[i])
		}
		num := func(s string) float64 {
			v, err := strconv.ParseFloat(s, 64)
			if err != nil {
				return 0
			}
			return v
		}
		pci, err := gpu.NormalizePCIBusID(f[1])
		if err != nil {
			return nil, fmt.Errorf("nvidia-smi line %d: %w", line, err)
		}
		samples = append(samples, gpu.Sample{
			UUID: f[0], PCIBusID: pci, Model: gpu.ModelFromName(f[2]), Time: at,
			UtilizationPct:   num(f[3]),
			MemoryUsedBytes:  uint64(num(f[4]) * (1 << 20)),
			MemoryTotalBytes: uint64(num(f[5]) * (1 << 20)),
			TemperatureC:     num(f[6]),
			PowerW:           num(f[7]),
		})
	}
	return samples, sc.Err()
}
