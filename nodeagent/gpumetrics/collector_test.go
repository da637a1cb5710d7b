package gpumetrics

import (
	"bytes"
	"errors"
	"flag"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/prometheus/common/expfmt"

	"vhpc/nodeagent/gpu"
)

var update = flag.Bool("update", false, "rewrite testdata/*.prom golden files")

// fakeSampler is a live source with fixed answers.
type fakeSampler struct {
	mu      sync.Mutex
	samples []gpu.Sample
	err     error
}

func (f *fakeSampler) Sample() ([]gpu.Sample, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.samples, f.err
}

var t0 = time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)

// fullSample is a GPU that supports every counter.
func fullSample() gpu.Sample {
	return gpu.Sample{
		UUID: "GPU-aaaa", PCIBusID: "0000:18:00.0", Model: "H100", Time: t0,
		UtilizationPct: 87, MemoryUtilPct: 40, MemoryUsedBytes: 40 << 30, MemoryTotalBytes: 80 << 30,
		TemperatureC: 61, PowerW: 512.5, SMClockMHz: 1980, MemClockMHz: 2619, ThrottleReasons: 4,
		ECCOK: true, ECCCorrected: 3, XIDCount: 1,
		PCIeRateOK: true, PCIeTxBytesPerSec: 1 << 20, PCIeRxBytesPerSec: 2 << 20,
		PCIeCountersOK: true, PCIeTxBytes: 1 << 30, PCIeRxBytes: 3 << 30,
		NVLinkOK: true, NVLinkTxBytes: 5 << 30, NVLinkRxBytes: 6 << 30,
	}
}

// guestSample is a GPU passed through to a guest, reported by hpc-guest.
func guestSample() gpu.Sample {
	return gpu.Sample{
		UUID: "GPU-bbbb", PCIBusID: "0000:2a:00.0", Model: "H100", Time: t0,
		UtilizationPct: 100, MemoryUsedBytes: 70 << 30, MemoryTotalBytes: 80 << 30,
		TemperatureC: 70, PowerW: 690, SMClockMHz: 1755, MemClockMHz: 2619,
		ECCOK: true, ECCUncorrected: 1,
	}
}

// newTestCollector returns a collector with one live GPU, one lost live GPU,
// one GPU reported by a guest and one allocation.
func newTestCollector(t *testing.T) (*Collector, *fakeSampler, *time.Time) {
	t.Helper()
	now := t0
	live := &fakeSampler{samples: []gpu.Sample{
		fullSample(),
		{UUID: "GPU-cccc", PCIBusID: "0000:3a:00.0", Model: "H100", Time: t0, Lost: true, Err: "ERROR_GPU_IS_LOST", XIDCount: 2},
	}}
	c := New("gpu01", Options{Live: live, Now: func() time.Time { return now }})
	c.Ingest("gpu01", []gpu.Sample{guestSample()})
	c.SetAllocation("GPU-bbbb", "42", "physics")
	return c, live, &now
}

func exposition(t *testing.T, reg *prometheus.Registry) []byte {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatalf("Gather: %v", err)
	}
	var buf bytes.Buffer
	enc := expfmt.NewEncoder(&buf, expfmt.NewFormat(expfmt.TypeTextPlain))
	for _, mf := range mfs {
		if err := enc.Encode(mf); err != nil {
			t.Fatalf("encode: %v", err)
		}
	}
	return buf.Bytes()
}

func TestGoldenExposition(t *testing.T) {
	c, _, _ := newTestCollector(t)
	reg := prometheus.NewPedanticRegistry()
	reg.MustRegister(c)
	golden := filepath.Join("testdata", "collector.prom")
	if *update {
		if err := os.WriteFile(golden, exposition(t, reg), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.Open(golden)
	if err != nil {
		t.Fatalf("%v (run go test -update to create it)", err)
	}
	defer want.Close()
	if err := testutil.GatherAndCompare(reg, want); err != nil {
		t.Error(err)
	}
	if n := testutil.CollectAndCount(c, "hpc_gpu_allocation_info"); n != 1 {
		t.Errorf("allocation_info series = %d", n)
	}
}

func TestPromtoolCheckMetrics(t *testing.T) {
	promtool, err := exec.LookPath("promtool")
	if err != nil {
		promtool = "/usr/bin/promtool"
		if _, err := os.Stat(promtool); err != nil {
			if os.Getenv("VHPC_E2E") == "1" {
				t.Fatalf("promtool not found (VHPC_E2E=1 requires it; apt-get install prometheus): %v", err)
			}
			t.Skipf("promtool not installed; skipping `promtool check metrics` (install the prometheus package, or set VHPC_E2E=1 to make this fatal): %v", err)
		}
	}
	c, _, _ := newTestCollector(t)
	reg := prometheus.NewRegistry()
	reg.MustRegister(c)
	cmd := exec.Command(promtool, "check", "metrics")
	cmd.Stdin = bytes.NewReader(exposition(t, reg))
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Errorf("promtool check metrics: %v\n%s", err, out)
	}
}

func TestScrapeOverHTTP(t *testing.T) {
	c, _, _ := newTestCollector(t)
	reg := prometheus.NewRegistry()
	reg.MustRegister(c)
	mux := http.NewServeMux()
	mux.Handle("/metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{Registry: reg}))
	srv := httptest.NewServer(mux)
	defer srv.Close()

	resp, err := http.Get(srv.URL + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("status %d: %s", resp.StatusCode, body)
	}
	for _, want := range []string{
		`hpc_gpu_utilization_ratio{gpu_uuid="GPU-aaaa",model="H100",node="gpu01",pci_bus_id="0000:18:00.0"} 0.87`,
		`hpc_gpu_power_watts{gpu_uuid="GPU-bbbb",model="H100",node="gpu01",pci_bus_id="0000:2a:00.0"} 690`,
		`hpc_gpu_up{gpu_uuid="GPU-cccc",model="H100",node="gpu01",pci_bus_id="0000:3a:00.0"} 0`,
		`hpc_gpu_allocation_info{department="physics",gpu_uuid="GPU-bbbb",job="42"} 1`,
		`hpc_gpu_ecc_errors_total{gpu_uuid="GPU-bbbb",model="H100",node="gpu01",pci_bus_id="0000:2a:00.0",type="uncorrected"} 1`,
	} {
		if !strings.Contains(string(body), want) {
			t.Errorf("scrape lacks %s", want)
		}
	}
}

func TestCollectorLifecycle(t *testing.T) {
	count := func(c *Collector, name string) int { return testutil.CollectAndCount(c, name) }
	tests := []struct {
		name   string
		act    func(c *Collector, live *fakeSampler, now *time.Time)
		metric string
		want   int
	}{
		{name: "baseline", act: func(*Collector, *fakeSampler, *time.Time) {}, metric: "hpc_gpu_up", want: 3},
		{name: "stale guest samples dropped", act: func(_ *Collector, _ *fakeSampler, now *time.Time) {
			*now = now.Add(3 * time.Minute)
		}, metric: "hpc_gpu_up", want: 2},
		{name: "forget", act: func(c *Collector, _ *fakeSampler, _ *time.Time) { c.Forget("gpu01", "GPU-bbbb") }, metric: "hpc_gpu_up", want: 2},
		{name: "live wins over ingested duplicate", act: func(c *Collector, _ *fakeSampler, _ *time.Time) {
			c.Ingest("gpu01", []gpu.Sample{fullSample()})
		}, metric: "hpc_gpu_up", want: 3},
		{name: "guest on another node label", act: func(c *Collector, _ *fakeSampler, _ *time.Time) {
			s := guestSample()
			s.UUID, s.PCIBusID = "GPU-dddd", "0000:5d:00.0"
			c.Ingest("gpu02", []gpu.Sample{s})
		}, metric: "hpc_gpu_up", want: 4},
		{name: "clear allocation", act: func(c *Collector, _ *fakeSampler, _ *time.Time) { c.ClearAllocation("GPU-bbbb") }, metric: "hpc_gpu_allocation_info", want: 0},
		{name: "live source fails: guest samples still served", act: func(_ *Collector, live *fakeSampler, _ *time.Time) {
			live.samples, live.err = nil, errors.New("nvml: ERROR_UNKNOWN")
		}, metric: "hpc_gpu_up", want: 1},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c, live, now := newTestCollector(t)
			tc.act(c, live, now)
			if got := count(c, tc.metric); got != tc.want {
				t.Errorf("%s series = %d, want %d", tc.metric, got, tc.want)
			}
		})
	}

	t.Run("sample errors counted", func(t *testing.T) {
		c, live, _ := newTestCollector(t)
		live.err = errors.New("boom")
		testutil.CollectAndCount(c)
		const want = `
# HELP hpc_gpu_sample_errors_total Failed reads of the live (host NVML) GPU source.
# TYPE hpc_gpu_sample_errors_total counter
hpc_gpu_sample_errors_total{node="gpu01"} 2
`
		if err := testutil.CollectAndCompare(c, strings.NewReader(want), "hpc_gpu_sample_errors_total"); err != nil {
			t.Error(err)
		}
	})
	t.Run("no live source", func(t *testing.T) {
		c := New("laptop", Options{})
		if n := testutil.CollectAndCount(c); n != 0 {
			t.Errorf("metrics without any GPU: %d", n)
		}
	})
}
