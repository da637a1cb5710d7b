package server

import (
	"context"
	"io"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"

	"vhpc/api"
	"vhpc/jobspec"
	"vhpc/scheduler/model"
	"vhpc/wire"
)

const helloSpec = `name: hello
resources:
  cpusPerTask: 2
  memory: 512MiB
walltime: 5m
command: ["/bin/echo", "hi"]
`

type testServer struct {
	*Server
	conn *grpc.ClientConn
	jobs api.JobServiceClient
	node api.NodeServiceClient
	done chan error
}

func startServer(t testing.TB, dir string) *testServer {
	t.Helper()
	ts := runMember(t, Config{ID: "t1", DataDir: dir, HTTPAddr: "127.0.0.1:0", RaftAddr: "127.0.0.1:0"})
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if err := ts.WaitReady(ctx); err != nil {
		t.Fatal(err)
	}
	return ts
}

// runMember starts a member with cfg plus the tests' defaults (gRPC on a
// free port, quiet logs, fast Raft timeouts) and clients of its API; it
// stops when the test ends.
func runMember(t testing.TB, cfg Config) *testServer {
	t.Helper()
	cfg.GRPCAddr = "127.0.0.1:0"
	cfg.Logger, cfg.RaftLogOutput = slog.New(slog.NewTextHandler(io.Discard, nil)), io.Discard
	cfg.Timeouts = Timeouts{Heartbeat: 100 * time.Millisecond, Election: 100 * time.Millisecond, LeaderLease: 100 * time.Millisecond}
	cfg.Insecure = cfg.Security == nil // security_test.go runs secure members
	s, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	ts := &testServer{Server: s, done: make(chan error, 1)}
	go func() { ts.done <- s.Run(context.Background()) }()
	ts.conn, err = grpc.NewClient(s.GRPCAddr(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	ts.jobs = api.NewJobServiceClient(ts.conn)
	ts.node = api.NewNodeServiceClient(ts.conn)
	t.Cleanup(ts.stop)
	return ts
}

func (ts *testServer) stop() {
	ts.conn.Close()
	ts.Close()
}

func ctxT(t testing.TB) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	t.Cleanup(cancel)
	return ctx
}

func TestSubmitIsIdempotentPerToken(t *testing.T) {
	ts := startServer(t, t.TempDir())
	ctx := ctxT(t)
	req := &api.SubmitRequest{ClientToken: "tok-1", Spec: []byte(helloSpec), Filename: "hello.yaml", User: "ada"}
	first, err := ts.jobs.Submit(ctx, req)
	if err != nil {
		t.Fatal(err)
	}
	again, err := ts.jobs.Submit(ctx, req)
	if err != nil {
		t.Fatal(err)
	}
	if first.GetJobId() != 1 || again.GetJobId() != 1 || !again.GetDuplicate() || first.GetDuplicate() {
		t.Fatalf("first=%d dup=%v, retry=%d dup=%v; want job 1 both times, the retry marked duplicate",
			first.GetJobId(), first.GetDuplicate(), again.GetJobId(), again.GetDuplicate())
	}
	if n := ts.fsm.Store().Snapshot().JobCount(); n != 1 {
		t.Fatalf("%d jobs stored, want 1", n)
	}
	got, err := ts.jobs.Get(ctx, &api.GetJobRequest{Id: 1})
	if err != nil {
		t.Fatal(err)
	}
	if got.GetName() != "hello" || got.GetUser() != "ada" || got.GetResources().GetCpusPerTask() != 2 || got.GetWalltimeSeconds() != 300 {
		t.Errorf("stored job = %v", got)
	}
}

// TestBadSpecsAreRefusedWithTheClientsMessages checks that the server
// repeats every check and answers with jobspec's own messages, and that a
// refused spec changes nothing.
func TestBadSpecsAreRefusedWithTheClientsMessages(t *testing.T) {
	ts := startServer(t, t.TempDir())
	ctx := ctxT(t)
	files, err := filepath.Glob("../../examples/bad/*")
	if err != nil || len(files) == 0 {
		t.Fatalf("no bad examples found: %v", err)
	}
	for _, f := range files {
		t.Run(filepath.Base(f), func(t *testing.T) {
			data, err := os.ReadFile(f)
			if err != nil {
				t.Fatal(err)
			}
			_, want := jobspec.Load(filepath.Base(f), data)
			if want == nil {
				t.Skipf("%s is valid to jobspec (a server-side check example)", f)
			}
			_, err = ts.jobs.Submit(ctx, &api.SubmitRequest{ClientToken: "x" + f, Spec: data, Filename: filepath.Base(f)})
			if status.Code(err) != codes.InvalidArgument {
				t.Fatalf("code %v (%v), want InvalidArgument", status.Code(err), err)
			}
			if msg := status.Convert(err).Message(); msg != want.Error() {
				t.Errorf("server said\n%s\nclient says\n%s", msg, want.Error())
			}
		})
	}
	if n := ts.fsm.Store().Snapshot().JobCount(); n != 0 {
		t.Fatalf("%d jobs stored after only bad submissions", n)
	}
	_, err = ts.jobs.Submit(ctx, &api.SubmitRequest{Spec: []byte(helloSpec + "dependsOn:\n  - type: afterok\n    jobs: [42]\n")})
	if status.Code(err) != codes.InvalidArgument || !strings.Contains(err.Error(), "job 42 does not exist") {
		t.Errorf("dependency on a missing job: %v", err)
	}
}

func TestRestartKeepsEveryAcknowledgedJob(t *testing.T) {
	dir := t.TempDir()
	ts := startServer(t, dir)
	ctx := ctxT(t)
	const n = 25
	for i := range n {
		if _, err := ts.jobs.Submit(ctx, &api.SubmitRequest{ClientToken: "t" + string(rune('a'+i)), Spec: []byte(helloSpec)}); err != nil {
			t.Fatal(err)
		}
	}
	ts.stop()
	ts2 := startServer(t, dir)
	for id := uint64(1); id <= n; id++ {
		if _, err := ts2.jobs.Get(ctx, &api.GetJobRequest{Id: id}); err != nil {
			t.Fatalf("job %d lost across restart: %v", id, err)
		}
	}
	res, err := ts2.jobs.Submit(ctx, &api.SubmitRequest{ClientToken: "ta", Spec: []byte(helloSpec)})
	if err != nil || res.GetJobId() != 1 || !res.GetDuplicate() {
		t.Fatalf("token from before the restart: %v %v; want job 1 as a duplicate", res, err)
	}
}

// fakeNode registers a small node through the real NodeService.
func registerNode(t *testing.T, ts *testServer, name string, cores int) {
	t.Helper()
	n := &model.Node{Name: name, Hypervisor: "tcg", ScratchMiB: 10 << 10, NUMA: []model.NUMANode{{ID: 0, MemoryMiB: 4096}}}
	for i := range cores {
		n.Cores = append(n.Cores, model.Core{ID: i, PhysicalCore: i})
	}
	if _, err := ts.node.Register(ctxT(t), &api.RegisterRequest{Node: wire.NodeToProto(n)}); err != nil {
		t.Fatal(err)
	}
}

// submitAndPlace watches node's allocations through nodes, submits spec
// through jobs and returns the first allocation the scheduler places.
func submitAndPlace(t *testing.T, nodes api.NodeServiceClient, node string, jobs api.JobServiceClient, token, spec string) *api.Allocation {
	t.Helper()
	ctx := ctxT(t)
	watch, err := nodes.WatchAllocations(ctx, &api.WatchAllocationsRequest{Node: node})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := jobs.Submit(ctx, &api.SubmitRequest{ClientToken: token, Spec: []byte(spec)}); err != nil {
		t.Fatal(err)
	}
	for {
		set, err := watch.Recv()
		if err != nil {
			t.Fatal(err)
		}
		if len(set.GetAllocations()) > 0 {
			return set.GetAllocations()[0]
		}
	}
}

// TestJobFlowsThroughSchedulerAndAgentAPI drives one job from submit to
// completion through the leader's real scheduling loop, with the test
// playing the agent over gRPC.
func TestJobFlowsThroughSchedulerAndAgentAPI(t *testing.T) {
	ts := startServer(t, t.TempDir())
	ctx := ctxT(t)
	registerNode(t, ts, "n1", 4)
	alloc := submitAndPlace(t, ts.node, "n1", ts.jobs, "flow", helloSpec)
	if alloc.GetJob() != 1 || len(alloc.GetCores()) != 2 || alloc.GetDesired() != "run" || !strings.Contains(alloc.GetSpecJson(), "hello") {
		t.Fatalf("allocation = %v", alloc)
	}
	jw, err := ts.jobs.Watch(ctx, &api.WatchJobRequest{Id: 1})
	if err != nil {
		t.Fatal(err)
	}
	// A report from an attempt that is not the allocation's is refused.
	_, err = ts.node.UpdateAllocation(ctx, &api.UpdateAllocationRequest{AllocId: alloc.GetId(), Attempt: alloc.GetAttempt() + 1, State: "running", Node: "n1"})
	if status.Code(err) != codes.FailedPrecondition {
		t.Fatalf("report with a wrong attempt: %v, want FailedPrecondition", err)
	}
	for _, st := range []string{"running", "completed"} {
		if _, err := ts.node.UpdateAllocation(ctx, &api.UpdateAllocationRequest{AllocId: alloc.GetId(), Attempt: alloc.GetAttempt(), State: st, Node: "n1"}); err != nil {
			t.Fatalf("report %s: %v", st, err)
		}
	}
	var last *api.JobEvent
	for {
		ev, err := jw.Recv()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		last = ev
	}
	if last == nil || last.GetJob().GetState() != "completed" {
		t.Fatalf("watch ended with %v, want completed", last)
	}
	nodes, err := ts.jobs.Nodes(ctx, &api.NodesRequest{})
	if err != nil || len(nodes.GetNodes()) != 1 || nodes.GetNodes()[0].GetUsedCores() != 0 {
		t.Fatalf("nodes after the job: %v %v; want n1 with nothing used", nodes, err)
	}
}

func TestCancelAndMetrics(t *testing.T) {
	ts := startServer(t, t.TempDir())
	ctx := ctxT(t)
	if _, err := ts.jobs.Submit(ctx, &api.SubmitRequest{ClientToken: "c", Spec: []byte(helloSpec)}); err != nil {
		t.Fatal(err)
	}
	j, err := ts.jobs.Cancel(ctx, &api.CancelJobRequest{Id: 1})
	if err != nil || j.GetState() != "cancelled" {
		t.Fatalf("cancel: %v %v", j, err)
	}
	if _, err := ts.jobs.Cancel(ctx, &api.CancelJobRequest{Id: 7}); status.Code(err) != codes.NotFound {
		t.Fatalf("cancel of a missing job: %v, want NotFound", err)
	}
	resp, err := http.Get("http://" + ts.HTTPAddr() + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	for _, want := range []string{`hpc_jobs{state="cancelled"} 1`, "hpc_submit_latency_seconds_count 1", "hpc_raft_commit_seconds_count", "hpc_raft_leader 1"} {
		if !strings.Contains(string(body), want) {
			t.Errorf("/metrics lacks %q", want)
		}
	}
}

func TestListPagesThroughEveryJob(t *testing.T) {
	ts := startServer(t, t.TempDir())
	ctx := ctxT(t)
	const n = 25
	for i := range n {
		if _, err := ts.jobs.Submit(ctx, &api.SubmitRequest{ClientToken: "p" + string(rune('a'+i)), Spec: []byte(helloSpec)}); err != nil {
			t.Fatal(err)
		}
	}
	seen := map[uint64]bool{}
	pages := 0
	for before := uint64(0); ; pages++ {
		resp, err := ts.jobs.List(ctx, &api.ListJobsRequest{All: true, Limit: 10, BeforeId: before})
		if err != nil {
			t.Fatal(err)
		}
		for _, j := range resp.GetJobs() {
			if seen[j.GetId()] {
				t.Fatalf("job %d on two pages", j.GetId())
			}
			if j.GetSpecJson() != "" {
				t.Fatal("lists carry the full spec; only Get should")
			}
			seen[j.GetId()] = true
		}
		if before = resp.GetNextBeforeId(); before == 0 {
			break
		}
	}
	if len(seen) != n || pages != 2 {
		t.Fatalf("saw %d jobs in %d pages, want %d in 3", len(seen), pages+1, n)
	}
}
