package agent

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"strconv"
	"sync"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"vhpc/api"
	"vhpc/client"
	"vhpc/jobdata"
	"vhpc/jobspec"
	"vhpc/nodeagent/gpumetrics"
	"vhpc/nodeagent/runner"
	"vhpc/nodeagent/vm"
	"vhpc/scheduler/model"
)

// taskFor turns an allocation (with its job's canonical spec) into the
// runner's task. The spec was validated by the master; it is decoded again
// here with the same package, never trusted as free text.
func taskFor(al *api.Allocation, resolveGPUs func([]string) ([]vm.GPU, error), underlay string, data runner.JobData) (runner.Task, error) {
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
		Walltime: spec.Walltime.Std(), Inputs: al.GetInputs(), Data: data,
		InputRepository:  jobdata.RepositoryName(spec.Department),
		OutputRepository: jobdata.OutputRepositoryName(spec.Department, al.GetJob()),
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
	if al.GetRank() == 0 { // a multi-node job's results come from its first node
		for _, s := range spec.StageOut {
			t.StageOut = append(t.StageOut, runner.Stage{From: s.From, To: s.To})
		}
		t.MaxOutputBytes = al.GetMaxOutputBytes()
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
		a.progressMu.Lock()
		delete(a.progress, al.GetId())
		a.progressMu.Unlock()
	}()
}

// runOne runs the task and streams its output; agentCtx ends when the
// agent stops, runCtx when the master (or the fence) stops the job.
func (a *Agent) runOne(agentCtx, runCtx context.Context, al *api.Allocation, adopt bool) (runner.Result, *api.GPUUsage) {
	log := a.log.With("alloc_id", al.GetId(), "attempt", al.GetAttempt())
	// Every registry call of this allocation carries its own token.
	runCtx = a.withAllocToken(runCtx, al.GetId()) // regtoken.go
	task, err := taskFor(al, a.cfg.ResolveGPUs, a.cfg.Node.Underlay, a.cfg.Data)
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
	datasets, releaseDatasets, err := a.acquireDatasets(runCtx, al, spec(al).Department) // data.go
	if err != nil {
		log.Error("cannot attach the job's datasets", "err", err)
		return runner.Result{State: model.AllocFailed, ExitCode: -1, Reason: err.Error()}, nil
	}
	defer releaseDatasets()
	task.Datasets = datasets
	// The guest must outlive an agent that stops (its successor adopts
	// it), so only runCtx, never agentCtx, stops it.
	guestCtx := runCtx
	logsDone := make(chan struct{})
	followCtx, stopFollow := context.WithCancel(context.WithoutCancel(agentCtx))
	go func() { defer close(logsDone); a.pushLogs(followCtx, agentCtx, al, task.AllocID) }()
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

// pushLogs copies the guest's output file to the master as it grows. Once
// ctx ends it flushes the rest and retries until the master has
// acknowledged the whole file (or refused it for good, or agentCtx ends):
// runOne waits for it, so the final report, after which RemoveLogs deletes
// the file, never comes before the output.
func (a *Agent) pushLogs(ctx, agentCtx context.Context, al *api.Allocation, allocID string) {
	p := &logPusher{a: a, al: al, allocID: allocID, path: a.cfg.Runner.LogPath(allocID), buf: make([]byte, logChunkBytes)}
	tick := time.NewTicker(300 * time.Millisecond)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			p.final(agentCtx)
			return
		case <-tick.C:
			if p.refused {
				continue
			}
			if err := p.flush(context.WithoutCancel(ctx)); refusedForGood(err) {
				a.log.Warn("master refused output; the rest is not pushed", "alloc_id", allocID, "offset", p.offset, "err", err)
				p.refused = true
			} else if err != nil {
				a.log.Warn("push logs", "alloc_id", allocID, "err", err)
			}
		}
	}
}

// logChunkBytes is the most output one PushLogs chunk carries (the
// master's fsm.MaxOutputChunk).
const logChunkBytes = 256 << 10

// logPusher is one allocation's output on its way to the master: offset is
// how much of the file the master has acknowledged (its have).
type logPusher struct {
	a       *Agent
	al      *api.Allocation
	allocID string
	path    string
	buf     []byte
	offset  int64
	// truncated: the master keeps no more of this allocation's output;
	// chunks only tell it how far the file reaches.
	truncated bool
	// refused: the master refused a chunk for good (refusedForGood).
	refused bool
}

// refusedForGood: an answer a retry cannot change (the allocation is
// gone, a stale attempt, a chunk the master will never take). A gap is
// not one of them: flush resends from the master's offset.
func refusedForGood(err error) bool {
	switch status.Code(err) {
	case codes.NotFound, codes.InvalidArgument, codes.FailedPrecondition:
		return true
	}
	return false
}

// final flushes until the master has everything, backing off between
// tries; it gives up on a refusal that a retry cannot change (the
// allocation is gone, a stale attempt) or when agentCtx ends.
func (p *logPusher) final(agentCtx context.Context) {
	for wait := 200 * time.Millisecond; !p.refused; wait = min(2*wait, 5*time.Second) {
		err := p.flush(agentCtx)
		if err == nil {
			return
		}
		if refusedForGood(err) {
			p.a.log.Warn("master refused output; the rest is not pushed", "alloc_id", p.allocID, "offset", p.offset, "err", err)
			return
		}
		if agentCtx.Err() != nil {
			return
		}
		p.a.log.Warn("push last output failed; retrying", "alloc_id", p.allocID, "err", err)
		select {
		case <-agentCtx.Done():
			return
		case <-time.After(wait):
		}
	}
}

// flush sends the file from the master's offset to its end. A gap answer
// moves the offset back to what the master holds and resends from there.
func (p *logPusher) flush(ctx context.Context) error {
	f, err := os.Open(p.path)
	if errors.Is(err, os.ErrNotExist) {
		return nil // not written yet
	}
	if err != nil {
		return fmt.Errorf("open guest output: %w", err)
	}
	defer f.Close()
	for {
		chunk := &api.LogChunk{Job: p.al.GetJob(), AllocId: p.allocID, Attempt: p.al.GetAttempt(), Offset: p.offset}
		if p.truncated {
			fi, err := f.Stat()
			if err != nil {
				return fmt.Errorf("guest output: %w", err)
			}
			if fi.Size() <= p.offset {
				return nil
			}
			chunk.Offset = fi.Size()
		} else {
			n, rerr := f.ReadAt(p.buf, p.offset)
			if n == 0 {
				if rerr == nil || errors.Is(rerr, io.EOF) {
					return nil
				}
				return fmt.Errorf("read guest output: %w", rerr)
			}
			chunk.Data = append([]byte(nil), p.buf[:n]...)
		}
		resp, err := p.send(ctx, chunk)
		if have, ok := gapHave(err); ok {
			p.a.log.Info("master holds less output than sent; resending", "alloc_id", p.allocID, "offset", chunk.GetOffset(), "have", have)
			p.offset, p.truncated = have, false
			continue
		}
		if err != nil {
			return err
		}
		p.offset, p.truncated = resp.GetHave(), resp.GetTruncated()
	}
}

// send pushes one chunk on its own stream (through the failover client).
func (p *logPusher) send(ctx context.Context, chunk *api.LogChunk) (*api.PushLogsResponse, error) {
	var resp *api.PushLogsResponse
	err := p.a.cfg.Client.Do(ctx, func(ctx context.Context, conn *grpc.ClientConn) error {
		stream, err := client.Nodes(conn).PushLogs(ctx)
		if err != nil {
			return err
		}
		if err := stream.Send(chunk); err != nil && !errors.Is(err, io.EOF) {
			return err // io.EOF: the master answered already; CloseAndRecv has it
		}
		resp, err = stream.CloseAndRecv()
		return err
	})
	return resp, err
}

// gapHave reads the master's answer to a chunk that left a gap: the
// offset it holds, from the PushLogsResponse detail.
func gapHave(err error) (int64, bool) {
	st, ok := status.FromError(err)
	if !ok || st.Code() != codes.FailedPrecondition {
		return 0, false
	}
	for _, d := range st.Details() {
		if r, ok := d.(*api.PushLogsResponse); ok {
			return r.GetHave(), true
		}
	}
	return 0, false
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
	if o := res.Outputs; o != nil {
		req.Outputs, req.OutputBytes, req.OutputFiles, req.OutputsMissing, req.OutputsRepository = o.Digest, o.Bytes, int32(o.Files), o.Missing, o.Repository
	}
	for _, mark := range marks {
		if mark != nil {
			mark(req)
		}
	}
	err := a.sendUntilAnswered(ctx, func(ctx context.Context, conn *grpc.ClientConn) error {
		_, err := client.Nodes(conn).UpdateAllocation(ctx, req)
		return err
	}, "report failed; retrying", "alloc_id", al.GetId())
	switch {
	case err == nil:
		if res.State.Terminal() {
			if err := a.cfg.Runner.RemoveLogs(al.GetId()); err != nil {
				a.log.Warn("remove local logs", "alloc_id", al.GetId(), "err", err)
			}
		}
	case ctx.Err() == nil:
		a.log.Warn("master refused allocation report", "alloc_id", al.GetId(), "state", res.State, "err", err)
	}
}

// sendUntilAnswered calls send through the client until the master
// answers it (nil), refuses it (the refusal: FailedPrecondition, NotFound,
// InvalidArgument or PermissionDenied, which a retry cannot change) or ctx
// ends (ctx's error), waiting from 200 ms doubling to 5 s between tries
// and logging each failed try with retryMsg and logArgs. The allocation
// and acceptance reports use it.
func (a *Agent) sendUntilAnswered(ctx context.Context, send func(context.Context, *grpc.ClientConn) error, retryMsg string, logArgs ...any) error {
	for wait := 200 * time.Millisecond; ; wait = min(2*wait, 5*time.Second) {
		err := a.cfg.Client.Do(ctx, send)
		switch status.Code(err) {
		case codes.OK:
			return nil
		case codes.FailedPrecondition, codes.NotFound, codes.InvalidArgument, codes.PermissionDenied:
			return err
		}
		if ctx.Err() != nil {
			return ctx.Err()
		}
		a.log.Warn(retryMsg, append(logArgs, "err", err)...)
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(wait):
		}
	}
}

// reportAsync reports a non-final phase without blocking the caller.
func (a *Agent) reportAsync(ctx context.Context, al *api.Allocation, res runner.Result, marks ...func(*api.UpdateAllocationRequest)) {
	send := func() { a.report(ctx, al, res, nil, marks...) }
	if res.State.Terminal() {
		go send()
		return
	}
	a.progressMu.Lock()
	p := a.progress[al.GetId()]
	if p == nil {
		p = &progressReporter{}
		a.progress[al.GetId()] = p
	}
	a.progressMu.Unlock()
	p.send(send)
}

// progressReporter sends one allocation's progress reports one at a time:
// a report made while another is being sent replaces any still waiting, so
// a long pull that reports every second keeps at most one report in flight
// (retrying while the master is away) and one waiting, never a pile of
// goroutines.
type progressReporter struct {
	mu      sync.Mutex
	sending bool
	next    func()
}

func (p *progressReporter) send(fn func()) {
	p.mu.Lock()
	if p.sending {
		p.next = fn
		p.mu.Unlock()
		return
	}
	p.sending = true
	p.mu.Unlock()
	go func() {
		for {
			fn()
			p.mu.Lock()
			if p.next == nil {
				p.sending = false
				p.mu.Unlock()
				return
			}
			fn, p.next = p.next, nil
			p.mu.Unlock()
		}
	}()
}
