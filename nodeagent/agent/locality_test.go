package agent

import (
	"context"
	"io"
	"log/slog"
	"slices"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc"

	"vhpc/api"
	"vhpc/imagestore"
	"vhpc/scheduler/model"
)

// heartbeatRecorder is a NodeService that accepts the node and sends each
// heartbeat's cached_images on images.
type heartbeatRecorder struct {
	api.UnimplementedNodeServiceServer
	images chan []string
}

func (m *heartbeatRecorder) Register(context.Context, *api.RegisterRequest) (*api.RegisterResponse, error) {
	return &api.RegisterResponse{HeartbeatIntervalMs: 20, LeaseMs: 60_000}, nil
}

func (m *heartbeatRecorder) Heartbeat(_ context.Context, req *api.HeartbeatRequest) (*api.HeartbeatResponse, error) {
	select {
	case m.images <- req.GetCachedImages():
	default:
	}
	return &api.HeartbeatResponse{LeaseMs: 60_000}, nil
}

func (m *heartbeatRecorder) WatchAllocations(_ *api.WatchAllocationsRequest, stream grpc.ServerStreamingServer[api.AllocationSet]) error {
	if err := stream.Send(&api.AllocationSet{}); err != nil {
		return err
	}
	<-stream.Context().Done()
	return stream.Context().Err()
}

// listedImages is an ImageCache whose CachedDigests is a fixed list.
type listedImages []string

func (l listedImages) Acquire(context.Context, string, func(done, total int64)) (*imagestore.Lease, error) {
	panic("not used")
}
func (l listedImages) CachedDigests() []string { return l }

// TestHeartbeatCarriesCachedImages checks that every heartbeat reports the
// image cache's digests: none without a cache or before MasterImageCache
// opened its cache, at most model.MaxCachedImages.
func TestHeartbeatCarriesCachedImages(t *testing.T) {
	d := func(c string) string { return "sha256:" + strings.Repeat(c, 64) }
	many := make(listedImages, model.MaxCachedImages+5)
	for i := range many {
		many[i] = d("a")
	}
	tests := []struct {
		name   string
		images ImageCache
		want   []string
	}{
		{"no image cache", nil, nil},
		{"unopened master cache", &MasterImageCache{}, nil},
		{"the cache's digests", listedImages{d("a"), d("b")}, []string{d("a"), d("b")}},
		{"capped", many, many[:model.MaxCachedImages]},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			m := &heartbeatRecorder{images: make(chan []string, 1)}
			a, err := New(Config{Node: testNode(), Client: serveNodes(t, m), Runner: newFakeRunner(t),
				Logger: slog.New(slog.NewTextHandler(io.Discard, nil)), Images: tc.images})
			if err != nil {
				t.Fatal(err)
			}
			ctx, cancel := context.WithCancel(context.Background())
			done := make(chan struct{})
			go func() { defer close(done); _ = a.Run(ctx) }()
			defer func() { cancel(); <-done }()
			select {
			case got := <-m.images:
				if !slices.Equal(got, tc.want) {
					t.Fatalf("heartbeat cached_images has %d digests %.3v, want %d %.3v", len(got), got, len(tc.want), tc.want)
				}
			case <-time.After(10 * time.Second):
				t.Fatal("no heartbeat")
			}
		})
	}
}
