package main

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"syscall"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// listenMetrics binds --metrics-addr; an address in use says which flag
// moves it.
func listenMetrics(addr string) (net.Listener, error) {
	ln, err := net.Listen("tcp", addr)
	if errors.Is(err, syscall.EADDRINUSE) {
		return nil, fmt.Errorf("--metrics-addr %s: %w: another process (another hpc-agent?) listens there; give this agent a free address with --metrics-addr, or --metrics-addr \"\" to serve no metrics", addr, err)
	}
	if err != nil {
		return nil, fmt.Errorf("--metrics-addr %s: %w", addr, err)
	}
	return ln, nil
}

// serveMetrics serves /metrics from reg on ln. The context it returns
// ends when ctx does or when serving fails, so the agent under it stops;
// stop shuts the server down and returns the agent's result runErr, or
// the serving failure if there was one.
func serveMetrics(ctx context.Context, ln net.Listener, reg *prometheus.Registry) (context.Context, func(runErr error) error) {
	mctx, cancel := context.WithCancelCause(ctx)
	mux := http.NewServeMux()
	mux.Handle("/metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{Registry: reg}))
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second}
	addr := ln.Addr().String()
	var serveErr error
	done := make(chan struct{})
	go func() {
		defer close(done)
		if err := srv.Serve(ln); !errors.Is(err, http.ErrServerClosed) {
			serveErr = fmt.Errorf("metrics server on %s (--metrics-addr): %w", addr, err)
			cancel(serveErr)
		}
	}()
	return mctx, func(runErr error) error {
		_ = srv.Close() // Serve returns ErrServerClosed, or has already failed
		<-done
		cancel(nil)
		switch {
		case serveErr == nil:
			return runErr
		case runErr != nil && !errors.Is(runErr, context.Canceled):
			return errors.Join(serveErr, runErr)
		}
		return serveErr
	}
}
