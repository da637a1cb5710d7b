package server

import (
	"context"
	"fmt"
	"io"
	"net"
	"path/filepath"
	"testing"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"vhpc/api"
	"vhpc/scheduler/model"
)

// startCluster starts n in-process members that bootstrap one cluster and
// returns them with the leader first, once every member's state records
// the leader's API address (followers can forward). mod, when given,
// adjusts each member's configuration (security_test.go).
func startCluster(t *testing.T, n int, mod ...func(*Config)) []*testServer {
	t.Helper()
	var peers []Peer
	for i := 1; i <= n; i++ {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		peers = append(peers, Peer{ID: fmt.Sprintf("m%d", i), Addr: l.Addr().String()})
		l.Close()
	}
	dir := t.TempDir()
	ready := make(chan *testServer, n)
	var members []*testServer
	for _, p := range peers {
		cfg := Config{ID: p.ID, DataDir: filepath.Join(dir, p.ID), RaftAddr: p.Addr, Peers: peers}
		for _, m := range mod {
			m(&cfg)
		}
		ts := runMember(t, cfg)
		members = append(members, ts)
		go func() {
			if ts.WaitReady(ctxT(t)) == nil {
				ready <- ts
			}
		}()
	}
	var leader *testServer
	select {
	case leader = <-ready:
	case <-ctxT(t).Done():
		t.Fatal("no leader")
	}
	out := []*testServer{leader}
	for _, m := range members {
		if m != leader {
			out = append(out, m)
		}
	}
	ctx := ctxT(t)
	for _, m := range out {
		for {
			changed := m.fsm.Changed()
			if rec, ok := m.fsm.Store().Snapshot().Member(leader.cfg.ID); ok && rec.GRPCAddr != "" {
				break
			}
			select {
			case <-changed:
			case <-ctx.Done():
				t.Fatalf("member %s never learned the leader's address", m.cfg.ID)
			}
		}
	}
	return out
}

// pushOne sends one chunk over its own PushLogs stream, as agents do.
func pushOne(ctx context.Context, node api.NodeServiceClient, c *api.LogChunk) (*api.PushLogsResponse, error) {
	stream, err := node.PushLogs(ctx)
	if err != nil {
		return nil, err
	}
	if err := stream.Send(c); err != nil && err != io.EOF {
		return nil, err
	}
	return stream.CloseAndRecv()
}

// readLogs reads a job's output until the stream ends (or n bytes arrived
// when n > 0, for a follow that would not end by itself).
func readLogs(t *testing.T, jobs api.JobServiceClient, req *api.LogsRequest, n int) string {
	t.Helper()
	ctx, cancel := context.WithCancel(ctxT(t))
	defer cancel()
	stream, err := jobs.Logs(ctx, req)
	if err != nil {
		t.Fatal(err)
	}
	var got []byte
	for n <= 0 || len(got) < n {
		c, err := stream.Recv()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatalf("logs %v: %v", req, err)
		}
		if c.GetOffset() != req.GetOffset()+int64(len(got)) {
			t.Fatalf("chunk at offset %d after %d bytes from %d", c.GetOffset(), len(got), req.GetOffset())
		}
		got = append(got, c.GetData()...)
	}
	return string(got)
}

// TestLogsAreReplicatedAndServedByFollowers: output pushed to a follower
// is committed through the leader; a gap is refused with the offset the
// master holds; every member serves the output (a follower relays a
// leader read, or answers a stale read from its own state).
func TestLogsAreReplicatedAndServedByFollowers(t *testing.T) {
	ms := startCluster(t, 3)
	leader, follower := ms[0], ms[1]
	ctx := ctxT(t)
	registerNode(t, follower, "n1", 4)
	al := submitAndPlace(t, leader.node, "n1", follower.jobs, "logs", helloSpec)
	chunk := func(off int64, data string) *api.LogChunk {
		return &api.LogChunk{Job: al.GetJob(), AllocId: al.GetId(), Attempt: al.GetAttempt(), Offset: off, Data: []byte(data)}
	}
	steps := []struct {
		name     string
		chunk    *api.LogChunk
		code     codes.Code
		wantHave int64 // the response's have, or the gap detail's
	}{
		{"first chunk through a follower", chunk(0, "line 1\n"), codes.OK, 7},
		{"a resend overlaps", chunk(0, "line 1\nline 2\n"), codes.OK, 14},
		{"a gap names what the master holds", chunk(30, "line 9\n"), codes.FailedPrecondition, 14},
		{"resent from have", chunk(14, "line 3\n"), codes.OK, 21},
		{"unknown allocation", &api.LogChunk{Job: al.GetJob(), AllocId: "9.0.0.1", Attempt: 1, Data: []byte("x")}, codes.NotFound, 0},
	}
	for _, st := range steps {
		resp, err := pushOne(ctx, follower.node, st.chunk)
		if status.Code(err) != st.code {
			t.Fatalf("%s: %v, want %s", st.name, err, st.code)
		}
		have := resp.GetHave()
		if st.code == codes.FailedPrecondition {
			have = -1
			for _, d := range status.Convert(err).Details() {
				if r, ok := d.(*api.PushLogsResponse); ok {
					have = r.GetHave()
				}
			}
		}
		if st.code != codes.NotFound && have != st.wantHave {
			t.Fatalf("%s: have %d, want %d", st.name, have, st.wantHave)
		}
	}
	const want = "line 1\nline 2\nline 3\n"
	if got := readLogs(t, follower.jobs, &api.LogsRequest{Id: al.GetJob()}, 0); got != want {
		t.Fatalf("leader read through a follower: %q, want %q", got, want)
	}
	if got := readLogs(t, leader.jobs, &api.LogsRequest{Id: al.GetJob(), Offset: 7}, 0); got != want[7:] {
		t.Fatalf("read from offset 7: %q", got)
	}
	// A stale read on the other follower: its own state, which catches
	// up; follow waits for the chunks to be applied there.
	if got := readLogs(t, ms[2].jobs, &api.LogsRequest{Id: al.GetJob(), Stale: true, Follow: true}, len(want)); got != want {
		t.Fatalf("stale follow on follower %s: %q, want %q", ms[2].cfg.ID, got, want)
	}
	// The job ends: a follow on a follower returns everything and ends.
	for _, st := range []string{"running", "completed"} {
		if _, err := follower.node.UpdateAllocation(ctx, &api.UpdateAllocationRequest{AllocId: al.GetId(), Attempt: al.GetAttempt(), State: st, Node: "n1"}); err != nil {
			t.Fatalf("report %s: %v", st, err)
		}
	}
	if got := readLogs(t, follower.jobs, &api.LogsRequest{Id: al.GetJob(), Follow: true}, 0); got != want {
		t.Fatalf("follow of an ended job: %q, want %q", got, want)
	}
	if s := ms[2].fsm.Store().Snapshot().AllocOutput(model.AllocID(al.GetId())); s == nil || s.Have() != 21 {
		t.Fatalf("follower %s holds %+v of the allocation's output", ms[2].cfg.ID, s)
	}
}
