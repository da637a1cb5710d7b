package gpubench

import (
	"fmt"
	"time"

	"github.com/NVIDIA/go-nvml/pkg/nvml"

	"vhpc/hpcbench"
)

// NVMLSource reads one GPU's SM and memory clocks, power and temperature
// through NVML (hpcbench.WithTelemetry samples it while each workload
// runs). It is matched to the CUDA device by PCI address, since NVML and
// CUDA may number GPUs differently.
type NVMLSource struct {
	lib nvml.Interface
	dev nvml.Device
}

var _ hpcbench.TelemetrySource = (*NVMLSource)(nil)

// OpenNVML loads libnvidia-ml.so.1 and finds the GPU at pciBusID
// ("0000:3b:00.0"). The error says why the run is "not sampled": no
// NVML on the host, or no GPU at that address. Close it after the run.
func OpenNVML(pciBusID string) (src *NVMLSource, err error) {
	lib := nvml.New()
	defer func() {
		if r := recover(); r != nil {
			src, err = nil, fmt.Errorf("no NVML on this host: nvml init panicked: %v", r)
		}
	}()
	if ret := lib.Init(); ret != nvml.SUCCESS {
		return nil, fmt.Errorf("no NVML on this host: %s (libnvidia-ml.so.1 from the NVIDIA driver)", ret.Error())
	}
	dev, ret := lib.DeviceGetHandleByPciBusId(pciBusID)
	if ret != nvml.SUCCESS {
		_ = lib.Shutdown()
		return nil, fmt.Errorf("NVML has no GPU at %s: %s", pciBusID, ret.Error())
	}
	return &NVMLSource{lib: lib, dev: dev}, nil
}

// Read implements hpcbench.TelemetrySource. A quantity the GPU does not
// report reads 0; only a lost GPU is an error.
func (s *NVMLSource) Read() (hpcbench.TelemetrySample, error) {
	var t hpcbench.TelemetrySample
	if c, ret := s.dev.GetClockInfo(nvml.CLOCK_SM); ret == nvml.SUCCESS {
		t.SMClockMHz = float64(c)
	} else if ret == nvml.ERROR_GPU_IS_LOST {
		return t, fmt.Errorf("NVML: %s", ret.Error())
	}
	if c, ret := s.dev.GetClockInfo(nvml.CLOCK_MEM); ret == nvml.SUCCESS {
		t.MemClockMHz = float64(c)
	}
	if p, ret := s.dev.GetPowerUsage(); ret == nvml.SUCCESS {
		t.PowerW = float64(p) / 1000
	}
	if c, ret := s.dev.GetTemperature(nvml.TEMPERATURE_GPU); ret == nvml.SUCCESS {
		t.TempC = float64(c)
	}
	return t, nil
}

// Close shuts NVML down.
func (s *NVMLSource) Close() error {
	if ret := s.lib.Shutdown(); ret != nvml.SUCCESS {
		return fmt.Errorf("nvml shutdown: %s", ret.Error())
	}
	return nil
}

// WithNVML wraps b so that NVML samples its GPU while each workload runs
// (hpcbench.WithTelemetry, every `every`); on a host without NVML each
// result says why it was not sampled. Callers (cmd/hpcbench, the node
// agent's acceptance suite) call the returned close after the run.
func WithNVML(b *Bench, every time.Duration) (hpcbench.Backend, func() error) {
	src, err := OpenNVML(b.dev.PCIBusID)
	if err != nil {
		b.opts.Log.Warn("GPU telemetry not sampled", "err", err)
		return hpcbench.WithTelemetry(b, nil, err.Error(), every), func() error { return nil }
	}
	return hpcbench.WithTelemetry(b, src, "", every), src.Close
}
