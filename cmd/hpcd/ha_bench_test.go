package main

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"google.golang.org/grpc"

	"vhpc/api"
	"vhpc/client"
	"vhpc/scheduler/model"
	"vhpc/wire"
)

// BenchmarkHASubmit compares, side by side in one run, acknowledged
// submissions per second through a single member and through a 3-member
// cluster (real processes, fsync'd logs, clients spread over all members).
//
//	go test -tags libvirt_dlopen -run '^$' -bench HASubmit -benchtime 6000x ./cmd/hpcd/
func BenchmarkHASubmit(b *testing.B) {
	for _, members := range []int{1, 3} {
		b.Run(fmt.Sprintf("members=%d", members), func(b *testing.B) {
			c := newHACluster(b, members)
			c.leader()
			spec := []byte("name: bench\ncommand: [\"true\"]\n")
			const clients = 64
			var next atomic.Int64
			var wg sync.WaitGroup
			b.ResetTimer()
			for w := range clients {
				wg.Add(1)
				go func() {
					defer wg.Done()
					cl, err := client.New(c.addrs())
					if err != nil {
						b.Error(err)
						return
					}
					defer cl.Close()
					for {
						i := next.Add(1)
						if i > int64(b.N) {
							return
						}
						err := cl.Do(context.Background(), func(ctx context.Context, conn *grpc.ClientConn) error {
							_, err := client.Jobs(conn).Submit(ctx, &api.SubmitRequest{ClientToken: fmt.Sprintf("b%d-%d", w, i), Spec: spec})
							return err
						})
						if err != nil {
							b.Error(err)
							return
						}
					}
				}()
			}
			wg.Wait()
			b.StopTimer()
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "jobs/s")
		})
	}
}

// BenchmarkFailover kills the leader of a 3-member cluster, rounds times,
// and reports the time from the kill to the first committed write and to
// the first job placed by the new leader (default Raft timeouts).
//
//	go test -tags libvirt_dlopen -run '^$' -bench Failover -benchtime 1x ./cmd/hpcd/
func BenchmarkFailover(b *testing.B) {
	const rounds = 10
	c := newHACluster(b, 3)
	c.leader()
	cl, err := client.New(c.addrs())
	if err != nil {
		b.Fatal(err)
	}
	defer cl.Close()
	cl.MaxBackoff = 20 * time.Millisecond
	cl.Backoff = 10 * time.Millisecond
	cl.Attempts = 100000
	ctx := context.Background()
	// A node with room for every round's job.
	node := &model.Node{Name: "bench", Partition: "default", ScratchMiB: 1 << 20, NUMA: []model.NUMANode{{ID: 0, MemoryMiB: 1 << 20}}}
	for i := range 512 {
		node.Cores = append(node.Cores, model.Core{ID: i, PhysicalCore: i})
	}
	if err := cl.Do(ctx, func(ctx context.Context, conn *grpc.ClientConn) error {
		_, err := client.Nodes(conn).Register(ctx, &api.RegisterRequest{Node: wire.NodeToProto(node)})
		return err
	}); err != nil {
		b.Fatal(err)
	}
	spec := []byte("name: f\nresources:\n  cpusPerTask: 1\n  memory: 64MiB\n  scratch: 64MiB\ncommand: [\"true\"]\n")
	var commit, placed []time.Duration
	b.ResetTimer()
	for r := range rounds {
		lead := c.leader()
		// Keep the node alive across the election.
		_ = cl.Do(ctx, func(ctx context.Context, conn *grpc.ClientConn) error {
			_, err := client.Nodes(conn).Heartbeat(ctx, &api.HeartbeatRequest{Node: "bench"})
			return err
		})
		t0 := time.Now()
		c.kill(lead)
		var id uint64
		for {
			err := cl.Do(ctx, func(ctx context.Context, conn *grpc.ClientConn) error {
				resp, err := client.Jobs(conn).Submit(ctx, &api.SubmitRequest{ClientToken: fmt.Sprintf("f%d", r), Spec: spec})
				if err == nil {
					id = resp.GetJobId()
				}
				return err
			})
			if err == nil {
				break
			}
		}
		commit = append(commit, time.Since(t0))
		for {
			var j *api.Job
			err := cl.Do(ctx, func(ctx context.Context, conn *grpc.ClientConn) error {
				var err error
				j, err = client.Jobs(conn).Get(ctx, &api.GetJobRequest{Id: id})
				return err
			})
			if err == nil && j.GetState() == "scheduled" {
				break
			}
			time.Sleep(5 * time.Millisecond)
		}
		placed = append(placed, time.Since(t0))
		c.start(lead)
		c.converged(c.sorted())
	}
	b.StopTimer()
	pct := func(d []time.Duration, p float64) float64 {
		s := slices.Clone(d)
		slices.Sort(s)
		return s[min(len(s)-1, int(p*float64(len(s))))].Seconds()
	}
	b.ReportMetric(pct(commit, 0.5), "commit-p50-s")
	b.ReportMetric(pct(commit, 0.99), "commit-p99-s")
	b.ReportMetric(pct(placed, 0.5), "placed-p50-s")
	b.ReportMetric(pct(placed, 0.99), "placed-p99-s")
	b.Logf("kill -> first commit: %v", commit)
	b.Logf("kill -> first placement: %v", placed)
}
