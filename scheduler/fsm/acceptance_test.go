package fsm

import (
	"errors"
	"strings"
	"testing"
	"time"

	"vhpc/scheduler/model"
)

func gpuNode(name string) model.Node {
	n := testNode(name, 4)
	n.GPUs = []model.GPU{{PCIAddress: "0000:3b:00.0", Model: "H200"}, {PCIAddress: "0000:5e:00.0", Model: "H200"}}
	return n
}

// TestAcceptanceLifecycle: a run drains a ready node while pending; a
// failed verdict keeps it drained with the reason (also across a down and
// a re-registration) and rejects a GPU; a stale report changes nothing; a
// later passing run returns node and GPU; replay and snapshot agree.
func TestAcceptanceLifecycle(t *testing.T) {
	h := newHarness(t)
	at := time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC)
	h.apply(EntryRegisterNode, &RegisterNode{Time: at, Node: gpuNode("node07")})
	node := func() *model.Node { return h.f.Store().Snapshot().Node("node07") }

	if err, ok := h.apply(EntryStartAcceptance, &StartAcceptance{Time: at, Node: "node99"}).(error); !ok || !errors.Is(err, ErrNotFound) {
		t.Fatalf("unknown node: %v", err)
	}
	n := h.apply(EntryStartAcceptance, &StartAcceptance{Time: at, Node: "node07", Workloads: "dgemm"}).(*model.Node)
	if n.AcceptanceRun == nil || n.AcceptanceRun.ID != 1 || n.State != model.NodeDraining || n.Reason != "acceptance run 1 pending" {
		t.Fatalf("pending: %+v %s %q", n.AcceptanceRun, n.State, n.Reason)
	}
	if again := h.apply(EntryStartAcceptance, &StartAcceptance{Time: at.Add(time.Minute), Node: "node07"}).(*model.Node); again.AcceptanceRun.ID != 1 || !again.AcceptanceRun.Requested.Equal(at) {
		t.Fatalf("a second start made a new run: %+v", again.AcceptanceRun)
	}
	if err, ok := h.apply(EntryAcceptanceResults, &AcceptanceResults{Time: at, Node: "node07", RunID: 2}).(error); !ok || !errors.Is(err, ErrConflict) {
		t.Fatalf("stale report: %v", err)
	}
	reason := "acceptance: dgemm 70.0 GFLOP/s is 30.0% below the median 100.0 GFLOP/s of 2 other Xeon (margin 10%)"
	res := []model.AcceptanceResult{{Subject: "cpu", Model: "Xeon", Workload: "dgemm", Unit: "GFLOP/s", Value: 70}}
	n = h.apply(EntryAcceptanceResults, &AcceptanceResults{Time: at.Add(time.Hour), Node: "node07", RunID: 1, Results: res, Failed: reason,
		GPUs: []GPUVerdict{{PCI: "0000:3b:00.0", Reason: "acceptance: sgemm slow"}, {PCI: "0000:5e:00.0"}}}).(*model.Node)
	if n.State != model.NodeDraining || n.Reason != reason || n.AcceptanceRun != nil || n.Acceptance.RunID != 1 || n.GPUs[0].Unusable() != "acceptance: sgemm slow" || n.GPUs[1].Unusable() != "" {
		t.Fatalf("failed run: %s %q %+v %+v", n.State, n.Reason, n.Acceptance, n.GPUs)
	}

	// Down, heartbeat back, re-registration: still drained by acceptance.
	h.apply(EntrySetNodeState, &SetNodeState{Time: at, Name: "node07", State: model.NodeDown, Reason: "lease"})
	h.apply(EntrySetNodeState, &SetNodeState{Time: at, Name: "node07", State: model.NodeReady, Reason: "heartbeat resumed"})
	if n := node(); n.State != model.NodeDraining || n.Reason != reason {
		t.Fatalf("after heartbeat resumed: %s %q", n.State, n.Reason)
	}
	h.apply(EntryRegisterNode, &RegisterNode{Time: at, Node: gpuNode("node07")})
	if n := node(); n.State != model.NodeDraining || n.Reason != reason || n.GPUs[0].Rejected == "" || n.Acceptance == nil {
		t.Fatalf("after re-registration: %s %q %+v", n.State, n.Reason, n.GPUs)
	}

	restored := h.replayAndRestore()
	if n := restored.f.Store().Snapshot().Node("node07"); n.Acceptance == nil || n.Acceptance.Results[0].Value != 70 || n.AcceptanceDrain != reason {
		t.Fatalf("restored: %+v", n)
	}

	h.apply(EntryStartAcceptance, &StartAcceptance{Time: at, Node: "node07"})
	if n := node(); n.AcceptanceRun.ID != 2 || n.Reason != "acceptance run 2 pending" {
		t.Fatalf("second run: %+v %q", n.AcceptanceRun, n.Reason)
	}
	n = h.apply(EntryAcceptanceResults, &AcceptanceResults{Time: at, Node: "node07", RunID: 2, Results: res, GPUs: []GPUVerdict{{PCI: "0000:3b:00.0"}, {PCI: "0000:5e:00.0"}}}).(*model.Node)
	if n.State != model.NodeReady || n.Reason != "" || n.AcceptanceDrain != "" || n.GPUs[0].Unusable() != "" {
		t.Fatalf("passing run: %s %q %+v", n.State, n.Reason, n.GPUs)
	}
	h.replayAndRestore()
}

// TestAcceptanceKeepsAnAdminDrain: acceptance neither takes over nor
// lifts a drain it did not set.
func TestAcceptanceKeepsAnAdminDrain(t *testing.T) {
	h := newHarness(t)
	h.apply(EntryRegisterNode, &RegisterNode{Node: testNode("node07", 2)})
	h.apply(EntrySetNodeState, &SetNodeState{Name: "node07", State: model.NodeDraining, Reason: "admin: new DIMMs"})
	h.apply(EntryStartAcceptance, &StartAcceptance{Node: "node07"})
	n := h.apply(EntryAcceptanceResults, &AcceptanceResults{Node: "node07", RunID: 1}).(*model.Node)
	if n.State != model.NodeDraining || n.Reason != "admin: new DIMMs" {
		t.Fatalf("%s %q", n.State, n.Reason)
	}
	h.apply(EntryStartAcceptance, &StartAcceptance{Node: "node07"})
	n = h.apply(EntryAcceptanceResults, &AcceptanceResults{Node: "node07", RunID: 2, Failed: "acceptance: slow"}).(*model.Node)
	if n.Reason != "admin: new DIMMs" || n.Acceptance.Failed != "acceptance: slow" {
		t.Fatalf("%s %q", n.State, n.Reason)
	}
}

// TestVersion4SnapshotRestores: a snapshot written before acceptance
// existed (format 4) restores, its nodes without acceptance runs.
func TestVersion4SnapshotRestores(t *testing.T) {
	h := newHarness(t)
	old := `{"version":4,"index":3,"nextJob":1,"jobs":null,"allocs":null,"usage":null,` +
		`"nodes":[{"name":"node07","hypervisor":"tcg","cores":[{"id":0,"numa":0,"physicalCore":0}],"numa":[{"id":0,"memoryMiB":1024}],"gpus":[{"pciAddress":"0000:3b:00.0","model":"H200","memoryMiB":1,"numa":0,"iommuGroup":1}],"scratchMiB":1,"state":"ready","lastSeen":"0001-01-01T00:00:00Z"}]}`
	if err := h.f.Restore(nopCloser{strings.NewReader(old)}); err != nil {
		t.Fatal(err)
	}
	n := h.f.Store().Snapshot().Node("node07")
	if n == nil || n.State != model.NodeReady || n.Acceptance != nil || n.GPUs[0].Unusable() != "" {
		t.Fatalf("%+v", n)
	}
	if r := h.apply(EntryStartAcceptance, &StartAcceptance{Node: "node07"}).(*model.Node); r.AcceptanceRun.ID != 1 {
		t.Fatalf("%+v", r.AcceptanceRun)
	}
}

type nopCloser struct{ *strings.Reader }

func (nopCloser) Close() error { return nil }
