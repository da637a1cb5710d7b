package agent

import (
	"context"
	"time"

	"google.golang.org/grpc"

	"vhpc/api"
	"vhpc/client"
	"vhpc/nodeagent/gpu"
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
