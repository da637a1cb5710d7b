package gpu

import (
	"errors"
	"testing"
	"time"
)

// TestRealNVML runs on a host with an NVIDIA driver: it enumerates the real
// GPUs and takes one real sample. Elsewhere it is skipped.
func TestRealNVML(t *testing.T) {
	n, err := Open(nil)
	if errors.Is(err, ErrNoNVML) {
		t.Skipf("%v", err) // "no NVIDIA driver/NVML on this host: ..."
	}
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	defer func() {
		if err := n.Shutdown(); err != nil {
			t.Errorf("Shutdown: %v", err)
		}
	}()
	devs, err := n.Devices()
	if err != nil {
		t.Fatalf("Devices: %v", err)
	}
	if len(devs) == 0 {
		t.Skip("NVML loaded but the driver sees no GPU (all bound to vfio-pci?)")
	}
	for _, d := range devs {
		t.Logf("gpu %d: %s model=%s mem=%dMiB pci=%s mig=%v nvlink=%d peers=%v healthy=%v %s",
			d.Index, d.Name, d.Model, d.MemoryMiB, d.PCIBusID, d.MIGEnabled, d.NVLinkLinks, d.NVLinkPeers, d.Healthy, d.HealthReason)
		if d.UUID == "" || d.MemoryMiB <= 0 || d.PCIBusID == "" || d.Model == "" {
			t.Errorf("incomplete device info: %+v", d)
		}
	}
	samples, err := n.Sample()
	if err != nil {
		t.Fatalf("Sample: %v", err)
	}
	for _, s := range samples {
		t.Logf("sample %s: util=%.0f%% mem=%d/%d temp=%.0fC power=%.1fW sm=%dMHz", s.PCIBusID, s.UtilizationPct, s.MemoryUsedBytes, s.MemoryTotalBytes, s.TemperatureC, s.PowerW, s.SMClockMHz)
		if s.Lost || s.MemoryTotalBytes == 0 {
			t.Errorf("bad sample: %+v", s)
		}
	}
	if _, err := n.Events(10 * time.Millisecond); err != nil {
		t.Logf("events not available: %v", err)
	}
}
