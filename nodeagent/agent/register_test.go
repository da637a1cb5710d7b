package agent

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"vhpc/api"
	"vhpc/client"
	"vhpc/jobspec"
)

// scriptedMaster is a NodeService whose answers a test sets: Register
// answers from a list (the last one repeats), Heartbeat and
// WatchAllocations say the node is unknown once the first registration is
// done, so the agent must register again. It records every call.
type scriptedMaster struct {
	api.UnimplementedNodeServiceServer
	mu        sync.Mutex
	registers []error // answer of each Register call, in turn; nil accepts
	alloc     *api.Allocation
	forgot    bool // after the first registration: the node is unknown
	calls     []string
	called    chan string
}

func (m *scriptedMaster) record(call string) {
	m.calls = append(m.calls, call)
	select {
	case m.called <- call:
	default:
	}
}

func (m *scriptedMaster) Register(context.Context, *api.RegisterRequest) (*api.RegisterResponse, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	n := 0
	for _, c := range m.calls {
		if c == "register" {
			n++
		}
	}
	m.record("register")
	err := m.registers[min(n, len(m.registers)-1)]
	if err != nil {
		return nil, err
	}
	return &api.RegisterResponse{HeartbeatIntervalMs: 50, LeaseMs: 60_000}, nil
}

func (m *scriptedMaster) Heartbeat(context.Context, *api.HeartbeatRequest) (*api.HeartbeatResponse, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.record("heartbeat")
	if m.forgot {
		return nil, status.Error(codes.NotFound, `node "n1" is not registered; register first`)
	}
	return &api.HeartbeatResponse{LeaseMs: 60_000}, nil
}

func (m *scriptedMaster) WatchAllocations(_ *api.WatchAllocationsRequest, stream grpc.ServerStreamingServer[api.AllocationSet]) error {
	m.mu.Lock()
	set := &api.AllocationSet{}
	if m.alloc != nil {
		set.Allocations = []*api.Allocation{m.alloc}
	}
	m.mu.Unlock()
	if err := stream.Send(set); err != nil {
		return err
	}
	// The master then forgets the node (a new cluster): the stream ends
	// the way a master without the node answers.
	m.mu.Lock()
	m.forgot = true
	m.mu.Unlock()
	return status.Error(codes.NotFound, `node "n1" is not registered; register first`)
}

func (m *scriptedMaster) UpdateAllocation(context.Context, *api.UpdateAllocationRequest) (*api.UpdateAllocationResponse, error) {
	return &api.UpdateAllocationResponse{}, nil
}

func (m *scriptedMaster) PushLogs(stream grpc.ClientStreamingServer[api.LogChunk, api.PushLogsResponse]) error {
	for {
		if _, err := stream.Recv(); errors.Is(err, io.EOF) {
			return stream.SendAndClose(&api.PushLogsResponse{})
		} else if err != nil {
			return err
		}
	}
}

func (m *scriptedMaster) count(call string) int {
	m.mu.Lock()
	defer m.mu.Unlock()
	n := 0
	for _, c := range m.calls {
		if c == call {
			n++
		}
	}
	return n
}

// serveScripted serves m on loopback and returns an agent client for it.
func serveScripted(t *testing.T, m *scriptedMaster) *client.Client {
	t.Helper()
	m.called = make(chan string, 1)
	return serveNodes(t, m)
}

// serveNodes serves a NodeService on loopback until the test ends and
// returns an agent client for it, with short retry pauses.
func serveNodes(t *testing.T, m api.NodeServiceServer) *client.Client {
	t.Helper()
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := grpc.NewServer()
	api.RegisterNodeServiceServer(srv, m)
	go func() { _ = srv.Serve(lis) }()
	t.Cleanup(srv.Stop)
	cl, err := client.New([]string{lis.Addr().String()})
	if err != nil {
		t.Fatal(err)
	}
	cl.Backoff, cl.MaxBackoff = 10*time.Millisecond, 20*time.Millisecond
	t.Cleanup(cl.Close)
	return cl
}

// oneCoreAlloc is a pending allocation of a valid one-core job on n1.
func oneCoreAlloc(t *testing.T) *api.Allocation {
	t.Helper()
	parsed, err := jobspec.Load("t.yaml", []byte(oneCore))
	if err != nil {
		t.Fatal(err)
	}
	js, err := parsed.CanonicalJSON()
	if err != nil {
		t.Fatal(err)
	}
	return &api.Allocation{Id: "1.0.0.1", Job: 1, Attempt: 1, Node: "n1", State: "pending", Desired: "run", SpecJson: string(js), Cores: []int32{0}, MemoryMib: 512}
}

// runScripted runs an agent against m; Run's result arrives on the channel.
func runScripted(t *testing.T, m *scriptedMaster, r *fakeRunner, fence time.Duration) (*Agent, <-chan error) {
	t.Helper()
	a, err := New(Config{Node: testNode(), Client: serveScripted(t, m), Runner: r, Logger: slog.New(slog.NewTextHandler(io.Discard, nil)), FenceAfter: fence})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done, returned := make(chan error, 1), make(chan struct{})
	go func() { defer close(returned); done <- a.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		select {
		case <-returned:
		case <-time.After(10 * time.Second):
			t.Error("Run did not return after its context ended")
		}
	})
	return a, done
}

// waitRun waits for Run to return.
func waitRun(t *testing.T, done <-chan error) error {
	t.Helper()
	select {
	case err := <-done:
		return err
	case <-time.After(10 * time.Second):
		t.Fatal("Run kept going")
		return nil
	}
}

// TestRegisterRefusedAtStart: an answer that refuses the node ends Run with
// a *RefusedError carrying the master's reason after one call; a transient
// failure is retried.
func TestRegisterRefusedAtStart(t *testing.T) {
	cases := []struct {
		name    string
		answer  error
		refused bool
	}{
		{"invalid inventory", status.Error(codes.InvalidArgument, "node n1 registered 0 cores and 0 MiB of memory; an agent must report its inventory"), true},
		{"not admitted", status.Error(codes.PermissionDenied, "node n1 is not on the cluster's node list"), true},
		{"precondition", status.Error(codes.FailedPrecondition, "node n1 conflicts with a node of another department"), true},
		{"no leader yet", status.Error(codes.Unavailable, "no leader"), false},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			m := &scriptedMaster{registers: []error{c.answer}}
			a, done := runScripted(t, m, newFakeRunner(t), 0)
			if !c.refused {
				for m.count("register") < 3 {
					select {
					case <-m.called:
					case err := <-done:
						t.Fatalf("Run returned %v on a transient failure; want it to keep registering", err)
					case <-time.After(10 * time.Second):
						t.Fatal("the agent stopped registering after a transient failure")
					}
				}
				if a.Err() != nil {
					t.Errorf("Err() = %v after a transient failure, want nil", a.Err())
				}
				return
			}
			err := waitRun(t, done)
			var refused *RefusedError
			if !errors.As(err, &refused) {
				t.Fatalf("Run returned %v, want a *RefusedError", err)
			}
			want := status.Convert(c.answer)
			if refused.Code != want.Code() || refused.Reason != want.Message() || refused.Node != "n1" {
				t.Errorf("refusal %+v, want node n1, code %s, reason %q", refused, want.Code(), want.Message())
			}
			if !strings.Contains(err.Error(), want.Message()) {
				t.Errorf("error %q does not say why", err)
			}
			if !errors.Is(a.Err(), err) {
				t.Errorf("Err() = %v, want the refusal", a.Err())
			}
			if n := m.count("register"); n != 1 {
				t.Errorf("%d Register calls; a refusal must not be retried", n)
			}
		})
	}
}

// TestReregisterDoesNotBlockTheFence: the master forgets the node and
// then fails every registration. Heartbeats (each tick registering once
// again) go on, and the fence stops the guest once no master has accepted
// the node for FenceAfter.
func TestReregisterDoesNotBlockTheFence(t *testing.T) {
	m := &scriptedMaster{registers: []error{nil, status.Error(codes.Unavailable, "no leader")}, alloc: oneCoreAlloc(t)}
	r := newFakeRunner(t)
	a, done := runScripted(t, m, r, 300*time.Millisecond)
	select {
	case <-r.started:
	case <-time.After(10 * time.Second):
		t.Fatal("the allocation did not start")
	}
	select {
	case got := <-r.ended:
		if got != "1.0.0.1:cancelled" {
			t.Fatalf("task ended as %s, want 1.0.0.1:cancelled (fenced)", got)
		}
	case err := <-done:
		t.Fatalf("Run returned %v while registration failed transiently", err)
	case <-time.After(10 * time.Second):
		t.Fatalf("no fence while registration kept failing: %d heartbeats, %d registrations", m.count("heartbeat"), m.count("register"))
	}
	if a.Err() != nil {
		t.Errorf("Err() = %v, want nil (the master never refused)", a.Err())
	}
}

// TestReregisterRefused: the master forgets the node and refuses it when
// the agent registers again. Run stops the guest and returns the refusal
// (not dropped, not retried).
func TestReregisterRefused(t *testing.T) {
	refusal := status.Error(codes.InvalidArgument, "node n1 registered 0 cores and 0 MiB of memory; an agent must report its inventory")
	m := &scriptedMaster{registers: []error{nil, refusal}, alloc: oneCoreAlloc(t)}
	r := newFakeRunner(t)
	a, done := runScripted(t, m, r, 0)
	err := waitRun(t, done)
	var refused *RefusedError
	if !errors.As(err, &refused) || refused.Code != codes.InvalidArgument || !strings.Contains(err.Error(), "must report its inventory") {
		t.Fatalf("Run returned %v, want the master's refusal with its reason", err)
	}
	if !errors.Is(a.Err(), err) {
		t.Errorf("Err() = %v, want the refusal", a.Err())
	}
	if n := m.count("register"); n != 2 {
		t.Errorf("%d Register calls, want 2 (the first, and the refused one)", n)
	}
	select {
	case got := <-r.ended:
		if got != "1.0.0.1:cancelled" {
			t.Errorf("task ended as %s, want 1.0.0.1:cancelled", got)
		}
	default:
		t.Error("Run returned with the refused node's guest still running")
	}
}
