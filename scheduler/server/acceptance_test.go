package server

import (
	"strings"
	"testing"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"vhpc/api"
	"vhpc/scheduler/model"
	"vhpc/wire"
)

func cpuResults(dgemm, triad float64) []*api.AcceptanceResult {
	return []*api.AcceptanceResult{
		{Subject: "cpu", Model: "Intel Xeon Gold 6338", Workload: "dgemm", Unit: "GFLOP/s", Value: dgemm},
		{Subject: "cpu", Model: "Intel Xeon Gold 6338", Workload: "stream-triad", Unit: "GB/s", Value: triad},
	}
}

// TestAcceptanceDrainsTheSlowNodeAndReturnsIt: three nodes of one CPU
// model report; the one 30% slow is drained with a reason naming the
// workload, its value, the median and the margin (and Nodes shows it);
// a passing re-run returns it. Watch streams carry the pending run.
func TestAcceptanceDrainsTheSlowNodeAndReturnsIt(t *testing.T) {
	ts := startServer(t, t.TempDir())
	ctx := ctxT(t)
	for _, n := range []string{"node05", "node06", "node07"} {
		registerNode(t, ts, n, 4)
	}
	if _, err := ts.node.StartAcceptance(ctx, &api.StartAcceptanceRequest{Node: "node99"}); status.Code(err) != codes.NotFound {
		t.Fatalf("unknown node: %v", err)
	}
	if _, err := ts.node.StartAcceptance(ctx, &api.StartAcceptanceRequest{Node: "node05", Workloads: "dgemm,fft"}); status.Code(err) != codes.InvalidArgument {
		t.Fatalf("bad workload: %v", err)
	}
	run := func(node string, dgemm float64) *api.Node {
		t.Helper()
		n, err := ts.node.StartAcceptance(ctx, &api.StartAcceptanceRequest{Node: node})
		if err != nil {
			t.Fatal(err)
		}
		if n.GetState() != string(model.NodeDraining) || n.GetAcceptanceRun().GetId() == 0 {
			t.Fatalf("%s pending: %s %q %v", node, n.GetState(), n.GetReason(), n.GetAcceptanceRun())
		}
		watch, err := ts.node.WatchAllocations(ctx, &api.WatchAllocationsRequest{Node: node})
		if err != nil {
			t.Fatal(err)
		}
		set, err := watch.Recv()
		if err != nil || set.GetAcceptance().GetId() != n.GetAcceptanceRun().GetId() {
			t.Fatalf("watch: %v %v", set, err)
		}
		out, err := ts.node.ReportAcceptance(ctx, &api.AcceptanceReport{Node: node, RunId: n.GetAcceptanceRun().GetId(), Results: cpuResults(dgemm, 50)})
		if err != nil {
			t.Fatal(err)
		}
		if out.GetAcceptanceRun() != nil || out.GetAcceptance().GetRunId() != n.GetAcceptanceRun().GetId() {
			t.Fatalf("%s after report: %v %v", node, out.GetAcceptanceRun(), out.GetAcceptance())
		}
		return out
	}
	for _, n := range []string{"node05", "node06"} {
		if out := run(n, 100); out.GetState() != string(model.NodeReady) {
			t.Fatalf("%s: %s %q", n, out.GetState(), out.GetReason())
		}
	}
	out := run("node07", 70)
	want := "acceptance: dgemm 70.0 GFLOP/s is 30.0% below the median 100.0 GFLOP/s of 2 other Intel Xeon Gold 6338 (margin 10%)"
	if out.GetState() != string(model.NodeDraining) || out.GetReason() != want {
		t.Fatalf("slow node: %s %q, want draining %q", out.GetState(), out.GetReason(), want)
	}
	nodes, err := ts.jobs.Nodes(ctx, &api.NodesRequest{})
	if err != nil {
		t.Fatal(err)
	}
	for _, n := range nodes.GetNodes() {
		if n.GetName() == "node07" && (n.GetReason() != want || n.GetAcceptance().GetFinished() == nil) {
			t.Fatalf("Nodes shows node07 as %q, acceptance %v", n.GetReason(), n.GetAcceptance())
		}
	}

	// A stale or malformed report changes nothing.
	if _, err := ts.node.ReportAcceptance(ctx, &api.AcceptanceReport{Node: "node07", RunId: 1, Results: cpuResults(100, 50)}); status.Code(err) != codes.FailedPrecondition {
		t.Fatalf("stale report: %v", err)
	}
	bad := cpuResults(100, 50)
	bad[0].Subject = "0000:3b:00.0"
	for name, rep := range map[string]*api.AcceptanceReport{
		"no run":         {Node: "node07", Results: cpuResults(100, 50)},
		"unknown GPU":    {Node: "node07", RunId: 2, Results: bad},
		"negative value": {Node: "node07", RunId: 2, Results: cpuResults(-1, 50)},
	} {
		if _, err := ts.node.ReportAcceptance(ctx, rep); status.Code(err) == codes.OK {
			t.Errorf("%s: accepted", name)
		}
	}

	if out := run("node07", 97); out.GetState() != string(model.NodeReady) || out.GetReason() != "" {
		t.Fatalf("re-run passed but node07 is %s %q", out.GetState(), out.GetReason())
	}
}

// TestAcceptanceMarginIsValidated: New refuses a margin outside (0, 100).
func TestAcceptanceMarginIsValidated(t *testing.T) {
	for _, m := range []float64{-1, 100, 250} {
		_, err := New(Config{DataDir: t.TempDir(), Insecure: true, AcceptanceMarginPercent: m, GRPCAddr: "127.0.0.1:0", RaftAddr: "127.0.0.1:0"})
		if err == nil || !strings.Contains(err.Error(), "acceptance margin") {
			t.Errorf("margin %v: %v", m, err)
		}
	}
}

// TestAcceptanceJudgesEachGPU: the GPUs of one node are each other's
// peers; the slow one is rejected (the scheduler sees it as unusable)
// while the node stays ready, a GPU missing from the run is rejected,
// and a passing run returns both.
func TestAcceptanceJudgesEachGPU(t *testing.T) {
	ts := startServer(t, t.TempDir())
	ctx := ctxT(t)
	n := &model.Node{Name: "gpu01", Hypervisor: "tcg", ScratchMiB: 10 << 10, NUMA: []model.NUMANode{{ID: 0, MemoryMiB: 4096}}, Cores: []model.Core{{ID: 0}}}
	pcis := []string{"0000:3b:00.0", "0000:5e:00.0", "0000:86:00.0", "0000:af:00.0"}
	for i, p := range pcis {
		n.GPUs = append(n.GPUs, model.GPU{PCIAddress: p, Model: "H200", IOMMUGroup: i})
	}
	if _, err := ts.node.Register(ctx, &api.RegisterRequest{Node: wire.NodeToProto(n)}); err != nil {
		t.Fatal(err)
	}
	report := func(values ...float64) *api.Node {
		t.Helper()
		p, err := ts.node.StartAcceptance(ctx, &api.StartAcceptanceRequest{Node: "gpu01", Workloads: "sgemm"})
		if err != nil {
			t.Fatal(err)
		}
		var rs []*api.AcceptanceResult
		for i, v := range values {
			// The agent's model is ignored: the inventory's counts.
			rs = append(rs, &api.AcceptanceResult{Subject: pcis[i], Model: "NVIDIA H200", Workload: "sgemm", Unit: "GFLOP/s", Value: v})
		}
		out, err := ts.node.ReportAcceptance(ctx, &api.AcceptanceReport{Node: "gpu01", RunId: p.GetAcceptanceRun().GetId(), Results: rs})
		if err != nil {
			t.Fatal(err)
		}
		return out
	}
	out := report(50000, 50500, 35000)
	if out.GetState() != string(model.NodeReady) {
		t.Fatalf("node %s %q", out.GetState(), out.GetReason())
	}
	want := []string{"", "", "acceptance: sgemm 35000.0 GFLOP/s is 30.3% below the median 50250.0 GFLOP/s of 2 other H200 (margin 10%)", "acceptance: run 1 has no results for this GPU"}
	for i, g := range out.GetGpus() {
		if g.GetRejected() != want[i] {
			t.Errorf("GPU %s rejected %q, want %q", g.GetPciAddress(), g.GetRejected(), want[i])
		}
	}
	out = report(50000, 50500, 49000, 50200)
	for _, g := range out.GetGpus() {
		if g.GetRejected() != "" {
			t.Errorf("GPU %s still rejected: %q", g.GetPciAddress(), g.GetRejected())
		}
	}
}
