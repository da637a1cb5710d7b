package agent

import (
	"context"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"vhpc/api"
	"vhpc/client"
	"vhpc/nodeagent/gpu"
	"vhpc/nodeagent/gpumetrics"
	"vhpc/nodeagent/vm"
	"vhpc/scheduler/model"
	"vhpc/scheduler/server"
)

// fakeNVML is a host NVML that can be told to raise an XID on one GPU.
type fakeNVML struct {
	mu     sync.Mutex
	devs   []gpu.DeviceInfo
	events []gpu.Event
}

func (f *fakeNVML) Devices() ([]gpu.DeviceInfo, error) { return f.devs, nil }

func (f *fakeNVML) Sample() ([]gpu.Sample, error) {
	var out []gpu.Sample
	for _, d := range f.devs {
		out = append(out, gpu.Sample{UUID: d.UUID, PCIBusID: d.PCIBusID, Model: d.Model, Time: time.Now(), UtilizationPct: 50, PowerW: 300, TemperatureC: 60, MemoryTotalBytes: 80 << 30})
	}
	return out, nil
}

func (f *fakeNVML) Events(time.Duration) ([]gpu.Event, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	ev := f.events
	f.events = nil
	return ev, nil
}

func (f *fakeNVML) xid(pci string, code uint64) {
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, d := range f.devs {
		if d.PCIBusID == pci {
			f.events = append(f.events, gpu.Event{UUID: d.UUID, PCIBusID: pci, XID: code, Time: time.Now()})
		}
	}
}

// TestXIDDrainsTheGPUAndRequeuesItsJob: a GPU that raises XID 79 (fallen
// off the bus) mid-job is taken out of service at the master, its guest is
// stopped, and the job is requeued onto the other GPU; the agent's
// /metrics shows which job holds a GPU.
func TestXIDDrainsTheGPUAndRequeuesItsJob(t *testing.T) {
	m := startMaster(t)
	nv := &fakeNVML{}
	node := testNode()
	for i, pci := range []string{"0000:3b:00.0", "0000:86:00.0"} {
		uuid := "GPU-" + string(rune('a'+i))
		node.GPUs = append(node.GPUs, model.GPU{PCIAddress: pci, UUID: uuid, Model: "H100", MemoryMiB: 80 << 10})
		nv.devs = append(nv.devs, gpu.DeviceInfo{Index: i, UUID: uuid, PCIBusID: pci, Model: "H100", Healthy: true})
	}
	reg := prometheus.NewRegistry()
	col := gpumetrics.New(node.Name, gpumetrics.Options{Live: nv})
	reg.MustRegister(col)
	web := httptest.NewServer(promhttp.HandlerFor(reg, promhttp.HandlerOpts{}))
	defer web.Close()
	h := startGPUAgent(t, m, node, nv, col)

	id := h.submit("name: cuda\nretries: 1\nresources:\n  cpusPerTask: 1\n  gpus: 1\n  gpuModel: H100\ncommand: [\"true\"]\n")
	h.started()
	var used string
	h.waitFor("the job to run", func() bool {
		j := h.job(id)
		if j.GetState() != "running" || len(j.GetAllocations()) == 0 {
			return false
		}
		used = j.GetAllocations()[0].GetGpus()[0]
		return true
	})
	metrics := scrape(t, web.URL)
	if !strings.Contains(metrics, `hpc_gpu_allocation_info{department="default",gpu_uuid=`) || !strings.Contains(metrics, `job="1"`) {
		t.Errorf("/metrics lacks the allocation info of job 1:\n%s", metrics)
	}
	if !strings.Contains(metrics, "hpc_gpu_utilization_ratio") {
		t.Errorf("/metrics lacks GPU utilization")
	}

	nv.xid(used, 79)
	h.waitFor("the job to restart on the other GPU", func() bool {
		j := h.job(id)
		for _, al := range j.GetAllocations() {
			if al.GetAttempt() == 2 && len(al.GetGpus()) == 1 && al.GetGpus()[0] != used {
				return true
			}
		}
		return false
	})
	j := h.job(id)
	if j.GetAllocations()[0].GetState() != "lost" || !strings.Contains(j.GetAllocations()[0].GetReason(), "taken out of service") {
		t.Errorf("first attempt = %s (%s), want lost because its GPU was taken out of service", j.GetAllocations()[0].GetState(), j.GetAllocations()[0].GetReason())
	}
	nodes, err := h.jobs.Nodes(context.Background(), &api.NodesRequest{})
	if err != nil {
		t.Fatal(err)
	}
	for _, g := range nodes.GetNodes()[0].GetGpus() {
		if g.GetPciAddress() == used && !strings.Contains(g.GetHealth(), "79") {
			t.Errorf("GPU %s health = %q, want the XID 79 reason", used, g.GetHealth())
		}
	}
	// An admin returns it; the scheduler may use it again.
	if _, err := api.NewNodeServiceClient(clientConn(t, m)).SetGPUHealth(context.Background(), &api.GPUHealthRequest{Node: node.Name, PciAddress: used}); err != nil {
		t.Fatal(err)
	}
}

func scrape(t *testing.T, url string) string {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// startGPUAgent runs an agent with GPUs (fake runner, fake NVML) against m.
func startGPUAgent(t *testing.T, m *server.Server, node model.Node, nv *fakeNVML, col *gpumetrics.Collector) *harness {
	t.Helper()
	cl, err := client.New([]string{m.GRPCAddr()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(cl.Close)
	r := newFakeRunner(t)
	cfg := Config{
		Node: node, Client: cl, Runner: r, Logger: slog.New(slog.NewTextHandler(io.Discard, nil)),
		ResolveGPUs: func(pci []string) ([]vm.GPU, error) {
			var out []vm.GPU
			for _, p := range pci {
				out = append(out, vm.GPU{Address: p})
			}
			return out, nil
		},
		HealthInterval: 50 * time.Millisecond, Metrics: col,
	}
	if nv != nil {
		cfg.Health = nv
	}
	a, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	ctx, stop := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); _ = a.Run(ctx) }()
	t.Cleanup(func() { stop(); <-done })
	return &harness{t: t, master: m, runner: r, cl: cl, jobs: api.NewJobServiceClient(clientConn(t, m))}
}

// TestGPUUsageRecordedWithTheJob: samples the guest wrote are mapped to the
// allocation's host GPU, exported, and their integral is stored with the
// allocation when the job ends, next to the GPU time it reserved.
func TestGPUUsageRecordedWithTheJob(t *testing.T) {
	m := startMaster(t)
	node := testNode()
	node.GPUs = []model.GPU{{PCIAddress: "0000:3b:00.0", UUID: "GPU-a", Model: "H100", MemoryMiB: 80 << 10}}
	col := gpumetrics.New(node.Name, gpumetrics.Options{})
	h := startGPUAgent(t, m, node, nil, col)
	id := h.submit("name: cuda\nresources:\n  cpusPerTask: 1\n  gpus: 1\ncommand: [\"true\"]\n")
	alloc := h.started()
	h.runner.release(alloc, 0)
	h.waitFor("the job to complete", func() bool { return h.job(id).GetState() == "completed" })
	u := h.job(id).GetAllocations()[0].GetGpuUsage()
	if u.GetSamples() != 2 || u.GetMeanUtilization() < 0.49 || u.GetMeanUtilization() > 0.51 || u.GetGpuHours() <= 0 || u.GetEnergyJoules() <= 0 {
		t.Fatalf("GPU usage = %+v, want 2 samples at 50%% with some GPU time and energy", u)
	}
}

// TestMapGuestGPUs: samples follow the GPU's fixed guest address, not the
// order of the addresses in one read, so a read holding only the second
// GPU's line still maps it to the second host GPU.
func TestMapGuestGPUs(t *testing.T) {
	host := []string{"0000:3b:00.0", "0000:86:00.0"}
	cases := []struct {
		name  string
		guest []string
		want  []string
	}{
		{"whole round", []string{vm.GuestGPUAddress(0), vm.GuestGPUAddress(1)}, host},
		{"second GPU alone", []string{vm.GuestGPUAddress(1)}, host[1:]},
		{"unknown addresses dropped", []string{"0000:01:00.0", vm.GuestGPUAddress(2), vm.GuestGPUAddress(0)}, host[:1]},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			var in []gpu.Sample
			for _, g := range tc.guest {
				in = append(in, gpu.Sample{PCIBusID: g})
			}
			var got []string
			for _, s := range mapGuestGPUs(in, host) {
				got = append(got, s.PCIBusID)
			}
			if !slices.Equal(got, tc.want) {
				t.Errorf("mapped to %v, want %v", got, tc.want)
			}
		})
	}
}
