package main

import (
	"context"
	"strings"
	"testing"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	"vhpc/api"
	"vhpc/hpcbench/accept"
	"vhpc/scheduler/model"
	"vhpc/scheduler/server"
	"vhpc/scheduler/server/servertest"
	"vhpc/wire"
)

// TestNodesShowsAcceptance: a node that failed acceptance (against its
// model's reference) is listed draining with the reason, and the
// ACCEPTED column says when its last run finished and that it failed.
func TestNodesShowsAcceptance(t *testing.T) {
	s := servertest.Start(t, func(c *server.Config) { c.AcceptanceReference = accept.Reference{"Xeon": {"dgemm": 100}} })
	conn, err := grpc.NewClient(s.GRPCAddr(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	ctx := context.Background()
	nodes := api.NewNodeServiceClient(conn)
	n := &model.Node{Name: "node07", Hypervisor: "tcg", ScratchMiB: 1024, NUMA: []model.NUMANode{{MemoryMiB: 4096}}, Cores: []model.Core{{ID: 0}}}
	if _, err := nodes.Register(ctx, &api.RegisterRequest{Node: wire.NodeToProto(n)}); err != nil {
		t.Fatal(err)
	}
	code, out, _ := hpcsub(t, "--addr="+s.GRPCAddr(), "nodes")
	if code != 0 || !strings.Contains(out, "ACCEPTED") || !strings.Contains(out, "  -  ") {
		t.Fatalf("before any run: %d\n%s", code, out)
	}
	p, err := nodes.StartAcceptance(ctx, &api.StartAcceptanceRequest{Node: "node07"})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := nodes.ReportAcceptance(ctx, &api.AcceptanceReport{Node: "node07", RunId: p.GetAcceptanceRun().GetId(),
		Results: []*api.AcceptanceResult{{Subject: "cpu", Model: "Xeon", Workload: "dgemm", Unit: "GFLOP/s", Value: 70}}}); err != nil {
		t.Fatal(err)
	}
	code, out, errOut := hpcsub(t, "--addr="+s.GRPCAddr(), "nodes")
	want := "acceptance: dgemm 70.0 GFLOP/s is 30.0% below the reference 100.0 GFLOP/s of Xeon (margin 10%)"
	if code != 0 || !strings.Contains(out, "draining") || !strings.Contains(out, want) || !strings.Contains(out, "Z failed") {
		t.Fatalf("after a failed run: %d %s\n%s", code, errOut, out)
	}
}
