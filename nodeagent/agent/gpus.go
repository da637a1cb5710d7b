package agent

import (
	"bytes"
	"context"
	"io"
	"os"
	"time"

	"google.golang.org/grpc"

	"vhpc/api"
	"vhpc/client"
	"vhpc/nodeagent/gpu"
	"vhpc/nodeagent/gpumetrics"
	"vhpc/nodeagent/vm"
)

// HealthSource is what the agent's GPU health check reads (host NVML; a
// fake in tests). GPUs passed through to guests are invisible to it.
type HealthSource interface {
	Devices() ([]gpu.DeviceInfo, error)
	Sample() ([]gpu.Sample, error)
	Events(timeout time.Duration) ([]gpu.Event, error)
}

var _ HealthSource = (*gpu.NVML)(nil)

// healthLoop checks the host-visible GPUs every interval and takes the
// ones that fail (critical XID, uncorrectable ECC, lost from the bus) out
// of service at the master, which stops and requeues the job using them.
// Each (GPU, reason) is reported once.
func (a *Agent) healthLoop(ctx context.Context) {
	src := a.cfg.Health
	interval := a.cfg.HealthInterval
	if interval <= 0 {
		interval = 10 * time.Second
	}
	reported := map[string]string{}
	tick := time.NewTicker(interval)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
		devs, err := src.Devices()
		if err != nil {
			a.log.Warn("GPU health: list devices", "err", err)
			continue
		}
		samples, err := src.Sample()
		if err != nil {
			a.log.Warn("GPU health: sample", "err", err)
		}
		events, err := src.Events(0)
		if err != nil {
			a.log.Warn("GPU health: events", "err", err)
		}
		for _, d := range gpu.EvaluateHealth(devs, samples, events) {
			reason := "health check: " + d.Reason
			if reported[d.PCIBusID] == reason {
				continue
			}
			err := a.cfg.Client.Do(ctx, func(ctx context.Context, conn *grpc.ClientConn) error {
				_, err := client.Nodes(conn).SetGPUHealth(ctx, &api.GPUHealthRequest{Node: a.cfg.Node.Name, PciAddress: d.PCIBusID, Reason: reason})
				return err
			})
			if err != nil {
				a.log.Error("report unhealthy GPU", "gpu", d.PCIBusID, "reason", d.Reason, "err", err)
				continue
			}
			a.log.Error("GPU taken out of service", "gpu", d.PCIBusID, "uuid", d.UUID, "reason", d.Reason)
			reported[d.PCIBusID] = reason
		}
	}
}

// gpuUUIDs maps the PCI addresses of an allocation to GPU UUIDs, for the
// metrics' allocation info.
func (a *Agent) gpuUUIDs(pci []string) []string {
	var out []string
	for _, p := range pci {
		for _, g := range a.cfg.Node.GPUs {
			if g.PCIAddress == p && g.UUID != "" {
				out = append(out, g.UUID)
			}
		}
	}
	return out
}

// followGPUSamples reads what the guest appends to its GPU samples file
// while the allocation runs, maps each guest GPU to the host GPU it was
// given, and feeds the metrics and the job's usage accumulator. Guest GPUs
// are matched to the allocation's GPUs by their fixed guest address
// (vm.GuestGPUIndex), so a read that catches only part of a sampling
// round still maps every sample to the right GPU.
func (a *Agent) followGPUSamples(ctx context.Context, al *api.Allocation, acc *gpumetrics.Accumulator) {
	if len(al.GetGpus()) == 0 {
		return
	}
	path := a.cfg.Runner.GPUSamplesPath(al.GetId())
	var offset int64
	var partial []byte
	read := func() {
		f, err := os.Open(path)
		if err != nil {
			return // not written yet, or no nvidia-smi in the image
		}
		defer f.Close()
		if _, err := f.Seek(offset, io.SeekStart); err != nil {
			return
		}
		data, err := io.ReadAll(io.LimitReader(f, 16<<20))
		if err != nil {
			return
		}
		offset += int64(len(data))
		data = append(partial, data...)
		lines := bytes.Split(data, []byte("\n"))
		partial = append([]byte(nil), lines[len(lines)-1]...) // an unfinished last line waits
		var batch []gpu.Sample
		for _, l := range lines[:len(lines)-1] {
			if s, err := gpumetrics.ParseGuestSample(l); err == nil {
				batch = append(batch, s)
			}
		}
		mapped := mapGuestGPUs(batch, al.GetGpus())
		acc.Add(mapped...)
		if a.cfg.Metrics != nil && len(mapped) > 0 {
			a.cfg.Metrics.Ingest(a.cfg.Node.Name, mapped)
		}
	}
	tick := time.NewTicker(2 * time.Second)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			read()
			return
		case <-tick.C:
			read()
		}
	}
}

// mapGuestGPUs rewrites guest PCI addresses to the allocation's host GPUs
// (hostPCI in allocation order, the domain's GPU order); samples of
// addresses that are no GPU of the allocation are dropped.
func mapGuestGPUs(samples []gpu.Sample, hostPCI []string) []gpu.Sample {
	out := make([]gpu.Sample, 0, len(samples))
	for _, s := range samples {
		i, ok := vm.GuestGPUIndex(s.PCIBusID)
		if !ok || i >= len(hostPCI) {
			continue
		}
		s.PCIBusID = hostPCI[i]
		out = append(out, s)
	}
	return out
}
