package main

import (
	"errors"
	"fmt"
	"net"
	"strings"
	"testing"

	"vhpc/scheduler/server"
)

// TestWithFlagHint: "address already in use" names the flag that moves
// each listener; other errors pass unchanged.
func TestWithFlagHint(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	_, inUse := net.Listen("tcp", l.Addr().String())
	if inUse == nil {
		t.Fatal("a second listen on a taken port succeeded")
	}
	other := errors.New("permission denied")
	cases := []struct {
		name string
		err  error
		want string
	}{
		{"gRPC in use", &server.ListenError{Listener: "gRPC", Addr: "a:1", Err: inUse}, "give this one its own address with --addr"},
		{"HTTP in use", &server.ListenError{Listener: "HTTP", Addr: "a:1", Err: inUse}, "with --http, or --http '' to serve no /metrics"},
		{"Raft in use", &server.ListenError{Listener: "Raft", Addr: "a:1", Err: inUse}, "with --raft-addr"},
		{"Raft other", &server.ListenError{Listener: "Raft", Addr: "a:1", Err: other}, "permission denied (the address comes from --raft-addr)"},
		{"wrapped", fmt.Errorf("start: %w", &server.ListenError{Listener: "HTTP", Addr: "a:1", Err: inUse}), "--http"},
		{"not a listener", other, "permission denied"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			got := withFlagHint(c.err)
			if !strings.Contains(got.Error(), c.want) || !errors.Is(got, c.err) {
				t.Errorf("withFlagHint: %q, want it to contain %q and wrap the cause", got, c.want)
			}
		})
	}
}
