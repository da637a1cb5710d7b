package agent

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"slices"
	"time"

	"google.golang.org/grpc"

	"vhpc/api"
	"vhpc/client"
	"vhpc/cuda"
	"vhpc/hpcbench"
	"vhpc/hpcbench/cpubench"
	"vhpc/hpcbench/gpubench"
	"vhpc/scheduler/model"
	"vhpc/wire"
)

// AcceptanceSuite runs a node's acceptance workloads (hpcd operator
// node-accept) and returns one result per workload and device. HostSuite
// runs hpcbench on the host; tests use a fake.
type AcceptanceSuite interface {
	Run(ctx context.Context, run *api.AcceptanceRun) ([]model.AcceptanceResult, error)
}

var _ AcceptanceSuite = (*HostSuite)(nil)

// HostSuite runs hpcbench's workloads directly on the host, not in a
// guest: the CPU workloads on every core (cpubench), then the GPU
// workloads on each CUDA device whose PCI address is one of the node's
// inventory GPUs (gpubench, NVML sampled). The node is drained and has no
// allocations while it runs, so nothing competes with it. GPUs the host
// driver does not see (bound to vfio-pci, no CUDA driver) are not measured
// and keep their state; the suite logs why.
type HostSuite struct {
	// Root is where /proc/cpuinfo is read (os.DirFS("/")).
	Root fs.FS
	// GPUs is the node's inventory: which CUDA devices to measure, and
	// their models.
	GPUs []model.GPU
	// Timing of each workload (zero: hpcbench.DefaultTiming).
	Timing hpcbench.Timing
	// CUDA names the libraries (zero: cuda.DefaultLibraries).
	CUDA cuda.Libraries
	Log  *slog.Logger
}

// Run implements AcceptanceSuite. Only a bad workload list or size, or an
// unreadable /proc/cpuinfo, is an error; a workload that fails or does not
// validate is a result with Error set.
func (h *HostSuite) Run(ctx context.Context, run *api.AcceptanceRun) ([]model.AcceptanceResult, error) {
	log := h.Log
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	workloads, err := hpcbench.Select(run.GetWorkloads())
	if err != nil {
		return nil, err
	}
	size := run.GetSize()
	cpuSizes, err := hpcbench.ParseSizes(size, false)
	if err != nil {
		return nil, err
	}
	info, err := cpubench.ReadCPUInfo(h.Root)
	if err != nil {
		return nil, fmt.Errorf("acceptance: %w", err)
	}
	timing := h.Timing
	if timing.MaxReps == 0 {
		timing = hpcbench.DefaultTiming()
	}
	log.Info("acceptance: CPU workloads", "run", run.GetId(), "cpu", info.Model, "workloads", len(workloads))
	rep := hpcbench.Run(ctx, cpubench.New(info, cpubench.Options{Sizes: cpuSizes, Timing: timing, Log: log}), workloads)
	out := resultsOf("cpu", rep.Device.Name, rep)
	if len(h.GPUs) == 0 || ctx.Err() != nil {
		return out, ctx.Err()
	}
	gpuSizes, err := hpcbench.ParseSizes(size, true)
	if err != nil {
		return nil, err
	}
	gpus, err := h.runGPUs(ctx, workloads, gpuSizes, timing, log)
	if err != nil {
		log.Warn("acceptance: GPUs not measured; they keep their state", "run", run.GetId(), "err", err)
	}
	return append(out, gpus...), ctx.Err()
}

// runGPUs measures each CUDA device that is one of the inventory's GPUs.
func (h *HostSuite) runGPUs(ctx context.Context, workloads []hpcbench.Workload, sizes hpcbench.Sizes, timing hpcbench.Timing, log *slog.Logger) ([]model.AcceptanceResult, error) {
	libs := h.CUDA
	if len(libs.Driver) == 0 {
		libs = cuda.DefaultLibraries()
	}
	drv, err := cuda.Open(libs)
	if err != nil {
		return nil, err
	}
	n, err := drv.DeviceCount()
	if err != nil {
		return nil, err
	}
	var out []model.AcceptanceResult
	for i := range n {
		g, err := gpubench.New(gpubench.Options{Device: i, Sizes: sizes, Timing: timing, Libs: libs, Log: log})
		if err != nil {
			log.Warn("acceptance: CUDA device not measured", "device", i, "err", err)
			continue
		}
		pci := g.Device().PCIBusID
		j := slices.IndexFunc(h.GPUs, func(x model.GPU) bool { return x.PCIAddress == pci })
		if j >= 0 {
			log.Info("acceptance: GPU workloads", "gpu", pci, "model", h.GPUs[j].Model)
			b, closeNVML := gpubench.WithNVML(g, 0)
			out = append(out, resultsOf(pci, h.GPUs[j].Model, hpcbench.Run(ctx, b, workloads))...)
			err = closeNVML()
		}
		if err = errors.Join(err, g.Close()); err != nil {
			log.Warn("acceptance: close GPU", "gpu", pci, "err", err)
		}
	}
	return out, nil
}

// resultsOf turns a report into acceptance results for one subject.
func resultsOf(subject, deviceModel string, rep *hpcbench.Report) []model.AcceptanceResult {
	var out []model.AcceptanceResult
	for _, r := range rep.Workloads {
		res := model.AcceptanceResult{Subject: subject, Model: deviceModel, Workload: r.Name, Unit: r.Unit, Value: r.Value, Error: r.Error}
		if res.Error == "" && !r.Validated {
			res.Error = fmt.Sprintf("not validated: max error %.1e > tolerance %.1e", r.MaxError, r.Tolerance)
		}
		out = append(out, res)
	}
	return out
}

// maybeAccept starts the pending acceptance run of set once the node has
// no allocations left (it is drained meanwhile, so none come). Each run id
// is started once per agent process; a restarted agent runs a still
// pending run again. Called by reconcile with a.mu held.
func (a *Agent) maybeAccept(ctx context.Context, set *api.AllocationSet) {
	run := set.GetAcceptance()
	if run == nil || a.acceptRun == run.GetId() {
		return
	}
	busy := 0
	for _, t := range a.running {
		if !t.ended { // an ended one's guest is gone; only its report is under way
			busy++
		}
	}
	if len(set.GetAllocations()) > 0 || busy > 0 {
		a.log.Info("acceptance run waits for the node's allocations to end", "run", run.GetId(), "allocations", len(set.GetAllocations()))
		return
	}
	a.acceptRun = run.GetId()
	go a.accept(ctx, run)
}

// accept runs the suite and reports the results, retrying while the
// master is unavailable.
func (a *Agent) accept(ctx context.Context, run *api.AcceptanceRun) {
	start := time.Now()
	rep := &api.AcceptanceReport{Node: a.cfg.Node.Name, RunId: run.GetId()}
	if a.cfg.Acceptance == nil {
		rep.Error = "this agent has no acceptance suite"
	} else {
		res, err := a.cfg.Acceptance.Run(ctx, run)
		if ctx.Err() != nil {
			return // the agent stops; a restarted one runs it again
		}
		rep.Results = wire.AcceptanceResultsToProto(res)
		if err != nil {
			rep.Error = err.Error()
		}
	}
	a.log.Info("acceptance run done", "run", run.GetId(), "results", len(rep.Results), "err", rep.Error, "seconds", time.Since(start).Seconds())
	var out *api.Node
	err := a.sendUntilAnswered(ctx, func(ctx context.Context, conn *grpc.ClientConn) error {
		var err error
		out, err = client.Nodes(conn).ReportAcceptance(ctx, rep)
		return err
	}, "acceptance report failed; retrying", "run", run.GetId())
	switch {
	case err == nil:
		a.log.Info("acceptance reported", "run", run.GetId(), "state", out.GetState(), "reason", out.GetReason())
	case ctx.Err() == nil:
		a.log.Warn("master refused the acceptance report", "run", run.GetId(), "err", err)
	}
}
