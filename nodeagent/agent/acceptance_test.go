package agent

import (
	"context"
	"os"
	"testing"
	"time"

	"vhpc/api"
	"vhpc/hpcbench"
)

// TestAcceptanceRunsOnTheHostAfterTheJobs is the CPU path end to end: an
// operator starts an acceptance run on a node with a running job; the
// node is drained, the agent waits for the job to end, runs hpcbench's
// CPU workloads on the host (HostSuite, small sizes) and reports; the
// master, with no other node of the model and no reference, accepts the
// node and returns it to service, keeping the results.
func TestAcceptanceRunsOnTheHostAfterTheJobs(t *testing.T) {
	suite := &HostSuite{Root: os.DirFS("/"), Timing: hpcbench.Timing{MinTime: time.Millisecond, MinReps: 1, MaxReps: 2}}
	h := startAgentWith(t, startMaster(t), newFakeRunner(t), func(c *Config) { c.Acceptance = suite })
	id := h.submit(oneCore)
	alloc := h.started()
	h.waitFor("running", func() bool { return h.job(id).GetState() == "running" })

	nodes := api.NewNodeServiceClient(clientConn(t, h.master))
	n, err := nodes.StartAcceptance(context.Background(), &api.StartAcceptanceRequest{Node: "n1", Workloads: "dgemm,stream-triad", Size: "small"})
	if err != nil {
		t.Fatal(err)
	}
	if n.GetState() != "draining" || n.GetReason() != "acceptance run 1 pending" {
		t.Fatalf("pending: %s %q", n.GetState(), n.GetReason())
	}
	node := func() *api.Node {
		ns, err := h.jobs.Nodes(context.Background(), &api.NodesRequest{})
		if err != nil {
			t.Fatal(err)
		}
		return ns.GetNodes()[0]
	}
	time.Sleep(100 * time.Millisecond) // the agent must not run the suite while the job runs
	if node().GetAcceptance() != nil {
		t.Fatal("acceptance ran while a job was running")
	}
	h.runner.release(alloc, 0)
	h.waitFor("the acceptance results", func() bool { return node().GetAcceptance().GetRunId() == 1 })
	got := node()
	if got.GetState() != "ready" || got.GetReason() != "" || got.GetAcceptanceRun() != nil {
		t.Fatalf("after a passing run: %s %q %v", got.GetState(), got.GetReason(), got.GetAcceptanceRun())
	}
	res := got.GetAcceptance().GetResults()
	if len(res) != 2 || res[0].GetSubject() != "cpu" || res[0].GetModel() == "" || res[0].GetValue() <= 0 || res[0].GetError() != "" {
		t.Fatalf("results %v", res)
	}
}
