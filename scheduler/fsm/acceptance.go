package fsm

import (
	"fmt"
	"slices"
	"time"

	"vhpc/scheduler/model"
	"vhpc/scheduler/state"
)

// StartAcceptance asks a node's agent for an acceptance run (`hpcd
// operator node-accept`). A ready node is drained until the run is judged
// ("acceptance run N pending"), so it takes no new work meanwhile; its
// agent waits for its running allocations to end, then runs the suite.
// While a run is pending, another StartAcceptance returns that run and
// changes nothing (a retried request).
type StartAcceptance struct {
	Time      time.Time `json:"time"`
	Node      string    `json:"node"`
	Workloads string    `json:"workloads,omitempty"`
	Size      string    `json:"size,omitempty"`
}

// AcceptanceResults records a finished run with the leader's verdicts
// (hpcbench/accept.Judge, computed before the entry is written, so every
// member and every later build applies the same decision): the results,
// the node's drain reason (Failed, "" = passed) and each GPU's
// (GPUs: PCI address -> reason, "" = passed). A failed node is drained
// with Failed; a passing node that acceptance drained is readied; each
// judged GPU gets Rejected set or cleared. A report for a run that is not
// the node's pending one changes nothing (ErrConflict).
type AcceptanceResults struct {
	Time    time.Time                `json:"time"`
	Node    string                   `json:"node"`
	RunID   uint64                   `json:"runId"`
	Results []model.AcceptanceResult `json:"results,omitempty"`
	Failed  string                   `json:"failed,omitempty"`
	GPUs    []GPUVerdict             `json:"gpus,omitempty"`
	// Error is the agent's reason when the suite could not run; Failed
	// then says so too.
	Error string `json:"error,omitempty"`
}

// GPUVerdict is one GPU's acceptance outcome; Reason "" means it passed.
type GPUVerdict struct {
	PCI    string `json:"pci"`
	Reason string `json:"reason,omitempty"`
}

// pendingReason is the Reason of a node drained while its run is pending.
func pendingReason(id uint64) string {
	return fmt.Sprintf("acceptance run %d pending", id)
}

// applyStartAcceptance returns the node (*model.Node) with its pending
// run, or an error wrapping ErrNotFound for an unknown node.
func applyStartAcceptance(txn *state.Txn, e *StartAcceptance) any {
	old := txn.Node(e.Node)
	if old == nil {
		return fmt.Errorf("node %q: %w", e.Node, ErrNotFound)
	}
	if old.AcceptanceRun != nil {
		return old
	}
	n := old.Copy()
	var last uint64
	if n.Acceptance != nil {
		last = n.Acceptance.RunID
	}
	n.AcceptanceRun = &model.AcceptanceRun{ID: last + 1, Requested: e.Time, Workloads: e.Workloads, Size: e.Size}
	drainFor(n, pendingReason(last+1))
	txn.PutNode(n)
	return n
}

// drainFor drains n with reason on acceptance's behalf: a ready node, or
// one acceptance drained before; an admin's drain and a down node keep
// their state (a down node comes back drained, see holdAcceptanceDrain).
func drainFor(n *model.Node, reason string) {
	switch {
	case n.State == model.NodeReady, n.State == model.NodeDraining && n.AcceptanceDrain != "" && n.Reason == n.AcceptanceDrain:
		n.State, n.Reason = model.NodeDraining, reason
	case n.State == model.NodeDown:
	default:
		return // an admin's drain: acceptance does not own it
	}
	n.AcceptanceDrain = reason
}

// holdAcceptanceDrain keeps a node that acceptance drained from becoming
// ready by re-registering or by heartbeats resuming after it was down.
func holdAcceptanceDrain(n *model.Node) {
	if n.AcceptanceDrain != "" && n.State == model.NodeReady {
		n.State, n.Reason = model.NodeDraining, n.AcceptanceDrain
	}
}

// applyAcceptanceResults returns the updated *model.Node, or an error
// wrapping ErrNotFound (unknown node) or ErrConflict (no such pending run).
func applyAcceptanceResults(txn *state.Txn, e *AcceptanceResults) any {
	old := txn.Node(e.Node)
	if old == nil {
		return fmt.Errorf("node %q: %w", e.Node, ErrNotFound)
	}
	if old.AcceptanceRun == nil || old.AcceptanceRun.ID != e.RunID {
		pending := "none is"
		if old.AcceptanceRun != nil {
			pending = fmt.Sprintf("run %d is", old.AcceptanceRun.ID)
		}
		return fmt.Errorf("node %s: acceptance run %d is not pending (%s): %w", e.Node, e.RunID, pending, ErrConflict)
	}
	n := old.Copy()
	n.AcceptanceRun = nil
	n.Acceptance = &model.Acceptance{RunID: e.RunID, Finished: e.Time, Results: slices.Clone(e.Results), Failed: e.Failed, Error: e.Error}
	for _, v := range e.GPUs {
		if i := slices.IndexFunc(n.GPUs, func(g model.GPU) bool { return g.PCIAddress == v.PCI }); i >= 0 {
			n.GPUs[i].Rejected = v.Reason
		}
	}
	if e.Failed != "" {
		drainFor(n, e.Failed)
	} else if n.AcceptanceDrain != "" {
		if n.State == model.NodeDraining && n.Reason == n.AcceptanceDrain {
			n.State, n.Reason = model.NodeReady, ""
		}
		n.AcceptanceDrain = ""
	}
	txn.PutNode(n)
	return n
}
