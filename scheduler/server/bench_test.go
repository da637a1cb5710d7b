package server

import (
	"context"
	"fmt"
	"path/filepath"
	"sync/atomic"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/connectivity"
	"google.golang.org/grpc/credentials/insecure"

	"vhpc/api"
	"vhpc/scheduler/model"
	"vhpc/security/pki"
	"vhpc/security/pki/pkitest"
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
			benchSubmit(b, ts, ts.jobs, clients)
		})
	}
}

// BenchmarkSubmitTLS is issue 16's cost measurement: the same submissions
// to a plaintext member and to a secure one (mTLS handshake once per
// connection, certificate verification, the ACL check, the department
// lookup and an fsync'd audit record per submission), side by side in one
// run; compare the jobs/s of each pair. conns is how many connections the
// clients share: one (every client on one HTTP/2 connection, whose TLS
// records are sealed and opened one at a time) or one per client (what
// separate hpcsub processes do).
//
//	go test -run '^$' -bench SubmitTLS -benchtime 5000x ./scheduler/server/
func BenchmarkSubmitTLS(b *testing.B) {
	for _, shape := range []struct{ clients, conns int }{{8, 1}, {128, 1}, {128, 128}} {
		for _, mode := range []string{"plaintext", "mtls"} {
			b.Run(fmt.Sprintf("clients=%d/conns=%d/%s", shape.clients, shape.conns, mode), func(b *testing.B) {
				var ts *testServer
				creds := insecure.NewCredentials()
				if mode == "plaintext" {
					ts = startServer(b, b.TempDir())
				} else {
					ca := pkitest.New(b)
					ts = runMember(b, Config{ID: "m1", DataDir: filepath.Join(b.TempDir(), "m1"), RaftAddr: "127.0.0.1:0",
						Security: &Security{TLS: ca.Reloader("server-m1")}})
					if err := ts.WaitReady(context.Background()); err != nil {
						b.Fatal(err)
					}
					if err := ts.PutUser(context.Background(), model.User{Name: "alice", Departments: []string{"default"}}); err != nil {
						b.Fatal(err)
					}
					creds = ca.Credentials(pki.Identity{Role: pki.RoleUser, Name: "alice"}).ClientCredentials()
				}
				var clients []api.JobServiceClient
				for range shape.conns {
					conn, err := grpc.NewClient(ts.GRPCAddr(), grpc.WithTransportCredentials(creds))
					if err != nil {
						b.Fatal(err)
					}
					defer conn.Close()
					waitConnected(b, conn) // the handshake is not part of a submission
					clients = append(clients, api.NewJobServiceClient(conn))
				}
				benchSubmitOn(b, ts, clients, shape.clients)
			})
		}
	}
}

// waitConnected connects conn and waits until it is ready.
func waitConnected(b *testing.B, conn *grpc.ClientConn) {
	b.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	conn.Connect()
	for st := conn.GetState(); st != connectivity.Ready; st = conn.GetState() {
		if !conn.WaitForStateChange(ctx, st) {
			b.Fatalf("connection to the member: %s", st)
		}
	}
}

// benchSubmit submits b.N jobs from clients goroutines and reports jobs/s.
func benchSubmit(b *testing.B, ts *testServer, jobs api.JobServiceClient, clients int) {
	benchSubmitOn(b, ts, []api.JobServiceClient{jobs}, clients)
}

// benchSubmitOn is benchSubmit with the goroutines spread over conns
// (goroutine c uses conns[c%len(conns)]).
func benchSubmitOn(b *testing.B, ts *testServer, conns []api.JobServiceClient, clients int) {
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
				_, err := conns[c%len(conns)].Submit(context.Background(), &api.SubmitRequest{ClientToken: fmt.Sprintf("c%d-%d", c, i), Spec: spec})
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
}
