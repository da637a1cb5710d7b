package main

import (
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// failingListener accepts nothing: Accept fails for good, as it would
// when the socket is closed under the server.
type failingListener struct{ net.Listener }

var errAcceptBroken = errors.New("accept: socket broken")

func (failingListener) Accept() (net.Conn, error) { return nil, errAcceptBroken }

func TestListenMetricsNamesTheFlag(t *testing.T) {
	taken, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer taken.Close()
	_, err = listenMetrics(taken.Addr().String())
	if err == nil {
		t.Fatal("listening on a taken address succeeded")
	}
	for _, want := range []string{"--metrics-addr " + taken.Addr().String(), "address already in use", "free address with --metrics-addr"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not say %q", err, want)
		}
	}
}

// TestServeMetrics: a serving failure ends the agent's context and is
// what the command returns; otherwise /metrics serves and the agent's
// own result is returned.
func TestServeMetrics(t *testing.T) {
	agentErr := errors.New("agent: master refused node n1")
	cases := []struct {
		name     string
		broken   bool  // Accept fails
		runErr   error // what the agent returns
		wantErrs []error
		wantText string
	}{
		{name: "serve fails", broken: true, runErr: context.Canceled, wantErrs: []error{errAcceptBroken}, wantText: "(--metrics-addr)"},
		{name: "serve fails, agent failed too", broken: true, runErr: agentErr, wantErrs: []error{errAcceptBroken, agentErr}},
		{name: "agent ends", runErr: nil},
		{name: "agent fails", runErr: agentErr, wantErrs: []error{agentErr}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			ln, err := net.Listen("tcp", "127.0.0.1:0")
			if err != nil {
				t.Fatal(err)
			}
			var l net.Listener = ln
			if c.broken {
				l = failingListener{ln}
			}
			reg := prometheus.NewRegistry()
			reg.MustRegister(prometheus.NewCounter(prometheus.CounterOpts{Name: "vhpc_test_total", Help: "test"}))
			ctx, stop := serveMetrics(context.Background(), l, reg)
			if c.broken {
				select {
				case <-ctx.Done():
				case <-time.After(10 * time.Second):
					t.Fatal("the metrics server failed and the agent's context went on")
				}
			} else {
				resp, err := http.Get("http://" + ln.Addr().String() + "/metrics")
				if err != nil {
					t.Fatal(err)
				}
				body, _ := io.ReadAll(resp.Body)
				resp.Body.Close()
				if !strings.Contains(string(body), "vhpc_test_total") {
					t.Errorf("/metrics served %q", body)
				}
				if ctx.Err() != nil {
					t.Errorf("agent context ended while metrics served: %v", context.Cause(ctx))
				}
			}
			err = stop(c.runErr)
			if len(c.wantErrs) == 0 && err != nil {
				t.Fatalf("stop: %v, want nil", err)
			}
			for _, want := range c.wantErrs {
				if !errors.Is(err, want) {
					t.Errorf("stop: %v, want it to carry %v", err, want)
				}
			}
			if errors.Is(err, context.Canceled) {
				t.Errorf("stop: %v carries context.Canceled; hpc-agent would exit 0", err)
			}
			if !strings.Contains(errText(err), c.wantText) {
				t.Errorf("stop: %v, want it to say %q", err, c.wantText)
			}
			if !c.broken {
				if _, err := net.Dial("tcp", ln.Addr().String()); err == nil {
					t.Error("the metrics server still listens after stop")
				}
			}
		})
	}
}

func errText(err error) string {
	if err == nil {
		return ""
	}
	return err.Error()
}
