package wire

import (
	"vhpc/api"
	"vhpc/scheduler/model"
)

// AcceptanceRunToProto converts a pending acceptance run (nil stays nil):
// Nodes answers and the agents' allocation sets carry it.
func AcceptanceRunToProto(r *model.AcceptanceRun) *api.AcceptanceRun {
	if r == nil {
		return nil
	}
	return &api.AcceptanceRun{Id: r.ID, Requested: ts(r.Requested), Workloads: r.Workloads, Size: r.Size}
}

func acceptanceToProto(a *model.Acceptance) *api.Acceptance {
	if a == nil {
		return nil
	}
	return &api.Acceptance{RunId: a.RunID, Finished: ts(a.Finished), Failed: a.Failed, Error: a.Error, Results: AcceptanceResultsToProto(a.Results)}
}

// AcceptanceResultsFromProto converts an agent's acceptance results
// (ReportAcceptance); the server checks them.
func AcceptanceResultsFromProto(rs []*api.AcceptanceResult) []model.AcceptanceResult {
	var out []model.AcceptanceResult
	for _, r := range rs {
		out = append(out, model.AcceptanceResult{Subject: r.GetSubject(), Model: r.GetModel(), Workload: r.GetWorkload(), Unit: r.GetUnit(), Value: r.GetValue(), Error: r.GetError()})
	}
	return out
}

// AcceptanceResultsToProto converts results for a report (the agent).
func AcceptanceResultsToProto(rs []model.AcceptanceResult) []*api.AcceptanceResult {
	var out []*api.AcceptanceResult
	for _, r := range rs {
		out = append(out, &api.AcceptanceResult{Subject: r.Subject, Model: r.Model, Workload: r.Workload, Unit: r.Unit, Value: r.Value, Error: r.Error})
	}
	return out
}
