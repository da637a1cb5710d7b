// Package wire converts between the replicated model types and their
// protobuf messages. The server (answers) and the agent (registration)
// both use it, so a field added to one side is added once.
package wire

import (
	"fmt"
	"math"
	"slices"
	"time"

	"google.golang.org/protobuf/types/known/timestamppb"

	"vhpc/api"
	"vhpc/jobspec"
	"vhpc/scheduler/model"
)

// JobFromSpec turns a validated spec into the job the FSM stores.
func JobFromSpec(s *jobspec.Spec, user, submitDir, token string) (model.Job, error) {
	specJSON, err := s.CanonicalJSON()
	if err != nil {
		return model.Job{}, fmt.Errorf("canonical spec: %w", err)
	}
	r := s.Resources
	j := model.Job{
		Token:      token,
		Name:       s.Name,
		User:       user,
		Department: s.Department,
		Partition:  s.Partition,
		QOS:        s.QOS,
		Image:      s.Image,
		MPI:        s.MPI,
		Request: model.Request{
			Nodes:        r.Nodes,
			TasksPerNode: r.TasksPerNode,
			CPUsPerTask:  r.CPUsPerTask,
			MemoryMiB:    r.Memory.MiB(),
			GPUs:         r.GPUs,
			GPUModel:     r.GPUModel,
			GPUMemoryMiB: r.GPUMemory.MiB(),
			ScratchMiB:   r.Scratch.MiB(),
			HugepagesMiB: r.Hugepages.MiB(),
			CrossNUMA:    r.CrossNUMA,
		},
		Walltime:  s.Walltime.Std(),
		Retries:   s.Retries,
		SpecJSON:  specJSON,
		SubmitDir: submitDir,
	}
	for _, d := range s.DependsOn {
		dep := model.Dependency{Kind: model.DependencyKind(d.Type)}
		for _, id := range d.Jobs {
			dep.Jobs = append(dep.Jobs, model.JobID(id))
		}
		j.DependsOn = append(j.DependsOn, dep)
	}
	if s.Array != nil {
		first, last, step := s.Array.Range()
		j.Array = &model.Array{First: first, Last: last, Step: step, Chunk: int64(s.Array.Chunk), Parallel: s.Array.Parallel}
	}
	return j, nil
}

// ts converts a time, leaving zero times unset.
func ts(t time.Time) *timestamppb.Timestamp {
	if t.IsZero() {
		return nil
	}
	return timestamppb.New(t)
}

func RequestToProto(r model.Request) *api.Resources {
	return &api.Resources{
		Nodes: int32(r.Nodes), TasksPerNode: int32(r.TasksPerNode), CpusPerTask: int32(r.CPUsPerTask),
		MemoryMib: r.MemoryMiB, Gpus: int32(r.GPUs), GpuModel: r.GPUModel, GpuMemoryMib: r.GPUMemoryMiB,
		ScratchMib: r.ScratchMiB, HugepagesMib: r.HugepagesMiB, CrossNuma: r.CrossNUMA,
	}
}

// JobToProto converts a job; allocs may be nil.
func JobToProto(j *model.Job, allocs []*model.Alloc) *api.Job {
	p := &api.Job{
		Id: uint64(j.ID), Name: j.Name, User: j.User, Department: j.Department, Partition: j.Partition,
		Qos: j.QOS, Image: j.Image, Resources: RequestToProto(j.Request),
		WalltimeSeconds: int64(j.Walltime / time.Second), State: string(j.State), Reason: j.Reason,
		SubmitTime: ts(j.SubmitTime), StartTime: ts(j.StartTime), EndTime: ts(j.EndTime),
		ExitCode: int32(j.ExitCode), Attempt: j.Attempt, Restarts: int32(j.Restarts), Retries: int32(j.Retries),
		SpecJson: string(j.SpecJSON), ImageRef: j.ImageRef, ImageDigest: j.ImageDigest,
		Inputs: j.Inputs, InputBytes: j.InputBytes, InputFiles: int32(j.InputFiles), SubmitDir: j.SubmitDir,
		Datasets: DatasetsToProto(j.Datasets),
	}
	for _, d := range j.DependsOn {
		pd := &api.Dependency{Kind: string(d.Kind)}
		for _, id := range d.Jobs {
			pd.Jobs = append(pd.Jobs, uint64(id))
		}
		p.DependsOn = append(p.DependsOn, pd)
	}
	if a := j.Array; a != nil {
		p.Array = &api.ArrayStatus{First: a.First, Last: a.Last, Step: a.Step, Chunk: a.Chunk, Parallel: int32(a.Parallel),
			Tasks: a.Tasks(), NextTask: j.NextTask, Done: j.TasksDone, Failed: j.TasksFailed, RetryTasks: slices.Clone(j.RetryTasks)}
	}
	for _, a := range allocs {
		p.Allocations = append(p.Allocations, AllocToProto(a, nil))
	}
	return p
}

// AllocToProto converts an allocation; job, when given, adds what an agent
// needs to run it (never a path of the submitter's).
func AllocToProto(a *model.Alloc, job *model.Job) *api.Allocation {
	p := &api.Allocation{
		Id: string(a.ID), Job: uint64(a.Job), Task: a.Task, Rank: int32(a.Rank), Attempt: a.Attempt,
		Node: a.Placement.Node, Gpus: append([]string(nil), a.Placement.GPUs...),
		MemoryMib: a.Placement.MemoryMiB, ScratchMib: a.Placement.Scratch, HugepagesMib: a.Placement.Hugepages,
		State: string(a.State), ExitCode: int32(a.ExitCode), Reason: a.Reason,
		Created: ts(a.Created), Started: ts(a.Started), Ended: ts(a.Ended), Deadline: ts(a.Deadline),
		Desired: "run", BootSeconds: a.BootSeconds, RunSeconds: a.RunSeconds, GpuUsage: GPUUsageToProto(a.GPUUsage),
		ImagePulled: a.ImagePulled,
	}
	if o := a.Outputs; o != nil {
		p.Outputs, p.OutputBytes, p.OutputFiles, p.OutputsMissing, p.OutputsRepository = o.Digest, o.Bytes, int32(o.Files), slices.Clone(o.Missing), o.Repository
	}
	if a.StopRequested {
		p.Desired = "stop"
	}
	for _, c := range a.Placement.Cores {
		p.Cores = append(p.Cores, int32(c))
	}
	for _, n := range a.Placement.NUMA {
		p.Numa = append(p.Numa, int32(n))
	}
	if job != nil {
		p.SpecJson = string(job.SpecJSON)
		p.Inputs = job.Inputs
		p.Datasets = DatasetsToProto(job.Datasets)
		p.ImageRef, p.ImageDigest = job.ImageRef, job.ImageDigest
	}
	return p
}

// NodeToProto converts a node for the wire: agents register with it and
// the server answers Nodes with it.
func NodeToProto(n *model.Node) *api.Node {
	p := &api.Node{
		Name: n.Name, Partition: n.Partition, Hypervisor: n.Hypervisor, ScratchMib: n.ScratchMiB,
		State: string(n.State), Reason: n.Reason, LastSeen: ts(n.LastSeen), Underlay: n.Underlay,
	}
	for _, c := range n.Cores {
		p.Cores = append(p.Cores, &api.Core{Id: int32(c.ID), Numa: int32(c.NUMA), PhysicalCore: int32(c.PhysicalCore)})
	}
	for _, m := range n.NUMA {
		p.Numa = append(p.Numa, &api.NumaNode{Id: int32(m.ID), MemoryMib: m.MemoryMiB, HugepagesMib: m.HugepagesMiB})
	}
	for _, g := range n.GPUs {
		p.Gpus = append(p.Gpus, &api.Gpu{PciAddress: g.PCIAddress, Uuid: g.UUID, Model: g.Model, MemoryMib: g.MemoryMiB,
			Numa: int32(g.NUMA), IommuGroup: int32(g.IOMMUGroup), Drained: g.Drained, Health: g.Health, IommuShared: g.IOMMUShared, Rejected: g.Rejected})
	}
	for _, c := range n.ReservedCores {
		p.ReservedCores = append(p.ReservedCores, int32(c))
	}
	p.AcceptanceRun, p.Acceptance = AcceptanceRunToProto(n.AcceptanceRun), acceptanceToProto(n.Acceptance)
	return p
}

// NodeFromProto converts an agent's registration into the stored node.
func NodeFromProto(p *api.Node) model.Node {
	n := model.Node{Name: p.GetName(), Partition: p.GetPartition(), Hypervisor: p.GetHypervisor(), ScratchMiB: p.GetScratchMib(), Underlay: p.GetUnderlay()}
	for _, c := range p.GetCores() {
		n.Cores = append(n.Cores, model.Core{ID: int(c.GetId()), NUMA: int(c.GetNuma()), PhysicalCore: int(c.GetPhysicalCore())})
	}
	for _, m := range p.GetNuma() {
		n.NUMA = append(n.NUMA, model.NUMANode{ID: int(m.GetId()), MemoryMiB: m.GetMemoryMib(), HugepagesMiB: m.GetHugepagesMib()})
	}
	for _, g := range p.GetGpus() {
		n.GPUs = append(n.GPUs, model.GPU{PCIAddress: g.GetPciAddress(), UUID: g.GetUuid(), Model: g.GetModel(), MemoryMiB: g.GetMemoryMib(),
			NUMA: int(g.GetNuma()), IOMMUGroup: int(g.GetIommuGroup()), Drained: g.GetDrained(), Health: g.GetHealth(), IOMMUShared: g.GetIommuShared()})
	}
	for _, c := range p.GetReservedCores() {
		n.ReservedCores = append(n.ReservedCores, int(c))
	}
	return n
}

// GPUUsageToProto converts measured GPU use (nil stays nil).
func GPUUsageToProto(u *model.GPUUsage) *api.GPUUsage {
	if u == nil {
		return nil
	}
	return &api.GPUUsage{GpuHours: u.GPUHours, MeanUtilization: u.MeanUtilization, EnergyJoules: u.EnergyJ, Samples: u.Samples}
}

// GPUUsageFromProto converts an agent's report (nil stays nil); negative
// or non-finite figures are dropped.
func GPUUsageFromProto(p *api.GPUUsage) *model.GPUUsage {
	if p == nil || p.GetSamples() <= 0 {
		return nil
	}
	ok := func(v float64) bool { return v >= 0 && !math.IsInf(v, 0) && !math.IsNaN(v) }
	if !ok(p.GetGpuHours()) || !ok(p.GetMeanUtilization()) || !ok(p.GetEnergyJoules()) {
		return nil
	}
	return &model.GPUUsage{GPUHours: p.GetGpuHours(), MeanUtilization: p.GetMeanUtilization(), EnergyJ: p.GetEnergyJoules(), Samples: p.GetSamples()}
}

// ImageToProto converts a catalog record (the server's ImageService answers).
func ImageToProto(im *model.Image) *api.ImageRecord {
	return &api.ImageRecord{
		Ref: im.Ref(), Department: im.Department, Name: im.Name, Tag: im.Tag, Digest: im.Digest,
		Public: im.Public, SizeBytes: im.SizeBytes, Created: ts(im.Created), Updated: ts(im.Updated),
		BuiltFrom: im.BuiltFrom, PushedBy: im.PushedBy, Kind: model.KindName(im.Kind),
	}
}

// DatasetsToProto converts a job's resolved datasets.
func DatasetsToProto(ds []model.DatasetMount) []*api.DatasetMount {
	var out []*api.DatasetMount
	for _, d := range ds {
		out = append(out, &api.DatasetMount{Ref: d.Ref, Digest: d.Digest, Name: d.Name})
	}
	return out
}
