package gpumetrics_test

import (
	"bufio"
	"context"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"vhpc/guest"
	"vhpc/guestproto"
	"vhpc/nodeagent/gpu"
	"vhpc/nodeagent/gpumetrics"
	"vhpc/nodeagent/inventory"
)

// TestRealGPU runs where the NVIDIA driver sees a GPU; elsewhere it is
// skipped with the reason. It checks the parts of the node agent that only
// a real GPU can exercise, end to end:
//
//   - NVML (gpu.Open) describes every GPU completely;
//   - the inventory read from the host's sysfs holds every GPU NVML
//     reports, at the same PCI address, with its UUID and model merged in;
//   - the collector, fed by real NVML and scraped over HTTP, exports each
//     GPU with its real memory size and the allocation info metric;
//   - under a CUDA load (testdata/burn, built with nvcc when it is on the
//     host) utilisation and power rise in the scraped series, and the per-job
//     usage integrated from host NVML agrees with the one integrated from
//     the samples hpc-guest takes with nvidia-smi (the path a passed-through
//     GPU's figures travel).
func TestRealGPU(t *testing.T) {
	n, err := gpu.Open(nil)
	if errors.Is(err, gpu.ErrNoNVML) {
		t.Skipf("needs a real NVIDIA GPU: %v", err)
	}
	if err != nil {
		t.Fatalf("gpu.Open: %v", err)
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
		t.Skip("needs a real NVIDIA GPU: NVML loaded but the driver sees none (all bound to vfio-pci?)")
	}
	for _, d := range devs {
		t.Logf("gpu %d: %s model=%s mem=%dMiB pci=%s mig=%v nvlink=%d peers=%v healthy=%v %s",
			d.Index, d.Name, d.Model, d.MemoryMiB, d.PCIBusID, d.MIGEnabled, d.NVLinkLinks, d.NVLinkPeers, d.Healthy, d.HealthReason)
		if d.UUID == "" || d.MemoryMiB <= 0 || d.PCIBusID == "" || d.Model == "" {
			t.Errorf("incomplete device info: %+v", d)
		}
	}
	if _, err := n.Events(10 * time.Millisecond); err != nil {
		t.Logf("XID events not available: %v", err)
	}

	t.Run("inventory from sysfs matches NVML", func(t *testing.T) {
		inv, err := inventory.Scan(inventory.Options{})
		if err != nil {
			t.Fatalf("inventory.Scan: %v", err)
		}
		inv.AddNVML(devs)
		for _, note := range inv.Notes {
			t.Logf("inventory note: %s", note)
		}
		for _, d := range devs {
			i := slices.IndexFunc(inv.GPUs, func(g inventory.GPU) bool { return g.Address == d.PCIBusID })
			if i < 0 {
				t.Errorf("NVML GPU %s at %s is not in the sysfs inventory %+v", d.UUID, d.PCIBusID, inv.GPUs)
				continue
			}
			g := inv.GPUs[i]
			t.Logf("gpu %s: %s (%s) %d MiB, NUMA %d, IOMMU group %d (%d devices), driver %s, passthrough %v %s",
				g.Address, g.Model, g.UUID, g.MemoryMiB, g.NUMA, g.IOMMUGroup, len(g.GroupMembers), g.Driver, g.Passthrough, g.Reason)
			if g.UUID != d.UUID || g.Model != d.Model || g.MemoryMiB != d.MemoryMiB {
				t.Errorf("merged GPU %+v does not carry NVML's %+v", g, d)
			}
			if g.Driver != "nvidia" {
				t.Errorf("GPU %s driver %q, want nvidia (NVML sees it)", g.Address, g.Driver)
			}
		}
		node := inv.ToNode("real")
		t.Logf("node: %d cores, %d NUMA nodes, %d GPUs", len(node.Cores), len(node.NUMA), len(node.GPUs))
		if len(node.GPUs) < len(devs) || len(node.Cores) == 0 {
			t.Errorf("node %+v lacks GPUs or cores", node)
		}
	})

	t.Run("collector exports real samples and usage follows a CUDA load", func(t *testing.T) {
		c := gpumetrics.New("real", gpumetrics.Options{Live: n})
		c.SetAllocation(devs[0].UUID, "42", "physics")
		reg := prometheus.NewPedanticRegistry()
		reg.MustRegister(c)
		srv := httptest.NewServer(promhttp.HandlerFor(reg, promhttp.HandlerOpts{Registry: reg}))
		defer srv.Close()

		burn := buildBurn(t)
		share := t.TempDir()
		ctx, stop := context.WithCancel(context.Background())
		var wg sync.WaitGroup
		var smiErr error
		wg.Go(func() { smiErr = guest.SampleGPUs(ctx, share, 250*time.Millisecond) })

		hostUsage := gpumetrics.NewAccumulator()
		var scrapes []map[string]*dto.MetricFamily
		var burnOut []byte
		var burnErr error
		burnDone := make(chan struct{})
		go func() {
			defer close(burnDone)
			if burn != "" {
				cmd := exec.Command(burn, "8")
				cmd.Env = append(os.Environ(), "CUDA_VISIBLE_DEVICES="+devs[0].UUID)
				burnOut, burnErr = cmd.CombinedOutput()
			} else {
				time.Sleep(2 * time.Second)
			}
		}()
		for done := false; !done; {
			select {
			case <-burnDone:
				done = true
			case <-time.After(250 * time.Millisecond):
			}
			samples, err := n.Sample()
			if err != nil {
				t.Fatalf("Sample: %v", err)
			}
			hostUsage.Add(onlyGPU(samples, devs[0].UUID)...)
			scrapes = append(scrapes, scrape(t, srv.URL))
		}
		stop()
		wg.Wait()
		if smiErr != nil {
			t.Errorf("guest.SampleGPUs: %v", smiErr)
		}
		if burnErr != nil {
			t.Fatalf("burn: %v\n%s", burnErr, burnOut)
		}
		t.Logf("%s", strings.TrimSpace(string(burnOut)))

		last := scrapes[len(scrapes)-1]
		for _, d := range devs {
			total := gauge(last, "hpc_gpu_memory_total_bytes", d.UUID)
			if total != float64(d.MemoryMiB)*(1<<20) {
				t.Errorf("%s: hpc_gpu_memory_total_bytes %v, NVML says %d MiB", d.UUID, total, d.MemoryMiB)
			}
			if up := gauge(last, "hpc_gpu_up", d.UUID); up != 1 {
				t.Errorf("%s: hpc_gpu_up %v", d.UUID, up)
			}
		}
		if !hasAllocation(last, devs[0].UUID, "42", "physics") {
			t.Errorf("no hpc_gpu_allocation_info for %s", devs[0].UUID)
		}

		var maxUtil, maxPower float64
		for _, s := range scrapes {
			maxUtil = max(maxUtil, gauge(s, "hpc_gpu_utilization_ratio", devs[0].UUID))
			maxPower = max(maxPower, gauge(s, "hpc_gpu_power_watts", devs[0].UUID))
		}
		host := hostUsage.Usage()
		smi := smiUsage(t, filepath.Join(share, guestproto.GPUSamplesFile), devs[0].UUID)
		t.Logf("%d scrapes: max utilisation %.2f, max power %.0f W", len(scrapes), maxUtil, maxPower)
		t.Logf("usage from host NVML:        %.5f GPU-h, mean utilisation %.2f, %.0f J, %d samples", host.GPUHours, host.MeanUtilizationRatio, host.EnergyJ, host.Samples)
		t.Logf("usage from guest nvidia-smi: %.5f GPU-h, mean utilisation %.2f, %.0f J, %d samples", smi.GPUHours, smi.MeanUtilizationRatio, smi.EnergyJ, smi.Samples)
		if maxPower <= 0 || host.EnergyJ <= 0 || host.GPUHours <= 0 {
			t.Errorf("no power or GPU time measured: max power %v, usage %+v", maxPower, host)
		}
		if smi.Samples < 4 || smi.EnergyJ <= 0 {
			t.Errorf("nvidia-smi sampling produced too little: %+v", smi)
		}
		if burn == "" {
			t.Log("nvcc not found: utilisation under load not checked")
			return
		}
		if maxUtil < 0.9 || host.MeanUtilizationRatio < 0.5 {
			t.Errorf("under load: max utilisation %.2f, mean %.2f; want >= 0.9 and >= 0.5", maxUtil, host.MeanUtilizationRatio)
		}
		if d := host.MeanUtilizationRatio - smi.MeanUtilizationRatio; d > 0.2 || d < -0.2 {
			t.Errorf("host NVML and guest nvidia-smi disagree on mean utilisation: %.2f vs %.2f", host.MeanUtilizationRatio, smi.MeanUtilizationRatio)
		}
		if r := smi.EnergyJ / host.EnergyJ; r < 0.6 || r > 1.4 {
			t.Errorf("host NVML and guest nvidia-smi disagree on energy: %.0f J vs %.0f J", host.EnergyJ, smi.EnergyJ)
		}
	})
}

// buildBurn compiles testdata/burn/burn.cu with nvcc, or returns "" when
// nvcc is not installed.
func buildBurn(t *testing.T) string {
	nvcc, err := exec.LookPath("nvcc")
	if err != nil {
		if _, serr := os.Stat("/usr/local/cuda/bin/nvcc"); serr != nil {
			return ""
		}
		nvcc = "/usr/local/cuda/bin/nvcc"
	}
	bin := filepath.Join(t.TempDir(), "burn")
	if out, err := exec.Command(nvcc, "-O3", "-o", bin, "testdata/burn/burn.cu").CombinedOutput(); err != nil {
		t.Fatalf("nvcc: %v\n%s", err, out)
	}
	return bin
}

func onlyGPU(samples []gpu.Sample, uuid string) []gpu.Sample {
	return slices.DeleteFunc(samples, func(s gpu.Sample) bool { return s.UUID != uuid })
}

func scrape(t *testing.T, url string) map[string]*dto.MetricFamily {
	resp, err := http.Get(url)
	if err != nil {
		t.Fatalf("scrape: %v", err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("scrape: %s %v", resp.Status, err)
	}
	p := expfmt.NewTextParser(model.UTF8Validation)
	families, err := p.TextToMetricFamilies(strings.NewReader(string(body)))
	if err != nil {
		t.Fatalf("parse scrape: %v\n%s", err, body)
	}
	return families
}

// gauge is the value of the series of family name whose gpu_uuid is uuid,
// or -1 when there is none.
func gauge(families map[string]*dto.MetricFamily, name, uuid string) float64 {
	f := families[name]
	if f == nil {
		return -1
	}
	for _, m := range f.GetMetric() {
		if label(m, "gpu_uuid") == uuid {
			return m.GetGauge().GetValue()
		}
	}
	return -1
}

func hasAllocation(families map[string]*dto.MetricFamily, uuid, job, department string) bool {
	f := families["hpc_gpu_allocation_info"]
	for _, m := range f.GetMetric() {
		if label(m, "gpu_uuid") == uuid && label(m, "job") == job && label(m, "department") == department {
			return m.GetGauge().GetValue() == 1
		}
	}
	return false
}

func label(m *dto.Metric, name string) string {
	for _, l := range m.GetLabel() {
		if l.GetName() == name {
			return l.GetValue()
		}
	}
	return ""
}

// smiUsage integrates the samples hpc-guest's sampler wrote for one GPU.
func smiUsage(t *testing.T, path, uuid string) gpumetrics.Usage {
	f, err := os.Open(path)
	if err != nil {
		t.Fatalf("guest samples: %v", err)
	}
	defer f.Close()
	acc := gpumetrics.NewAccumulator()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		s, err := gpumetrics.ParseGuestSample(sc.Bytes())
		if err != nil {
			t.Fatalf("guest sample %q: %v", sc.Text(), err)
		}
		if s.UUID == uuid {
			acc.Add(s)
		}
	}
	return acc.Usage()
}
