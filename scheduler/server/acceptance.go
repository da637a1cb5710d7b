package server

import (
	"context"
	"fmt"
	"math"
	"slices"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"vhpc/api"
	"vhpc/hpcbench"
	"vhpc/hpcbench/accept"
	"vhpc/scheduler/fsm"
	"vhpc/scheduler/model"
	"vhpc/scheduler/state"
	"vhpc/wire"
)

// maxAcceptanceResults bounds one report: the catalogue on a CPU and on
// up to 63 GPUs.
const maxAcceptanceResults = 64 * 16

// StartAcceptance implements NodeService.StartAcceptance (contract in api/vhpc.proto).
func (ns *nodeService) StartAcceptance(ctx context.Context, req *api.StartAcceptanceRequest) (*api.Node, error) {
	s := ns.s
	if err := validNodeName(req.GetNode()); err != nil {
		return nil, status.Error(codes.InvalidArgument, err.Error())
	}
	if _, err := hpcbench.Select(req.GetWorkloads()); err != nil {
		return nil, status.Errorf(codes.InvalidArgument, "workloads: %v", err)
	}
	if req.GetSize() != "" {
		if _, err := hpcbench.ParseSizes(req.GetSize(), false); err != nil {
			return nil, status.Error(codes.InvalidArgument, err.Error())
		}
	}
	if c, fctx, ok, err := atLeader(s, ctx, api.NewNodeServiceClient); err != nil {
		return nil, err
	} else if ok {
		return c.StartAcceptance(fctx, req)
	}
	out, err := s.apply(ctx, fsm.EntryStartAcceptance, &fsm.StartAcceptance{Time: s.cfg.Now().UTC(), Node: req.GetNode(), Workloads: req.GetWorkloads(), Size: req.GetSize()})
	if err != nil {
		return nil, toStatus(err)
	}
	n, ok := out.(*model.Node)
	if !ok {
		return nil, status.Errorf(codes.Internal, "start acceptance returned %T", out)
	}
	s.log.Info("acceptance run requested", "node", n.Name, "run", n.AcceptanceRun.ID)
	return wire.NodeToProto(n), nil
}

// ReportAcceptance implements NodeService.ReportAcceptance (contract in api/vhpc.proto).
func (ns *nodeService) ReportAcceptance(ctx context.Context, req *api.AcceptanceReport) (*api.Node, error) {
	s := ns.s
	results := wire.AcceptanceResultsFromProto(req.GetResults())
	if err := checkAcceptanceReport(req, results); err != nil {
		return nil, status.Errorf(codes.InvalidArgument, "node %q acceptance report: %v", req.GetNode(), err)
	}
	if c, fctx, ok, err := atLeader(s, ctx, api.NewNodeServiceClient); err != nil {
		return nil, err
	} else if ok {
		return c.ReportAcceptance(fctx, req)
	}
	snap := s.fsm.Store().Snapshot()
	n := snap.Node(req.GetNode())
	if n == nil {
		return nil, status.Errorf(codes.NotFound, "node %q is not registered; register first", req.GetNode())
	}
	if n.AcceptanceRun == nil || n.AcceptanceRun.ID != req.GetRunId() {
		return nil, status.Errorf(codes.FailedPrecondition, "node %s: acceptance run %d is not pending", n.Name, req.GetRunId())
	}
	e, err := judgeAcceptance(snap, n, req.GetRunId(), results, req.GetError(), s.cfg.AcceptanceMarginPercent, s.cfg.AcceptanceReference)
	if err != nil {
		return nil, status.Errorf(codes.InvalidArgument, "node %s acceptance report: %v", n.Name, err)
	}
	e.Time = s.cfg.Now().UTC()
	out, err := s.apply(ctx, fsm.EntryAcceptanceResults, e)
	if err != nil {
		return nil, toStatus(err)
	}
	upd, ok := out.(*model.Node)
	if !ok {
		return nil, status.Errorf(codes.Internal, "acceptance results returned %T", out)
	}
	rejected := 0
	for _, g := range e.GPUs {
		if g.Reason != "" {
			rejected++
			s.log.Warn("GPU failed acceptance", "node", n.Name, "gpu", g.PCI, "reason", g.Reason)
		}
	}
	if e.Failed != "" {
		s.log.Warn("node failed acceptance", "node", n.Name, "run", e.RunID, "reason", e.Failed)
	} else {
		s.log.Info("node passed acceptance", "node", n.Name, "run", e.RunID, "results", len(e.Results), "gpus_rejected", rejected)
	}
	return wire.NodeToProto(upd), nil
}

// checkAcceptanceReport refuses malformed reports before anything is
// forwarded or written.
func checkAcceptanceReport(req *api.AcceptanceReport, rs []model.AcceptanceResult) error {
	if err := validNodeName(req.GetNode()); err != nil {
		return err
	}
	if req.GetRunId() == 0 {
		return fmt.Errorf("run_id is missing")
	}
	if len(rs) > maxAcceptanceResults {
		return fmt.Errorf("%d results; the limit is %d", len(rs), maxAcceptanceResults)
	}
	if len(req.GetError()) > 512 {
		return fmt.Errorf("error is %d bytes; the limit is 512", len(req.GetError()))
	}
	names := hpcbench.Names()
	seen := map[[2]string]bool{}
	for i, r := range rs {
		switch {
		case r.Subject == "" || len(r.Subject) > 64:
			return fmt.Errorf("result %d: subject %q: want cpu or a GPU's PCI address", i, r.Subject)
		case !slices.Contains(names, r.Workload):
			return fmt.Errorf("result %d: unknown workload %q", i, r.Workload)
		case math.IsNaN(r.Value) || math.IsInf(r.Value, 0) || r.Value < 0:
			return fmt.Errorf("result %d (%s on %s): value %v: want a finite number >= 0", i, r.Workload, r.Subject, r.Value)
		case len(r.Model) > 256 || len(r.Unit) > 32 || len(r.Error) > 512:
			return fmt.Errorf("result %d (%s on %s): model, unit or error too long", i, r.Workload, r.Subject)
		case seen[[2]string{r.Subject, r.Workload}]:
			return fmt.Errorf("result %d: %s on %s twice", i, r.Workload, r.Subject)
		}
		seen[[2]string{r.Subject, r.Workload}] = true
	}
	return nil
}

// judgeAcceptance turns a node's report into the log entry: each GPU
// result takes its model from the inventory, every other node's last
// results are the peers, and accept.Judge gives the verdicts. A GPU of the
// node missing from a report that measured other GPUs is rejected; a
// report without GPU results leaves the GPUs as they are.
func judgeAcceptance(snap *state.Snapshot, n *model.Node, runID uint64, results []model.AcceptanceResult, runErr string, marginPct float64, ref accept.Reference) (*fsm.AcceptanceResults, error) {
	e := &fsm.AcceptanceResults{Node: n.Name, RunID: runID, Error: runErr}
	var run []accept.Result
	gpuModel := map[string]string{}
	for _, g := range n.GPUs {
		gpuModel[g.PCIAddress] = g.Model
	}
	measured := map[string]bool{}
	for _, r := range results {
		if r.Subject != "cpu" {
			m, ok := gpuModel[r.Subject]
			if !ok {
				return nil, fmt.Errorf("subject %q is neither cpu nor a GPU of the node", r.Subject)
			}
			r.Model = m
			measured[r.Subject] = true
		} else if r.Model == "" {
			r.Model = "unknown CPU"
		}
		e.Results = append(e.Results, r)
		run = append(run, toAccept("", r))
	}
	var peers []accept.Result
	for o := range snap.Nodes() {
		if o.Name == n.Name || o.Acceptance == nil {
			continue
		}
		for _, r := range o.Acceptance.Results {
			peers = append(peers, toAccept(o.Name+"/", r))
		}
	}
	verdicts := accept.Judge(run, peers, ref, marginPct)
	for _, v := range verdicts {
		if v.Subject == "cpu" {
			e.Failed = v.Reason
			continue
		}
		e.GPUs = append(e.GPUs, fsm.GPUVerdict{PCI: v.Subject, Reason: v.Reason})
	}
	if runErr != "" && e.Failed == "" {
		e.Failed = "acceptance: the suite did not run: " + runErr
	}
	if len(measured) > 0 {
		for _, g := range n.GPUs {
			if !measured[g.PCIAddress] {
				e.GPUs = append(e.GPUs, fsm.GPUVerdict{PCI: g.PCIAddress, Reason: fmt.Sprintf("acceptance: run %d has no results for this GPU", runID)})
			}
		}
	}
	return e, nil
}

func toAccept(prefix string, r model.AcceptanceResult) accept.Result {
	return accept.Result{Subject: prefix + r.Subject, Model: r.Model, Workload: r.Workload, Unit: r.Unit, Value: r.Value, Error: r.Error}
}
