// Package agent is the node agent's control loop: it registers the node's
// inventory with the master, heartbeats, watches the node's allocations,
// runs each one in a guest through the runner, streams its output to the
// master and reports its state with the allocation's attempt number. After
// a restart it re-adopts the guests that are still running. cmd/hpc-agent
// and `hpcd dev` build one with New and call Run.
//
//	master ──WatchAllocations──▶ agent ──Run/Adopt──▶ runner ──▶ libvirt guest
//	   ▲                            │
//	   └── Register, Heartbeat, UpdateAllocation(attempt), PushLogs
package agent

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"vhpc/api"
	"vhpc/client"
	"vhpc/nodeagent/gpumetrics"
	"vhpc/nodeagent/runner"
	"vhpc/nodeagent/vm"
	"vhpc/scheduler/model"
	"vhpc/wire"
)

// Runner is what the agent needs from nodeagent/runner.
type Runner interface {
	Hypervisor() string
	DomainName(t runner.Task) string
	GPUSamplesPath(allocID string) string
	Run(ctx context.Context, t runner.Task, progress func(phase string)) (runner.Result, error)
	Adopt(ctx context.Context, t runner.Task, progress func(phase string)) (runner.Result, error)
	Running(ctx context.Context) ([]string, error)
	Remove(ctx context.Context, t runner.Task) error
	LogPath(allocID string) string
	RemoveLogs(allocID string) error
}

var _ Runner = (*runner.Runner)(nil)

// Config is an agent's wiring.
type Config struct {
	// Node is the inventory to register (from nodeagent/inventory); the
	// agent fills in Hypervisor from the runner.
	Node   model.Node
	Client *client.Client
	Runner Runner
	Logger *slog.Logger
	// ResolveGPUs turns an allocation's GPU PCI addresses into what the
	// runner passes through (runner.ResolveGPUs over this host's
	// inventory). Nil: allocations with GPUs fail with a clear reason.
	ResolveGPUs func(pci []string) ([]vm.GPU, error)
	// Health, when set, is checked every HealthInterval (default 10s).
	Health         HealthSource
	HealthInterval time.Duration
	// Metrics, when set, is told which job holds which GPU.
	Metrics *gpumetrics.Collector
	// FenceAfter is how long the agent keeps guests running without a
	// successful heartbeat before it stops them itself; it must be shorter
	// than the master's lease so resources are free before they are
	// reused. Zero: two thirds of the lease the master announces.
	FenceAfter time.Duration
	// Registered, when set, is called once, after the first registration
	// the master accepted: `hpcd dev` tells by it an agent that could not
	// start (it exits) from one that stopped later (it keeps serving).
	Registered func()
	// Images pulls a job's catalog image (Allocation.image_digest) before
	// boot and pins it while the job runs. Nil: such jobs fail, saying so.
	Images ImageCache
	// Data moves jobs' stageIn and stageOut file sets (MasterJobData).
	// Nil: such jobs fail, saying so.
	Data runner.JobData
	// Datasets pins jobs' read-only datasets (MasterJobData). Nil: jobs
	// with datasets fail, saying so.
	Datasets DatasetCache
	// RegistryRetryMax is the longest pause between tries to pull while
	// the registry is unavailable (the job waits meanwhile); zero is
	// DefaultRegistryRetryMax.
	RegistryRetryMax time.Duration
	// Acceptance runs the node's acceptance suite when the master asks
	// (HostSuite). Nil: runs are reported as failed, saying so.
	Acceptance AcceptanceSuite
}

// Agent runs one node.
type Agent struct {
	cfg Config
	log *slog.Logger

	// reregister asks the heartbeat loop to register again now (the
	// watch loop found the node unknown to the master).
	reregister chan struct{}

	mu      sync.Mutex
	running map[string]*tracked // by allocation id
	// progress holds each running allocation's progressReporter (by id;
	// its own lock, since reports are made with and without mu held).
	progressMu sync.Mutex
	progress   map[string]*progressReporter
	adopt      map[string]bool // domains found at start, not yet claimed
	lastOK     time.Time
	lease      time.Duration
	interval   time.Duration // heartbeat interval the master asked for
	refused    *RefusedError // the master's "no" to this node, once given
	stopRun    func(error)   // ends Run's loops (set while Run runs)
	acceptRun  uint64        // the acceptance run started by this process
}

// RefusedError is the master's definitive answer that it will not accept
// this node (an invalid inventory or name, or a node it does not admit).
// Retrying the same registration cannot succeed, so the agent stops and
// reports it; Run returns it and Agent.Err keeps it.
type RefusedError struct {
	Node   string
	Code   codes.Code // the gRPC status code of the master's answer
	Reason string     // the master's message, e.g. what is wrong with the node
	Err    error      // the answer as received
}

func (e *RefusedError) Error() string {
	return fmt.Sprintf("agent: master refused node %s (%s): %s", e.Node, e.Code, e.Reason)
}

func (e *RefusedError) Unwrap() error { return e.Err }

// refusal reports whether a Register answer is the master's "no" for this
// node rather than a failure another try may get past (no leader, the
// master unreachable or overloaded).
func refusal(err error) bool {
	switch status.Code(err) {
	case codes.InvalidArgument, codes.FailedPrecondition, codes.PermissionDenied,
		codes.Unauthenticated, codes.AlreadyExists, codes.OutOfRange, codes.Unimplemented:
		return true
	}
	return false
}

// tracked is one allocation this agent is running.
type tracked struct {
	alloc  *api.Allocation
	cancel context.CancelFunc
	ended  bool          // its guest is gone and its final report is under way
	gone   chan struct{} // closed once the runner has returned (the guest is gone or left to a successor)
}

// New checks the configuration; Run does the work.
func New(cfg Config) (*Agent, error) {
	if cfg.Client == nil || cfg.Runner == nil {
		return nil, errors.New("agent: a client and a runner are required")
	}
	if cfg.Node.Name == "" {
		return nil, errors.New("agent: the node needs a name")
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	return &Agent{
		cfg: cfg, log: cfg.Logger.With("node", cfg.Node.Name), reregister: make(chan struct{}, 1),
		running: map[string]*tracked{}, adopt: map[string]bool{}, progress: map[string]*progressReporter{},
	}, nil
}

// Run registers, then heartbeats and follows the node's allocations until
// ctx ends. Guests keep running when Run returns because ctx ended: Run
// does not wait for them, and the next agent on this host re-adopts them
// (it is meant to be followed by process exit). Guests are stopped when
// the master asks, or when the agent cannot reach any master for longer
// than FenceAfter.
//
// Registration is retried while the master is unreachable. If the master
// refuses the node, at start or when registering again after it forgot
// the node, Run stops the node's guests (the master no longer holds them
// for anyone) and returns a *RefusedError; Err returns it too.
func (a *Agent) Run(ctx context.Context) error {
	ids, err := a.cfg.Runner.Running(ctx)
	if err != nil {
		return fmt.Errorf("agent: list guests left from before: %w", err)
	}
	for _, id := range ids {
		a.adopt[id] = true
	}
	if len(ids) > 0 {
		a.log.Info("found guests from a previous run; will adopt or remove them", "allocs", ids)
	}
	if err := a.register(ctx); err != nil {
		return err
	}
	if a.cfg.Registered != nil {
		a.cfg.Registered()
	}
	if o, ok := a.cfg.Images.(interface{ Open(context.Context) error }); ok {
		go func() {
			if err := o.Open(ctx); err != nil {
				a.log.Warn("image cache not open yet; the first job that needs an image opens it", "err", err)
			}
		}()
	}
	lctx, stop := context.WithCancelCause(ctx)
	defer stop(nil)
	a.mu.Lock()
	a.stopRun = stop
	a.mu.Unlock()
	var wg sync.WaitGroup
	wg.Add(2)
	go func() { defer wg.Done(); a.heartbeatLoop(lctx) }()
	go func() { defer wg.Done(); a.watchLoop(lctx) }()
	if a.cfg.Health != nil {
		wg.Add(1)
		go func() { defer wg.Done(); a.healthLoop(lctx) }()
	}
	wg.Wait()
	if err := a.Err(); err != nil {
		a.stopGuests(ctx)
		return err
	}
	return nil
}

// Err is the master's refusal of this node (a *RefusedError), or nil while
// the master accepts it. An in-process agent's owner (`hpcd dev`) shows it
// to users as the reason jobs do not run on this host.
func (a *Agent) Err() error {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.refused == nil {
		return nil
	}
	return a.refused
}

// register registers the node, retrying while no master accepts the call;
// it returns a *RefusedError when the master refuses the node.
func (a *Agent) register(ctx context.Context) error {
	for wait := 200 * time.Millisecond; ; wait = min(2*wait, 5*time.Second) {
		err := a.registerOnce(ctx)
		if err == nil {
			return nil
		}
		var refused *RefusedError
		if errors.As(err, &refused) {
			return err
		}
		a.log.Warn("register failed; retrying", "err", err, "retry_in", wait)
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(wait):
		}
	}
}

// registerOnce makes one registration call (with the client's failover,
// bounded by ctx). A refusal is recorded for Err, logged with the
// master's reason, ends Run's loops and is returned as a *RefusedError.
func (a *Agent) registerOnce(ctx context.Context) error {
	n := a.cfg.Node.Copy()
	n.Hypervisor = a.cfg.Runner.Hypervisor()
	req := &api.RegisterRequest{Node: wire.NodeToProto(n), AgentVersion: "vhpc-agent/1"}
	var resp *api.RegisterResponse
	err := a.cfg.Client.Do(ctx, func(ctx context.Context, conn *grpc.ClientConn) error {
		var err error
		resp, err = client.Nodes(conn).Register(ctx, req)
		return err
	})
	switch {
	case err == nil:
		a.mu.Lock()
		a.lastOK = time.Now()
		a.lease = time.Duration(resp.GetLeaseMs()) * time.Millisecond
		a.interval = time.Duration(resp.GetHeartbeatIntervalMs()) * time.Millisecond
		a.mu.Unlock()
		a.log.Info("registered", "hypervisor", n.Hypervisor, "cores", len(n.Cores), "memory_mib", n.MemoryMiB(), "gpus", len(n.GPUs))
		return nil
	case refusal(err):
		st := status.Convert(err)
		refused := &RefusedError{Node: n.Name, Code: st.Code(), Reason: st.Message(), Err: err}
		a.log.Error("master refused the node; the agent stops", "code", st.Code().String(), "reason", st.Message())
		a.mu.Lock()
		a.refused = refused
		stop := a.stopRun
		a.mu.Unlock()
		if stop != nil {
			stop(refused)
		}
		return refused
	}
	return fmt.Errorf("agent: register node %s: %w", n.Name, err)
}

// stopGuests stops every guest this agent runs and waits until the runner
// has returned for each (or ctx ends): after a refusal no master holds
// their resources, so nobody else would stop them.
func (a *Agent) stopGuests(ctx context.Context) {
	a.mu.Lock()
	gone := make([]chan struct{}, 0, len(a.running))
	for id, t := range a.running {
		a.log.Warn("stopping guest: the master refused this node", "alloc_id", id)
		t.cancel()
		gone = append(gone, t.gone)
	}
	a.mu.Unlock()
	for _, g := range gone {
		select {
		case <-g:
		case <-ctx.Done():
			return
		}
	}
}

// heartbeatLoop heartbeats every interval. When the master has forgotten
// the node it registers again with one bounded attempt per tick, so a
// master that keeps failing never holds the loop: heartbeats and the
// fence keep their pace.
func (a *Agent) heartbeatLoop(ctx context.Context) {
	a.mu.Lock()
	interval := a.interval
	a.mu.Unlock()
	if interval <= 0 {
		interval = 2 * time.Second
	}
	tick := time.NewTicker(interval)
	defer tick.Stop()
	for {
		register := false
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		case <-a.reregister:
			register = true
		}
		// Each call is bounded by the interval, so a master that
		// stopped answering (a partition drops packets) cannot hold the
		// loop past the fence time.
		hctx, cancel := context.WithTimeout(ctx, interval)
		var err error
		if !register {
			images := a.cachedImages()
			err = a.cfg.Client.Do(hctx, func(ctx context.Context, conn *grpc.ClientConn) error {
				_, err := client.Nodes(conn).Heartbeat(ctx, &api.HeartbeatRequest{Node: a.cfg.Node.Name, RunningAllocations: a.runningIDs(), CachedImages: images})
				return err
			})
			if status.Code(err) == codes.NotFound { // the master forgot us (new cluster): register again
				a.log.Warn("the master does not know this node; registering again", "err", err)
				err = a.registerOnce(hctx)
			}
		} else {
			err = a.registerOnce(hctx)
		}
		cancel()
		var refused *RefusedError
		switch {
		case err == nil:
			a.mu.Lock()
			a.lastOK = time.Now()
			a.mu.Unlock()
		case errors.As(err, &refused):
			return // registerOnce has logged it and ended Run's loops
		case ctx.Err() != nil:
			return
		default:
			a.log.Warn("heartbeat failed", "err", err)
			a.fenceIfLeaseLost()
		}
	}
}

// fenceIfLeaseLost stops every guest once the master has been unreachable
// for longer than FenceAfter: by then the master may be about to give the
// resources to other jobs.
func (a *Agent) fenceIfLeaseLost() {
	a.mu.Lock()
	defer a.mu.Unlock()
	fence := a.cfg.FenceAfter
	if fence == 0 {
		fence = a.lease * 2 / 3
	}
	if fence <= 0 || time.Since(a.lastOK) < fence || len(a.running) == 0 {
		return
	}
	a.log.Error("no master reachable for longer than the fence time; stopping all guests", "fence_after", fence)
	for _, t := range a.running {
		t.cancel()
	}
}

func (a *Agent) runningIDs() []string {
	a.mu.Lock()
	defer a.mu.Unlock()
	ids := make([]string, 0, len(a.running))
	for id := range a.running {
		ids = append(ids, id)
	}
	slices.Sort(ids)
	return ids
}

// watchLoop follows the master's view of this node's allocations, starting
// new ones and stopping those the master no longer wants.
func (a *Agent) watchLoop(ctx context.Context) {
	for ctx.Err() == nil {
		// Allocations started from the stream live on ctx, the agent's:
		// the stream's own context ends when it breaks (a failover), and
		// the allocation must not take that for the agent stopping.
		err := a.cfg.Client.Stream(ctx, func(sctx context.Context, conn *grpc.ClientConn) error {
			stream, err := client.Nodes(conn).WatchAllocations(sctx, &api.WatchAllocationsRequest{Node: a.cfg.Node.Name})
			if err != nil {
				return err
			}
			for {
				set, err := stream.Recv()
				if err != nil {
					return err
				}
				a.reconcile(ctx, set)
			}
		})
		if ctx.Err() != nil {
			return
		}
		if status.Code(err) == codes.NotFound {
			// The heartbeat loop registers again: this loop must not block
			// in registration, nor lose a refusal.
			select {
			case a.reregister <- struct{}{}:
			default:
			}
		}
		a.log.Warn("allocation watch ended; reconnecting", "err", err)
		select {
		case <-ctx.Done():
		case <-time.After(time.Second):
		}
	}
}

// reconcile makes the running set match the master's set.
func (a *Agent) reconcile(ctx context.Context, set *api.AllocationSet) {
	want := map[string]*api.Allocation{}
	for _, al := range set.GetAllocations() {
		want[al.GetId()] = al
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	for id, t := range a.running {
		if al, ok := want[id]; !t.ended && (!ok || al.GetDesired() == "stop") {
			a.log.Info("master no longer wants allocation; stopping it", "alloc_id", id)
			t.cancel()
		}
	}
	for id, al := range want {
		if _, ok := a.running[id]; ok || al.GetDesired() == "stop" {
			if !ok && al.GetDesired() == "stop" {
				a.reportAsync(ctx, al, runner.Result{State: model.AllocCancelled, Reason: "stopped before it started"})
			}
			continue
		}
		if model.AllocState(al.GetState()).Terminal() {
			continue
		}
		adopt := a.adopt[id]
		delete(a.adopt, id)
		if !adopt && al.GetState() != string(model.AllocPending) {
			// The master thinks it runs here, but this agent has no guest
			// for it: it was lost (e.g. the host rebooted).
			a.reportAsync(ctx, al, runner.Result{State: model.AllocFailed, ExitCode: -1, Reason: "lost: the node has no guest for this allocation after an agent restart"})
			continue
		}
		a.start(ctx, al, adopt)
	}
	a.maybeAccept(ctx, set)
	// Guests found at start-up that the master does not want are removed.
	for id := range a.adopt {
		if _, ok := want[id]; ok {
			continue
		}
		delete(a.adopt, id)
		if t, err := taskIdentity(id); err == nil {
			a.log.Warn("removing a guest the master no longer wants", "alloc_id", id)
			go func() {
				if err := a.cfg.Runner.Remove(context.WithoutCancel(ctx), t); err != nil {
					a.log.Error("remove orphan guest", "alloc_id", id, "err", err)
				}
			}()
		}
	}
}

// taskIdentity rebuilds job, task, rank and attempt from an allocation id
// ("<job>.<task>.<rank>.<attempt>").
func taskIdentity(id string) (runner.Task, error) {
	parts := strings.Split(id, ".")
	if len(parts) != 4 {
		return runner.Task{}, fmt.Errorf("allocation id %q: want job.task.rank.attempt", id)
	}
	var nums [4]uint64
	for i, p := range parts {
		n, err := strconv.ParseUint(p, 10, 63)
		if err != nil {
			return runner.Task{}, fmt.Errorf("allocation id %q: %w", id, err)
		}
		nums[i] = n
	}
	return runner.Task{AllocID: id, Job: nums[0], Task: int64(nums[1]), Rank: int(nums[2]), Attempt: nums[3]}, nil
}
