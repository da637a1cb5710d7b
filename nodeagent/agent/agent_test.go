package agent

import (
	"context"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	"vhpc/api"
	"vhpc/client"
	"vhpc/guestproto"
	"vhpc/jobspec"
	"vhpc/nodeagent/runner"
	"vhpc/nodeagent/vm"
	"vhpc/scheduler/model"
	"vhpc/scheduler/server"
	"vhpc/scheduler/server/servertest"
)

// fakeRunner stands in for the libvirt runner: each task "runs" until the
// test releases it with an exit code or its context ends. The master, the
// gRPC streams and the agent loop around it are real.
type fakeRunner struct {
	dir string
	mu  sync.Mutex
	// running holds a release channel per alloc id while a task runs.
	running map[string]chan int
	live    []string // what Running reports (guests left from before)
	adopted []string
	removed []string
	started chan string
	ended   chan string // "<alloc>:<state>" as each task returns
	// imageDirs is Task.ImageDir of each task run.
	imageDirs map[string]string
}

func newFakeRunner(t *testing.T) *fakeRunner {
	return &fakeRunner{dir: t.TempDir(), running: map[string]chan int{}, started: make(chan string, 16), ended: make(chan string, 16), imageDirs: map[string]string{}}
}

func (f *fakeRunner) Hypervisor() string                        { return "tcg" }
func (f *fakeRunner) DomainName(t runner.Task) string           { return "vhpc-fake-" + t.AllocID }
func (f *fakeRunner) LogPath(id string) string                  { return filepath.Join(f.dir, id+".log") }
func (f *fakeRunner) GPUSamplesPath(id string) string           { return filepath.Join(f.dir, id+".gpu.jsonl") }
func (f *fakeRunner) RemoveLogs(id string) error                { return os.Remove(f.LogPath(id)) }
func (f *fakeRunner) Running(context.Context) ([]string, error) { return f.live, nil }

func (f *fakeRunner) Remove(_ context.Context, t runner.Task) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.removed = append(f.removed, t.AllocID)
	return nil
}

func (f *fakeRunner) Run(ctx context.Context, t runner.Task, progress func(string)) (runner.Result, error) {
	return f.run(ctx, t, progress)
}

func (f *fakeRunner) Adopt(ctx context.Context, t runner.Task, progress func(string)) (runner.Result, error) {
	f.mu.Lock()
	f.adopted = append(f.adopted, t.AllocID)
	f.mu.Unlock()
	return f.run(ctx, t, progress)
}

func (f *fakeRunner) run(ctx context.Context, t runner.Task, progress func(string)) (runner.Result, error) {
	release := make(chan int, 1)
	f.mu.Lock()
	f.running[t.AllocID] = release
	f.imageDirs[t.AllocID] = t.ImageDir
	f.mu.Unlock()
	progress(runner.PhaseBooting)
	if err := os.WriteFile(f.LogPath(t.AllocID), []byte("out of "+t.AllocID+" frames "+t.Env["VHPC_FRAME_FIRST"]+"\n"), 0o644); err != nil {
		return runner.Result{}, err
	}
	progress(runner.PhaseRunning)
	if len(t.GPUs) > 0 { // the guest's nvidia-smi samples, 10 s apart
		at := time.Unix(1700000000, 0)
		var lines []byte
		for i := range 2 {
			b, _ := guestproto.EncodeGPUSample(guestproto.GPUSample{UUID: "GPU-guest", PCIBusID: vm.GuestGPUAddress(0), Model: "NVIDIA H100 80GB HBM3", Time: at.Add(time.Duration(i) * 10 * time.Second), UtilizationPct: 50, PowerW: 300})
			lines = append(lines, b...)
		}
		if err := os.WriteFile(f.GPUSamplesPath(t.AllocID), lines, 0o644); err != nil {
			return runner.Result{}, err
		}
	}
	f.started <- t.AllocID
	var res runner.Result
	select {
	case code := <-release:
		res = runner.Result{State: model.AllocCompleted, RunSeconds: 1}
		if code != 0 {
			res = runner.Result{State: model.AllocFailed, ExitCode: code, Reason: "exit code"}
		}
	case <-ctx.Done():
		res = runner.Result{State: model.AllocCancelled, Reason: "destroyed"}
	}
	f.ended <- t.AllocID + ":" + string(res.State)
	return res, nil
}

func (f *fakeRunner) release(id string, code int) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.running[id] <- code
}

func startMaster(t *testing.T) *server.Server {
	return servertest.Start(t, func(c *server.Config) {
		c.HeartbeatInterval, c.Lease = 200*time.Millisecond, 2*time.Second
	})
}

func testNode() model.Node {
	n := model.Node{Name: "n1", Partition: "default", ScratchMiB: 10 << 10, NUMA: []model.NUMANode{{ID: 0, MemoryMiB: 8192}}}
	for i := range 4 {
		n.Cores = append(n.Cores, model.Core{ID: i, PhysicalCore: i})
	}
	return n
}

type harness struct {
	t      *testing.T
	master *server.Server
	runner *fakeRunner
	jobs   api.JobServiceClient
	cl     *client.Client
	stop   context.CancelFunc
	done   chan struct{}
}

func startAgent(t *testing.T, m *server.Server, r *fakeRunner, fence time.Duration) *harness {
	return startAgentWith(t, m, r, func(c *Config) { c.FenceAfter = fence })
}

// startAgentWith is startAgent with the configuration adjusted by mod.
func startAgentWith(t *testing.T, m *server.Server, r *fakeRunner, mod func(*Config)) *harness {
	t.Helper()
	cl, err := client.New([]string{m.GRPCAddr()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(cl.Close)
	cfg := Config{Node: testNode(), Client: cl, Runner: r, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))}
	mod(&cfg)
	a, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	ctx, stop := context.WithCancel(context.Background())
	h := &harness{t: t, master: m, runner: r, cl: cl, stop: stop, done: make(chan struct{})}
	go func() { defer close(h.done); _ = a.Run(ctx) }()
	t.Cleanup(func() { stop(); <-h.done })
	conn := clientConn(t, m)
	h.jobs = api.NewJobServiceClient(conn)
	h.waitFor("the node to register", func() bool {
		n, err := h.jobs.Nodes(context.Background(), &api.NodesRequest{})
		return err == nil && len(n.GetNodes()) == 1 && n.GetNodes()[0].GetState() == "ready"
	})
	return h
}

func clientConn(t *testing.T, m *server.Server) *grpc.ClientConn {
	t.Helper()
	conn, err := grpc.NewClient(m.GRPCAddr(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	return conn
}

// waitFor polls a condition of the real master with a deadline.
func (h *harness) waitFor(what string, cond func() bool) {
	h.t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			h.t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func (h *harness) submit(spec string) uint64 {
	h.t.Helper()
	resp, err := h.jobs.Submit(context.Background(), &api.SubmitRequest{ClientToken: spec, Spec: []byte(spec)})
	if err != nil {
		h.t.Fatal(err)
	}
	return resp.GetJobId()
}

func (h *harness) job(id uint64) *api.Job {
	j, err := h.jobs.Get(context.Background(), &api.GetJobRequest{Id: id})
	if err != nil {
		h.t.Fatal(err)
	}
	return j
}

func (h *harness) started() string {
	h.t.Helper()
	select {
	case id := <-h.runner.started:
		return id
	case <-time.After(20 * time.Second):
		h.t.Fatal("no task started")
		return ""
	}
}

const oneCore = "name: t\nresources:\n  cpusPerTask: 1\ncommand: [\"true\"]\n"

func TestRunReportAndLogs(t *testing.T) {
	cases := []struct {
		name      string
		exit      int
		wantState string
	}{
		{"completes", 0, "completed"},
		{"fails with its exit code", 7, "failed"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			h := startAgent(t, startMaster(t), newFakeRunner(t), 0)
			id := h.submit(oneCore)
			alloc := h.started()
			h.waitFor("running", func() bool { return h.job(id).GetState() == "running" })
			h.runner.release(alloc, c.exit)
			h.waitFor("the end", func() bool { return h.job(id).GetState() == c.wantState })
			if j := h.job(id); int(j.GetExitCode()) != c.exit {
				t.Errorf("exit code %d, want %d", j.GetExitCode(), c.exit)
			}
			stream, err := h.jobs.Logs(context.Background(), &api.LogsRequest{Id: id})
			if err != nil {
				t.Fatal(err)
			}
			chunk, err := stream.Recv()
			if err != nil || string(chunk.GetData()) != "out of "+alloc+" frames \n" {
				t.Fatalf("logs: %q %v", chunk.GetData(), err)
			}
		})
	}
}

func TestCancelStopsTheGuest(t *testing.T) {
	h := startAgent(t, startMaster(t), newFakeRunner(t), 0)
	id := h.submit(oneCore)
	h.started()
	if _, err := h.jobs.Cancel(context.Background(), &api.CancelJobRequest{Id: id}); err != nil {
		t.Fatal(err)
	}
	h.waitFor("the allocation to end cancelled", func() bool {
		j := h.job(id)
		return j.GetState() == "cancelled" && len(j.GetAllocations()) == 1 && j.GetAllocations()[0].GetState() == "cancelled"
	})
}

func TestRestartAdoptsRunningGuestsAndRemovesOrphans(t *testing.T) {
	m := startMaster(t)
	r := newFakeRunner(t)
	h := startAgent(t, m, r, 0)
	id := h.submit(oneCore)
	alloc := h.started()
	h.waitFor("running", func() bool { return h.job(id).GetState() == "running" })
	h.stop()
	<-h.done

	// A new agent finds the guest (and a stray one) still there.
	r2 := newFakeRunner(t)
	r2.live = []string{alloc, "99.0.0.1"}
	h2 := startAgent(t, m, r2, 0)
	if got := h2.started(); got != alloc {
		t.Fatalf("started %s, want the adopted %s", got, alloc)
	}
	h2.runner.release(alloc, 0)
	h2.waitFor("the adopted job to complete", func() bool { return h2.job(id).GetState() == "completed" })
	r2.mu.Lock()
	defer r2.mu.Unlock()
	if !slices.Equal(r2.adopted, []string{alloc}) {
		t.Errorf("adopted %v, want [%s]", r2.adopted, alloc)
	}
	if !slices.Equal(r2.removed, []string{"99.0.0.1"}) {
		t.Errorf("removed %v, want the orphan 99.0.0.1", r2.removed)
	}
	if j := h2.job(id); j.GetAttempt() != 1 {
		t.Errorf("attempt %d: the job ran twice", j.GetAttempt())
	}
}

func TestRestartWithoutTheGuestReportsItLost(t *testing.T) {
	m := startMaster(t)
	h := startAgent(t, m, newFakeRunner(t), 0)
	id := h.submit("name: t\nretries: 1\nresources:\n  cpusPerTask: 1\ncommand: [\"true\"]\n")
	h.started()
	h.waitFor("running", func() bool { return h.job(id).GetState() == "running" })
	h.stop()
	<-h.done
	h2 := startAgent(t, m, newFakeRunner(t), 0) // the host rebooted: no guest
	h2.waitFor("a second attempt", func() bool { return h2.job(id).GetAttempt() == 2 })
	if j := h2.job(id); j.GetRestarts() != 1 {
		t.Errorf("restarts %d, want 1", j.GetRestarts())
	}
}

func TestAgentFencesItsGuestsWhenTheMasterIsGone(t *testing.T) {
	m := startMaster(t)
	h := startAgent(t, m, newFakeRunner(t), 500*time.Millisecond)
	h.submit(oneCore)
	alloc := h.started()
	m.Close()
	select {
	case got := <-h.runner.ended:
		if got != alloc+":cancelled" {
			t.Fatalf("task ended as %s, want %s:cancelled (fenced)", got, alloc)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("the agent kept its guest running with no master reachable")
	}
}

func TestTaskForArrayFrames(t *testing.T) {
	parsed, err := jobspec.Load("r.yaml", []byte("name: r\nscript: \"true\"\narray:\n  frames: 1-10:3\n  chunk: 2\n"))
	if err != nil {
		t.Fatal(err)
	}
	js, err := parsed.CanonicalJSON()
	if err != nil {
		t.Fatal(err)
	}
	spec := string(js)
	cases := []struct {
		task        int64
		first, last string
	}{
		{0, "1", "4"},  // frames 1, 4
		{1, "7", "10"}, // frames 7, 10
	}
	for _, c := range cases {
		task, err := taskFor(&api.Allocation{Id: "1.0.0.1", Job: 1, Task: c.task, Attempt: 1, SpecJson: spec, Cores: []int32{2}}, nil, "", nil)
		if err != nil {
			t.Fatal(err)
		}
		if task.Env["VHPC_FRAME_FIRST"] != c.first || task.Env["VHPC_FRAME_LAST"] != c.last || task.Env["VHPC_FRAME_STEP"] != "3" {
			t.Errorf("task %d frames %s..%s step %s, want %s..%s step 3", c.task, task.Env["VHPC_FRAME_FIRST"], task.Env["VHPC_FRAME_LAST"], task.Env["VHPC_FRAME_STEP"], c.first, c.last)
		}
		if len(task.Placement.Cores) != 1 || task.Placement.Cores[0] != 2 {
			t.Errorf("cores %v", task.Placement.Cores)
		}
	}
	if _, err := taskFor(&api.Allocation{Id: "x", SpecJson: `{"name":"<bad>"}`}, nil, "", nil); err == nil {
		t.Error("an invalid spec from the master was accepted")
	}
}
