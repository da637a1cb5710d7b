package client

import (
	"context"
	"errors"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

func TestParseAddrs(t *testing.T) {
	cases := map[string][]string{
		"":                   nil,
		"a:1":                {"a:1"},
		" a:1 , ,b:2,":       {"a:1", "b:2"},
		"127.0.0.1:7070,x:1": {"127.0.0.1:7070", "x:1"},
	}
	for in, want := range cases {
		got := ParseAddrs(in)
		if len(got) != len(want) {
			t.Errorf("ParseAddrs(%q) = %v, want %v", in, got, want)
			continue
		}
		for i := range want {
			if got[i] != want[i] {
				t.Errorf("ParseAddrs(%q) = %v, want %v", in, got, want)
			}
		}
	}
	if _, err := New(nil); err == nil {
		t.Error("New with no address succeeded")
	}
}

// TestDoFailsOverAndStopsOnAnswers: Unavailable moves to the next member,
// a real answer (even an error like NotFound) is final, and the member
// that answered is tried first next time.
func TestDoFailsOverAndStopsOnAnswers(t *testing.T) {
	c, err := New([]string{"a:1", "b:2", "c:3"})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.Backoff = time.Millisecond
	var tried []string
	target := func(conn *grpc.ClientConn) string { return conn.Target() }
	err = c.Do(context.Background(), func(ctx context.Context, conn *grpc.ClientConn) error {
		tried = append(tried, target(conn))
		if target(conn) == "b:2" {
			return status.Error(codes.NotFound, "job 9 does not exist")
		}
		return status.Error(codes.Unavailable, "not the leader")
	})
	if status.Code(err) != codes.NotFound || len(tried) != 2 {
		t.Fatalf("err %v after %v; want NotFound from b:2 after trying a:1", err, tried)
	}
	tried = nil
	_ = c.Do(context.Background(), func(ctx context.Context, conn *grpc.ClientConn) error {
		tried = append(tried, target(conn))
		return nil
	})
	if len(tried) != 1 || tried[0] != "a:1" {
		// NotFound is an answer but not a success: the next call starts over.
		t.Fatalf("second call tried %v", tried)
	}
	c.Attempts = 2
	err = c.Do(context.Background(), func(ctx context.Context, conn *grpc.ClientConn) error {
		return status.Error(codes.Unavailable, "down")
	})
	var st interface{ GRPCStatus() *status.Status }
	if err == nil || !errors.As(err, &st) {
		t.Fatalf("all members down: %v", err)
	}
}
