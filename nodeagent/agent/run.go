package agent

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"strconv"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"vhpc/api"
	"vhpc/client"
	"vhpc/jobspec"
	"vhpc/nodeagent/gpumetrics"
	"vhpc/nodeagent/runner"
	"vhpc/nodeagent/vm"
	"vhpc/scheduler/model"
)

// taskFor turns an allocation (with its job's canonical spec) into the
// runner's task. The spec was validated by the master; it is decoded again
// here with the same package, never trusted as free text.
func taskFor(al *api.Allocation, resolveGPUs func([]string) ([]vm.GPU, error), underlay string) (runner.Task, error) {
	var spec jobspec.Spec
	if err := json.Unmarshal([]byte(al.GetSpecJson()), &spec); err != nil {
		return runner.Task{}, fmt.Errorf("allocation %s: job spec: %w", al.GetId(), err)
	}
	if err := spec.Validate(); err != nil {
		return runner.Task{}, fmt.Errorf("allocation %s: job spec: %w", al.GetId(), err)
	}
	t := runner.Task{
		AllocID: al.GetId(), Job: al.GetJob(), Task: al.GetTask(), Rank: int(al.GetRank()), Attempt: al.GetAttempt(),
		Image: spec.Image, Command: spec.Command, Script: spec.Script, Env: map[string]string{},
		Walltime: spec.Walltime.Std(), SourceDir: al.GetSubmitDir(),
		Placement: model.Placement{
			Node: al.GetNode(), MemoryMiB: al.GetMemoryMib(), Scratch: al.GetScratchMib(), Hugepages: al.GetHugepagesMib(),
			GPUs: al.GetGpus(),
		},
	}
	for _, c := range al.GetCores() {
		t.Placement.Cores = append(t.Placement.Cores, int(c))
	}
	for _, n := range al.GetNuma() {
		t.Placement.NUMA = append(t.Placement.NUMA, int(n))
	}
	if len(al.GetGpus()) > 0 {
		if resolveGPUs == nil {
			return runner.Task{}, fmt.Errorf("allocation %s asks for GPUs %v, but this agent has no GPU inventory", al.GetId(), al.GetGpus())
		}
		gpus, err := resolveGPUs(al.GetGpus())
		if err != nil {
			return runner.Task{}, fmt.Errorf("allocation %s: %w", al.GetId(), err)
		}
		t.GPUs = gpus
	}
	for k, v := range spec.Env {
		t.Env[k] = v
	}
	if spec.MPI != "none" {
		t.MPI = spec.MPI
	}
	t.TasksPerNode, t.CPUsPerTask = spec.Resources.TasksPerNode, spec.Resources.CPUsPerTask
	net, err := taskNetwork(al, underlay) // network.go
	if err != nil {
		return runner.Task{}, err
	}
	t.Network = net
	for _, s := range spec.StageIn {
		t.StageIn = append(t.StageIn, runner.Stage{From: s.From, To: s.To})
	}
	for _, s := range spec.StageOut {
		t.StageOut = append(t.StageOut, runner.Stage{From: s.From, To: s.To})
	}
	t.Env["VHPC_ALLOC_ID"] = al.GetId()
	t.Env["VHPC_ATTEMPT"] = strconv.FormatUint(al.GetAttempt(), 10)
	t.Env["VHPC_NODE_RANK"] = strconv.Itoa(int(al.GetRank()))
	t.Env["VHPC_NNODES"] = strconv.Itoa(spec.Resources.Nodes)
	if a := spec.Array; a != nil {
		first, last, step := a.Range()
		chunk := int64(max(a.Chunk, 1))
		lo := first + al.GetTask()*chunk*step
		hi := min(lo+(chunk-1)*step, last)
		t.Env["VHPC_ARRAY_TASK"] = strconv.FormatInt(al.GetTask(), 10)
		t.Env["VHPC_FRAME_FIRST"] = strconv.FormatInt(lo, 10)
		t.Env["VHPC_FRAME_LAST"] = strconv.FormatInt(hi, 10)
		t.Env["VHPC_FRAME_STEP"] = strconv.FormatInt(step, 10)
	}
	return t, nil
}

// spec decodes an allocation's job spec for labels; zero on error (taskFor
// has already refused bad specs).
func spec(al *api.Allocation) jobspec.Spec {
	var s jobspec.Spec
	_ = json.Unmarshal([]byte(al.GetSpecJson()), &s)
	return s
}

// start launches one allocation (or adopts its running guest).
// a.mu is held by the caller.
func (a *Agent) start(ctx context.Context, al *api.Allocation, adopt bool) {
	rctx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	t := &tracked{alloc: al, cancel: cancel, gone: make(chan struct{})}
	a.running[al.GetId()] = t
	go func() {
		defer cancel()
		res, usage := a.runOne(ctx, rctx, al, adopt)
		close(t.gone)
		if ctx.Err() != nil && rctx.Err() == nil {
			return // the agent is shutting down; its successor adopts the guest
		}
		a.mu.Lock()
		t.ended = true
		a.mu.Unlock()
		a.report(context.WithoutCancel(ctx), al, res, usage)
		a.mu.Lock()
		delete(a.running, al.GetId())
		a.mu.Unlock()
	}()
}

// runOne runs the task and streams its output; agentCtx ends when the
// agent stops, runCtx when the master (or the fence) stops the job.
func (a *Agent) runOne(agentCtx, runCtx context.Context, al *api.Allocation, adopt bool) (runner.Result, *api.GPUUsage) {
	log := a.log.With("alloc_id", al.GetId(), "attempt", al.GetAttempt())
	task, err := taskFor(al, a.cfg.ResolveGPUs, a.cfg.Node.Underlay)
	if err != nil {
		log.Error("cannot run allocation", "err", err)
		return runner.Result{State: model.AllocFailed, ExitCode: -1, Reason: err.Error()}, nil
	}
	var pulled func(*api.UpdateAllocationRequest) // marks reports: the node pulled the image
	if al.GetImageDigest() != "" {
		lease, err := a.acquireImage(runCtx, agentCtx, al, log) // image.go
		if err != nil {
			return imageFailure(runCtx, err, log), nil
		}
		defer lease.Release()
		task.ImageDir = lease.Image.Dir
		if lease.Pulled {
			pulled = func(r *api.UpdateAllocationRequest) { r.ImagePulled = true }
		}
	}
	// The guest must outlive an agent that stops (its successor adopts
	// it), so only runCtx, never agentCtx, stops it.
	guestCtx := runCtx
	logsDone := make(chan struct{})
	followCtx, stopFollow := context.WithCancel(context.WithoutCancel(agentCtx))
	go func() { defer close(logsDone); a.pushLogs(followCtx, al, task.AllocID) }()
	acc := gpumetrics.NewAccumulator()
	gpusDone := make(chan struct{})
	go func() { defer close(gpusDone); a.followGPUSamples(followCtx, al, acc) }()
	progress := func(phase string) {
		log.Info("allocation phase", "phase", phase)
		switch phase {
		case runner.PhaseBooting:
			a.reportAsync(agentCtx, al, runner.Result{State: model.AllocStarting, Reason: "booting guest " + a.cfg.Runner.DomainName(task)}, pulled)
		case runner.PhaseRunning:
			a.reportAsync(agentCtx, al, runner.Result{State: model.AllocRunning}, pulled)
		}
	}
	if m := a.cfg.Metrics; m != nil {
		for _, uuid := range a.gpuUUIDs(al.GetGpus()) {
			m.SetAllocation(uuid, strconv.FormatUint(al.GetJob(), 10), spec(al).Department)
			defer m.ClearAllocation(uuid)
		}
	}
	var res runner.Result
	if adopt {
		res, err = a.cfg.Runner.Adopt(guestCtx, task, progress)
	} else {
		res, err = a.cfg.Runner.Run(guestCtx, task, progress)
	}
	if err != nil {
		log.Error("allocation failed on this node", "err", err)
	}
	stopFollow()
	<-logsDone
	<-gpusDone
	if runCtx.Err() != nil && res.State == model.AllocFailed && res.Reason == "" {
		res.State, res.Reason = model.AllocCancelled, "stopped at the master's request"
	}
	log.Info("allocation ended", "state", res.State, "exit_code", res.ExitCode, "boot_s", res.BootSeconds, "run_s", res.RunSeconds)
	var usage *api.GPUUsage
	if u := acc.Usage(); u.Samples > 0 {
		usage = &api.GPUUsage{GpuHours: u.GPUHours, MeanUtilization: u.MeanUtilizationRatio, EnergyJoules: u.EnergyJ, Samples: int64(u.Samples)}
	}
	return res, usage
}

// pushLogs copies the guest's output file to the master as it grows, and
// once more after ctx ends so the tail is not lost.
func (a *Agent) pushLogs(ctx context.Context, al *api.Allocation, allocID string) {
	path := a.cfg.Runner.LogPath(allocID)
	var offset int64
	buf := make([]byte, 256<<10)
	flush := func() {
		f, err := os.Open(path)
		if err != nil {
			return // not written yet
		}
		defer f.Close()
		for {
			n, rerr := f.ReadAt(buf, offset)
			if n > 0 {
				chunk := &api.LogChunk{Job: al.GetJob(), AllocId: allocID, Offset: offset, Data: append([]byte(nil), buf[:n]...), Attempt: al.GetAttempt()}
				err := a.cfg.Client.Do(context.WithoutCancel(ctx), func(ctx context.Context, conn *grpc.ClientConn) error {
					stream, err := client.Nodes(conn).PushLogs(ctx)
					if err != nil {
						return err
					}
					if err := stream.Send(chunk); err != nil {
						return err
					}
					_, err = stream.CloseAndRecv()
					return err
				})
				if err != nil {
					a.log.Warn("push logs", "alloc_id", allocID, "err", err)
					return
				}
				offset += int64(n)
			}
			if rerr != nil {
				if !errors.Is(rerr, io.EOF) {
					a.log.Warn("read guest output", "alloc_id", allocID, "err", rerr)
				}
				return
			}
		}
	}
	tick := time.NewTicker(300 * time.Millisecond)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			flush()
			return
		case <-tick.C:
			flush()
		}
	}
}

// report sends an allocation's state to the master, retrying until it is
// accepted or refused for good (stale attempt, allocation gone). Each
// non-nil mark adds to the request (e.g. image_pulled).
func (a *Agent) report(ctx context.Context, al *api.Allocation, res runner.Result, usage *api.GPUUsage, marks ...func(*api.UpdateAllocationRequest)) {
	req := &api.UpdateAllocationRequest{
		GpuUsage: usage,
		AllocId:  al.GetId(), Attempt: al.GetAttempt(), Node: a.cfg.Node.Name, State: string(res.State),
		ExitCode: int32(res.ExitCode), Reason: res.Reason, BootSeconds: res.BootSeconds, RunSeconds: res.RunSeconds,
	}
	for _, mark := range marks {
		if mark != nil {
			mark(req)
		}
	}
	for wait := 200 * time.Millisecond; ; wait = min(2*wait, 5*time.Second) {
		err := a.cfg.Client.Do(ctx, func(ctx context.Context, conn *grpc.ClientConn) error {
			_, err := client.Nodes(conn).UpdateAllocation(ctx, req)
			return err
		})
		switch status.Code(err) {
		case codes.OK:
			if res.State.Terminal() {
				if err := a.cfg.Runner.RemoveLogs(al.GetId()); err != nil {
					a.log.Warn("remove local logs", "alloc_id", al.GetId(), "err", err)
				}
			}
			return
		case codes.FailedPrecondition, codes.NotFound, codes.InvalidArgument:
			a.log.Warn("master refused allocation report", "alloc_id", al.GetId(), "state", res.State, "err", err)
			return
		}
		if ctx.Err() != nil {
			return
		}
		a.log.Warn("report failed; retrying", "alloc_id", al.GetId(), "err", err)
		select {
		case <-ctx.Done():
			return
		case <-time.After(wait):
		}
	}
}

// reportAsync reports a non-final phase without blocking the caller.
func (a *Agent) reportAsync(ctx context.Context, al *api.Allocation, res runner.Result, marks ...func(*api.UpdateAllocationRequest)) {
	go a.report(ctx, al, res, nil, marks...)
}
