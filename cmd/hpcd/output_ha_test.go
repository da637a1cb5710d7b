package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc"

	"vhpc/api"
	"vhpc/client"
)

// TestHAOutputSurvivesLeaderKill runs a three-member cluster of real hpcd
// processes and a real agent (pointed at all three) on this host. A job
// prints numbered lines slowly; the leader is killed with -9 while it
// runs. After the job ends, the new leader returns all 40 lines exactly
// once and in order, and the killed member, restarted, serves the same
// output from its own replicated state.
func TestHAOutputSurvivesLeaderKill(t *testing.T) {
	if testing.Short() {
		t.Skip("boots a real guest under a 3-member cluster; skipped with -short")
	}
	requireLibvirt(t)
	c := newHACluster(t, 3)
	for _, d := range []string{filepath.Dir(c.dir), c.dir} { // QEMU's user traverses into job dirs
		if err := os.Chmod(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	agentBin := goBuild(t, c.dir, "../hpc-agent")
	withGuest(t, c.dir)
	state := filepath.Join(c.dir, "agent")
	t.Cleanup(func() { destroyDomainsOf(t, state) })
	first := c.leader()
	startAgentProc(t, agentBin, "n1", state, strings.Join(c.addrs(), ","))

	cl, err := client.New(c.addrs())
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	cl.Attempts = 1000
	cl.MaxBackoff = 200 * time.Millisecond
	jobs := func(fn func(ctx context.Context, js api.JobServiceClient) error) error {
		return cl.Do(context.Background(), func(ctx context.Context, conn *grpc.ClientConn) error {
			return fn(ctx, api.NewJobServiceClient(conn))
		})
	}
	waitWithin(t, 2*time.Minute, "the node to register", func() bool {
		return jobs(func(ctx context.Context, js api.JobServiceClient) error {
			n, err := js.Nodes(ctx, &api.NodesRequest{})
			if err == nil && (len(n.GetNodes()) != 1 || n.GetNodes()[0].GetState() != "ready") {
				err = fmt.Errorf("nodes %v", n.GetNodes())
			}
			return err
		}) == nil
	})
	spec := "name: numbered\nwalltime: 10m\nresources:\n  cpusPerTask: 1\nscript: |\n  for i in $(seq 1 40); do echo line $i; sleep 0.25; done\n"
	var id uint64
	if err := jobs(func(ctx context.Context, js api.JobServiceClient) error {
		resp, err := js.Submit(ctx, &api.SubmitRequest{ClientToken: "numbered", Spec: []byte(spec)})
		id = resp.GetJobId()
		return err
	}); err != nil {
		t.Fatal(err)
	}
	get := func() *api.Job {
		var j *api.Job
		if err := jobs(func(ctx context.Context, js api.JobServiceClient) error {
			var err error
			j, err = js.Get(ctx, &api.GetJobRequest{Id: id})
			return err
		}); err != nil {
			return &api.Job{State: "unknown: " + err.Error()}
		}
		return j
	}
	// Kill the leader once part of the output is committed, mid-job.
	// The guest boots under TCG on a shared host: allow it minutes.
	waitWithin(t, 10*time.Minute, "the first lines of output", func() bool {
		out, err := readOutput(first.conn, id, false)
		return err == nil && strings.Contains(out, "line 3\n")
	})
	if j := get(); j.GetState() != "running" {
		t.Fatalf("job is %s before the kill, want running", j.GetState())
	}
	t.Logf("kill -9 leader %s mid-job", first.id)
	c.kill(first)
	next := c.leader(first)
	t.Logf("new leader %s", next.id)
	var last *api.Job
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("job when the test failed: %v", last)
		}
	})
	waitWithin(t, 10*time.Minute, "the job to complete", func() bool { last = get(); return last.GetState() == "completed" })
	if j := get(); j.GetAttempt() != 1 {
		t.Fatalf("attempt %d: the job ran again instead of finishing", j.GetAttempt())
	}

	var want strings.Builder
	for i := 1; i <= 40; i++ {
		fmt.Fprintf(&want, "line %d\n", i)
	}
	got, err := readOutput(next.conn, id, false)
	if err != nil || got != want.String() {
		t.Fatalf("output from the new leader %s (%v):\n%q\nwant lines 1..40 once, in order", next.id, err, got)
	}
	c.start(first)
	c.converged(c.sorted())
	if got, err := readOutput(first.conn, id, true); err != nil || got != want.String() {
		t.Fatalf("stale output from the restarted %s (%v): %q", first.id, err, got)
	}
}

// readOutput reads a job's whole output from one member (stale: from its
// own state), checking that chunks follow each other without holes.
func readOutput(conn *grpc.ClientConn, id uint64, stale bool) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	stream, err := api.NewJobServiceClient(conn).Logs(ctx, &api.LogsRequest{Id: id, Stale: stale})
	if err != nil {
		return "", err
	}
	var out []byte
	for {
		c, err := stream.Recv()
		if err == io.EOF {
			return string(out), nil
		}
		if err != nil {
			return string(out), err
		}
		if c.GetOffset() != int64(len(out)) {
			return string(out), fmt.Errorf("chunk at offset %d after %d bytes", c.GetOffset(), len(out))
		}
		out = append(out, c.GetData()...)
	}
}
