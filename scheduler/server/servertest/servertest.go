// Package servertest starts a real one-member hpcd (Raft on loopback, gRPC
// on a free port, data in a temp dir) inside a test, for the tests of the
// packages that talk to the master: hpcsub, the agent. It waits until the
// member leads and has passed its barrier, and stops it at cleanup.
package servertest

import (
	"context"
	"io"
	"log/slog"
	"testing"
	"time"

	"vhpc/scheduler/server"
)

// Start runs a master; mod, when given, adjusts the configuration first.
func Start(t testing.TB, mod func(*server.Config)) *server.Server {
	t.Helper()
	cfg := server.Config{
		ID: "test", DataDir: t.TempDir(), GRPCAddr: "127.0.0.1:0", RaftAddr: "127.0.0.1:0",
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil)), RaftLogOutput: io.Discard,
		Timeouts: server.Timeouts{Heartbeat: 100 * time.Millisecond, Election: 100 * time.Millisecond, LeaderLease: 100 * time.Millisecond},
		Insecure: true,
	}
	if mod != nil {
		mod(&cfg)
	}
	s, err := server.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	go func() { _ = s.Run(context.Background()) }()
	t.Cleanup(s.Close)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if err := s.WaitReady(ctx); err != nil {
		t.Fatal(err)
	}
	return s
}
