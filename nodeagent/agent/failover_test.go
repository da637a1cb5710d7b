package agent

import (
	"context"
	"io"
	"log/slog"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"vhpc/api"
	"vhpc/scheduler/model"
)

// breakingMaster is a NodeService whose first allocation stream breaks
// (Unavailable, as when the member it reached dies) right after it gave
// the agent an allocation; later streams carry the same allocation and
// stay open. It records the allocation's final report.
type breakingMaster struct {
	api.UnimplementedNodeServiceServer
	alloc   *api.Allocation
	mu      sync.Mutex
	watches int
	final   chan string
}

func (m *breakingMaster) Register(context.Context, *api.RegisterRequest) (*api.RegisterResponse, error) {
	return &api.RegisterResponse{HeartbeatIntervalMs: 50, LeaseMs: 60_000}, nil
}

func (m *breakingMaster) Heartbeat(context.Context, *api.HeartbeatRequest) (*api.HeartbeatResponse, error) {
	return &api.HeartbeatResponse{LeaseMs: 60_000}, nil
}

func (m *breakingMaster) WatchAllocations(_ *api.WatchAllocationsRequest, stream grpc.ServerStreamingServer[api.AllocationSet]) error {
	m.mu.Lock()
	m.watches++
	first := m.watches == 1
	m.mu.Unlock()
	if err := stream.Send(&api.AllocationSet{Allocations: []*api.Allocation{m.alloc}}); err != nil {
		return err
	}
	if first {
		return status.Error(codes.Unavailable, "member going away")
	}
	<-stream.Context().Done()
	return nil
}

func (m *breakingMaster) UpdateAllocation(_ context.Context, req *api.UpdateAllocationRequest) (*api.UpdateAllocationResponse, error) {
	if model.AllocState(req.GetState()).Terminal() {
		select {
		case m.final <- req.GetState():
		default:
		}
	}
	return &api.UpdateAllocationResponse{}, nil
}

func (m *breakingMaster) PushLogs(stream grpc.ClientStreamingServer[api.LogChunk, api.PushLogsResponse]) error {
	var have int64
	for {
		c, err := stream.Recv()
		if err == io.EOF {
			return stream.SendAndClose(&api.PushLogsResponse{Have: have})
		}
		if err != nil {
			return err
		}
		have = c.GetOffset() + int64(len(c.GetData()))
	}
}

// TestAllocationOutlivesABrokenWatchStream: an allocation started from a
// watch stream that then breaks (a master failover) keeps running, and
// its end is still reported: the allocation lives on the agent's context,
// not the stream's.
func TestAllocationOutlivesABrokenWatchStream(t *testing.T) {
	m := &breakingMaster{alloc: oneCoreAlloc(t), final: make(chan string, 1)}
	r := newFakeRunner(t)
	a, err := New(Config{Node: testNode(), Client: serveNodes(t, m), Runner: r, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); _ = a.Run(ctx) }()
	t.Cleanup(func() { cancel(); <-done })

	var id string
	select {
	case id = <-r.started:
	case <-time.After(10 * time.Second):
		t.Fatal("the allocation did not start")
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		m.mu.Lock()
		n := m.watches
		m.mu.Unlock()
		if n >= 2 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the agent did not watch again after the stream broke")
		}
		time.Sleep(10 * time.Millisecond)
	}
	r.release(id, 0)
	select {
	case st := <-m.final:
		if st != string(model.AllocCompleted) {
			t.Fatalf("final report %s, want completed", st)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("no final report after the watch stream broke and the job ended")
	}
}
