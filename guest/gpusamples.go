package guest

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"vhpc/guestproto"
)

// nvidiaSMIQuery is what SampleGPUs asks nvidia-smi for, in this order.
var nvidiaSMIQuery = []string{"uuid", "pci.bus_id", "name", "utilization.gpu", "memory.used", "memory.total", "temperature.gpu", "power.draw"}

// SampleGPUs appends samples of the guest's GPUs to
// shareDir/guestproto.GPUSamplesFile every period until ctx ends. It reads
// them with nvidia-smi from the department image (argv only, no shell); a
// guest without nvidia-smi or without GPUs writes nothing and returns at
// once. hpc-guest's Init runs it next to the job; it needs no NVML
// binding, so hpc-guest stays static.
func SampleGPUs(ctx context.Context, shareDir string, period time.Duration) error {
	smi, err := exec.LookPath("nvidia-smi")
	if err != nil {
		return nil // no driver in this image: nothing to sample
	}
	f, err := os.OpenFile(filepath.Join(shareDir, guestproto.GPUSamplesFile), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
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
					if line, err := guestproto.EncodeGPUSample(s); err == nil {
						_, _ = f.Write(line)
					}
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
// header, no units) into one sample per GPU, stamped at. Values nvidia-smi
// reports as "[N/A]" stay zero; the PCI address and the product name are
// passed on as nvidia-smi wrote them (the host normalises them).
func ParseNvidiaSMI(out []byte, at time.Time) ([]guestproto.GPUSample, error) {
	var samples []guestproto.GPUSample
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
		samples = append(samples, guestproto.GPUSample{
			UUID: f[0], PCIBusID: f[1], Model: f[2], Time: at,
			UtilizationPct:   num(f[3]),
			MemoryUsedBytes:  uint64(num(f[4]) * (1 << 20)),
			MemoryTotalBytes: uint64(num(f[5]) * (1 << 20)),
			TemperatureC:     num(f[6]),
			PowerW:           num(f[7]),
		})
	}
	return samples, sc.Err()
}
