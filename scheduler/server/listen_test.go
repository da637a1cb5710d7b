package server

import (
	"errors"
	"io"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"syscall"
	"testing"
)

// TestNewRefusesATakenAddress: a member whose gRPC, HTTP or Raft address
// is taken fails with a ListenError naming that listener, and writes
// nothing into its data dir.
func TestNewRefusesATakenAddress(t *testing.T) {
	taken, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer taken.Close()
	busy := taken.Addr().String()
	cases := []struct {
		name, listener       string
		grpc, http, raftAddr string
	}{
		{name: "gRPC", listener: "gRPC", grpc: busy, http: "127.0.0.1:0", raftAddr: "127.0.0.1:0"},
		{name: "HTTP", listener: "HTTP", grpc: "127.0.0.1:0", http: busy, raftAddr: "127.0.0.1:0"},
		{name: "Raft", listener: "Raft", grpc: "127.0.0.1:0", http: "127.0.0.1:0", raftAddr: busy},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			dir := filepath.Join(t.TempDir(), "member")
			s, err := New(Config{
				DataDir: dir, GRPCAddr: c.grpc, HTTPAddr: c.http, RaftAddr: c.raftAddr,
				Logger: slog.New(slog.NewTextHandler(io.Discard, nil)), RaftLogOutput: io.Discard, Insecure: true,
			})
			if err == nil {
				s.Close()
				t.Fatal("New started on a taken address")
			}
			var le *ListenError
			if !errors.As(err, &le) || le.Listener != c.listener || le.Addr != busy || !errors.Is(err, syscall.EADDRINUSE) {
				t.Fatalf("New: %v (%T), want a ListenError for %s on %s wrapping EADDRINUSE", err, err, c.listener, busy)
			}
			if _, err := os.Stat(dir); !errors.Is(err, os.ErrNotExist) {
				t.Errorf("the data dir was made (%v) although the %s address was taken", err, c.listener)
			}
		})
	}
}
