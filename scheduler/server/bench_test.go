package server

import (
	"context"
	"fmt"
	"sync/atomic"
	"testing"

	"vhpc/api"
)

// BenchmarkSubmit measures sustained acknowledged submissions per second
// through a one-member Raft (fsync'd BoltDB log) over real gRPC, with
// concurrent clients. Each op is one job; the reported jobs/s is the
// figure to compare with Slurm's sbatch rate (../shared/bench).
//
//	go test -run '^$' -bench Submit -benchtime 20000x ./scheduler/server/
func BenchmarkSubmit(b *testing.B) {
	for _, clients := range []int{1, 8, 128} {
		b.Run(fmt.Sprintf("clients=%d", clients), func(b *testing.B) {
			ts := startServer(b, b.TempDir())
			spec := []byte(helloSpec)
			var next atomic.Int64
			b.ResetTimer()
			errs := make(chan error, clients)
			done := make(chan struct{})
			for c := range clients {
				go func() {
					for {
						i := next.Add(1)
						if i > int64(b.N) {
							errs <- nil
							return
						}
						_, err := ts.jobs.Submit(context.Background(), &api.SubmitRequest{ClientToken: fmt.Sprintf("c%d-%d", c, i), Spec: spec})
						if err != nil {
							errs <- err
							return
						}
					}
				}()
			}
			go func() {
				for range clients {
					if err := <-errs; err != nil {
						b.Error(err)
					}
				}
				close(done)
			}()
			<-done
			b.StopTimer()
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "jobs/s")
			if n := ts.fsm.Store().Snapshot().JobCount(); n != b.N {
				b.Fatalf("%d jobs stored for %d submissions", n, b.N)
			}
		})
	}
}
