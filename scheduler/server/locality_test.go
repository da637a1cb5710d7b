package server

import (
	"slices"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"vhpc/api"
	"vhpc/scheduler/model"
)

// TestHeartbeatImagesSteerPlacement checks that a node's heartbeat with
// cached_images makes the leader place a job of that image there (the
// node sorting second by name, so without locality the other wins), and
// that a malformed or too long list is refused.
func TestHeartbeatImagesSteerPlacement(t *testing.T) {
	ts := startServer(t, t.TempDir())
	ctx := ctxT(t)
	registerNode(t, ts, "n1", 4)
	registerNode(t, ts, "n2", 4)
	digest := digestOf("a")
	if _, err := api.NewImageServiceClient(ts.conn).Put(ctx, &api.PutImageRequest{Ref: "physics/sim:1", Digest: digest, SizeBytes: 1 << 20, User: "ada"}); err != nil {
		t.Fatal(err)
	}

	refused := []struct {
		name   string
		images []string
		want   string
	}{
		{"not sha256", []string{"md5:abc"}, `cached_images[0]: digest "md5:abc": want sha256: and 64 lowercase hex digits`},
		{"upper-case hex", []string{digest, "sha256:" + strings.Repeat("A", 64)}, "cached_images[1]: digest"},
		{"too many", slices.Repeat([]string{digest}, model.MaxCachedImages+1), "cached_images lists 1025 digests; at most 1024"},
	}
	for _, r := range refused {
		t.Run(r.name, func(t *testing.T) {
			_, err := ts.node.Heartbeat(ctx, &api.HeartbeatRequest{Node: "n2", CachedImages: r.images})
			if status.Code(err) != codes.InvalidArgument || !strings.Contains(err.Error(), r.want) {
				t.Fatalf("err %v, want InvalidArgument with %q", err, r.want)
			}
		})
	}
	if got := ts.images.snapshot(); got != nil {
		t.Fatalf("refused heartbeats recorded images: %v", got)
	}

	if _, err := ts.node.Heartbeat(ctx, &api.HeartbeatRequest{Node: "n2", CachedImages: []string{digest}}); err != nil {
		t.Fatal(err)
	}
	spec := "name: sim\ndepartment: physics\nimage: sim:1\nresources:\n  cpusPerTask: 2\nwalltime: 5m\ncommand: [\"true\"]\n"
	res, err := ts.jobs.Submit(ctx, &api.SubmitRequest{ClientToken: "sim", Spec: []byte(spec), Filename: "job.yaml", User: "ada"})
	if err != nil {
		t.Fatal(err)
	}
	if got := res.GetJob().GetImageDigest(); got != digest {
		t.Fatalf("job image digest %q, want %q", got, digest)
	}
	id := model.JobID(res.GetJobId())
	for {
		for a := range ts.fsm.Store().Snapshot().JobAllocs(id) {
			if a.Placement.Node != "n2" {
				t.Fatalf("job placed on %s, want n2 (its cache holds the image)", a.Placement.Node)
			}
			return
		}
		select {
		case <-ctx.Done():
			t.Fatalf("job %d never placed; pending: %q", id, ts.pendingReasonOf(id))
		case <-time.After(20 * time.Millisecond):
		}
	}
}

func (ts *testServer) pendingReasonOf(id model.JobID) string {
	r, _ := ts.pendingReason(id)
	return r
}

// TestImageCachesIndex checks the digest -> nodes index the heartbeats
// keep: added and dropped digests move, an empty list forgets the node.
func TestImageCachesIndex(t *testing.T) {
	a, b, c := digestOf("a"), digestOf("b"), digestOf("c")
	steps := []struct {
		node string
		ds   []string
		want map[string][]string
	}{
		{"n1", []string{a, b}, map[string][]string{a: {"n1"}, b: {"n1"}}},
		{"n2", []string{b}, map[string][]string{a: {"n1"}, b: {"n1", "n2"}}},
		{"n0", []string{b, c}, map[string][]string{a: {"n1"}, b: {"n0", "n1", "n2"}, c: {"n0"}}},
		{"n1", []string{c}, map[string][]string{b: {"n0", "n2"}, c: {"n0", "n1"}}},
		{"n0", nil, map[string][]string{b: {"n2"}, c: {"n1"}}},
		{"n2", nil, map[string][]string{c: {"n1"}}},
		{"n1", nil, nil},
	}
	var ic imageCaches
	var prev map[string][]string
	for i, st := range steps {
		ic.set(st.node, st.ds)
		got := ic.snapshot()
		if !equalIndex(got, st.want) {
			t.Fatalf("step %d (%s %v): index %v, want %v", i, st.node, st.ds, got, st.want)
		}
		if prev != nil && i > 0 && !equalIndex(prev, steps[i-1].want) {
			t.Fatalf("step %d changed the snapshot handed out before it: %v", i, prev)
		}
		prev = got
	}
}

func equalIndex(a, b map[string][]string) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if !slices.Equal(v, b[k]) {
			return false
		}
	}
	return true
}
