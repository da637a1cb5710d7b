package server

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"strings"
	"testing"
	"time"

	"vhpc/scheduler/fsm"
	"vhpc/scheduler/model"
)

// TestApplyWithExpiredContext: a caller whose context has ended gets the
// context's error and nothing is committed (raft.Apply reads a timeout
// <= 0 as "no timeout", so the entry would be committed with nobody
// waiting).
func TestApplyWithExpiredContext(t *testing.T) {
	ts := startServer(t, t.TempDir())
	cancelled, cancel := context.WithCancel(context.Background())
	cancel()
	expired, cancel2 := context.WithDeadline(context.Background(), time.Now().Add(-time.Second))
	defer cancel2()
	cases := []struct {
		name    string
		ctx     context.Context
		want    error // nil: committed
		applied bool
	}{
		{"live", ctxT(t), nil, true},
		{"cancelled", cancelled, context.Canceled, false},
		{"deadline passed", expired, context.DeadlineExceeded, false},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			name := strings.ReplaceAll(c.name, " ", "-")
			n := model.Node{Name: name, Hypervisor: "tcg", NUMA: []model.NUMANode{{ID: 0, MemoryMiB: 1024}}, Cores: []model.Core{{ID: 0}}}
			_, err := ts.apply(c.ctx, fsm.EntryRegisterNode, &fsm.RegisterNode{Time: time.Now().UTC(), Node: n})
			if !errors.Is(err, c.want) || (c.want == nil) != (err == nil) {
				t.Fatalf("apply: %v, want %v", err, c.want)
			}
			// Everything raft accepted before the barrier is applied after it.
			if err := ts.raft.Barrier(10 * time.Second).Error(); err != nil {
				t.Fatal(err)
			}
			if got := ts.fsm.Store().Snapshot().Node(name) != nil; got != c.applied {
				t.Errorf("node %s committed: %v, want %v", name, got, c.applied)
			}
		})
	}
}

// TestRaftTimeouts: each timeout that is set is used, each one left zero
// keeps raft's default, and combinations raft would refuse are refused
// with the fields named.
func TestRaftTimeouts(t *testing.T) {
	cases := []struct {
		name                string
		set                 Timeouts
		heartbeat, election time.Duration // what raft runs with
		err                 string        // want an error containing this
	}{
		{name: "none set: raft's defaults", heartbeat: time.Second, election: time.Second},
		{name: "only election", set: Timeouts{Election: 3 * time.Second}, heartbeat: time.Second, election: 3 * time.Second},
		{name: "only heartbeat, above the default lease", set: Timeouts{Heartbeat: 800 * time.Millisecond}, heartbeat: 800 * time.Millisecond, election: time.Second},
		{name: "all three", set: Timeouts{Heartbeat: 200 * time.Millisecond, Election: 400 * time.Millisecond, LeaderLease: 100 * time.Millisecond}, heartbeat: 200 * time.Millisecond, election: 400 * time.Millisecond},
		{name: "heartbeat below the default lease", set: Timeouts{Heartbeat: 100 * time.Millisecond, Election: 100 * time.Millisecond}, err: "LeaderLease 500ms (raft's default) is longer than Heartbeat 100ms"},
		{name: "election below heartbeat", set: Timeouts{Heartbeat: 2 * time.Second, Election: 1500 * time.Millisecond}, err: "Election 1.5s is shorter than Heartbeat 2s"},
		{name: "heartbeat above the default election", set: Timeouts{Heartbeat: 2 * time.Second}, err: "Election 1s (raft's default) is shorter than Heartbeat 2s"},
		{name: "negative", set: Timeouts{Heartbeat: -time.Second}, err: "Heartbeat is -1s; raft needs at least 5ms"},
		{name: "too short", set: Timeouts{LeaderLease: time.Millisecond}, err: "LeaderLease is 1ms; raft needs at least 5ms"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			dir := t.TempDir()
			s, err := New(Config{
				DataDir: dir, GRPCAddr: "127.0.0.1:0", RaftAddr: "127.0.0.1:0", Timeouts: c.set,
				Logger: slog.New(slog.NewTextHandler(io.Discard, nil)), RaftLogOutput: io.Discard, Insecure: true,
			})
			if c.err != "" {
				if err == nil {
					s.Close()
					t.Fatalf("New accepted %+v, want an error with %q", c.set, c.err)
				}
				if !strings.Contains(err.Error(), c.err) {
					t.Fatalf("New: %v, want an error with %q", err, c.err)
				}
				return
			}
			if err != nil {
				t.Fatalf("New: %v", err)
			}
			defer s.Close()
			rc := s.raft.ReloadableConfig()
			if rc.HeartbeatTimeout != c.heartbeat || rc.ElectionTimeout != c.election {
				t.Errorf("raft runs with heartbeat %s, election %s; want %s, %s", rc.HeartbeatTimeout, rc.ElectionTimeout, c.heartbeat, c.election)
			}
		})
	}
}
