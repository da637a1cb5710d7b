package client

import (
	"context"
	"errors"
	"net"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc"

	"vhpc/api"
)

// refusedAddr is a loopback address where nothing listens.
func refusedAddr(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	return addr
}

// hangUpAddr accepts connections and closes them at once: a host that is
// up but answers no gRPC (a member starting, a proxy).
func hangUpAddr(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			c.Close()
		}
	}()
	return l.Addr().String()
}

// TestFailWhenRefused: when every address refuses the connection, a CLI
// client gives up after one round with advice (no gRPC text); an agent's
// client keeps trying every round; and one address that is up keeps the
// CLI trying too.
func TestFailWhenRefused(t *testing.T) {
	cases := []struct {
		name       string
		addrs      func(t *testing.T) []string
		failFast   bool
		wantNoMstr bool
		wantCalls  int // calls made: addresses x rounds
	}{
		{name: "CLI, one address refused", addrs: func(t *testing.T) []string { return []string{refusedAddr(t)} }, failFast: true, wantNoMstr: true, wantCalls: 1},
		{name: "CLI, three addresses refused", addrs: func(t *testing.T) []string { return []string{refusedAddr(t), refusedAddr(t), refusedAddr(t)} }, failFast: true, wantNoMstr: true, wantCalls: 3},
		{name: "CLI, one of two up", addrs: func(t *testing.T) []string { return []string{refusedAddr(t), hangUpAddr(t)} }, failFast: true, wantCalls: 6},
		{name: "agent, refused", addrs: func(t *testing.T) []string { return []string{refusedAddr(t)} }, wantCalls: 3},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			addrs := tc.addrs(t)
			c, err := New(addrs)
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			c.FailWhenRefused = tc.failFast
			c.Attempts, c.Backoff, c.MaxBackoff = 3, time.Millisecond, time.Millisecond
			calls := 0
			err = c.Do(context.Background(), func(ctx context.Context, conn *grpc.ClientConn) error {
				calls++
				_, err := api.NewJobServiceClient(conn).List(ctx, &api.ListJobsRequest{})
				return err
			})
			var nm *NoMasterError
			if got := errors.As(err, &nm); got != tc.wantNoMstr {
				t.Fatalf("Do: %v; NoMasterError %v, want %v", err, got, tc.wantNoMstr)
			}
			if calls != tc.wantCalls {
				t.Errorf("%d calls, want %d", calls, tc.wantCalls)
			}
			if tc.wantNoMstr {
				msg := err.Error()
				for _, want := range append([]string{"is hpcd running? start one with `hpcd dev`, or set --addr/HPC_ADDR"}, addrs...) {
					if !strings.Contains(msg, want) {
						t.Errorf("error %q does not say %q", msg, want)
					}
				}
				if strings.Contains(msg, "rpc error") {
					t.Errorf("error %q carries gRPC text", msg)
				}
			}
		})
	}
}
