package server

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/hashicorp/raft"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"vhpc/api"
	"vhpc/jobspec"
	"vhpc/scheduler/core"
	"vhpc/scheduler/fsm"
	"vhpc/scheduler/model"
	"vhpc/scheduler/state"
	"vhpc/wire"
)

// Limits on request fields the server checks before anything else.
const (
	maxSpecBytes  = 1 << 20
	maxTokenBytes = 128
	maxListJobs   = 10000
)

type jobService struct {
	api.UnimplementedJobServiceServer
	s *Server
}

// notLeader answers a write or linearizable read on a follower.
func (s *Server) notLeader() error {
	addr, id := s.raft.LeaderWithID()
	if s.raft.State() == raft.Leader {
		return status.Error(codes.Unavailable, "this member was just elected and is catching up; retry shortly")
	}
	if addr == "" {
		return status.Error(codes.Unavailable, "no leader elected yet; retry shortly")
	}
	return status.Errorf(codes.Unavailable, "member %s is not the leader; the leader is %s at raft address %s", s.cfg.ID, id, addr)
}

// Submit implements JobService.Submit (contract in api/vhpc.proto).
func (js *jobService) Submit(ctx context.Context, req *api.SubmitRequest) (*api.SubmitResponse, error) {
	s := js.s
	start := time.Now()
	if len(req.GetSpec()) > maxSpecBytes {
		return nil, status.Errorf(codes.InvalidArgument, "%s: job spec is %d bytes; the limit is %d", req.GetFilename(), len(req.GetSpec()), maxSpecBytes)
	}
	if err := checkClientToken(req.GetClientToken()); err != nil {
		return nil, err
	}
	name := req.GetFilename()
	if name == "" {
		name = "job.yaml"
	}
	spec, err := jobspec.Load(name, req.GetSpec())
	if err != nil {
		return nil, status.Error(codes.InvalidArgument, err.Error())
	}
	user, err := s.submitter(ctx, req.GetUser(), spec.Department) // the user comes from the credential
	if err != nil {
		return nil, err
	}
	job, err := wire.JobFromSpec(spec, user, req.GetSubmitDir(), req.GetClientToken())
	if err != nil {
		return nil, status.Error(codes.InvalidArgument, err.Error())
	}
	snap := s.fsm.Store().Snapshot()
	if err := checkDependencies(snap, &job); err != nil {
		return nil, status.Errorf(codes.InvalidArgument, "%s: dependsOn: %v", name, err)
	}
	if req.GetDryRun() {
		if err := resolveImage(snap, spec, name, &job); err != nil {
			return nil, status.Error(codes.InvalidArgument, err.Error())
		}
		canonical, err := spec.Canonical()
		if err != nil {
			return nil, status.Error(codes.Internal, err.Error())
		}
		return &api.SubmitResponse{CanonicalSpec: string(canonical), Estimate: s.estimate(snap, job)}, nil
	}
	if c, fctx, ok, err := atLeader(s, ctx, api.NewJobServiceClient); err != nil {
		return nil, err
	} else if ok {
		return c.Submit(fctx, req)
	}
	// The leader resolves the image against its catalog: the job keeps the
	// digest the tag named now, whatever the tag names later.
	if err := resolveImage(s.fsm.Store().Snapshot(), spec, name, &job); err != nil {
		return nil, status.Error(codes.InvalidArgument, err.Error())
	}
	if err := s.checkInputs(ctx, spec, name, req.GetInputs(), &job); err != nil { // data.go
		return nil, err
	}
	res, err := s.enqueue(ctx, job)
	if err != nil {
		return nil, toStatus(err)
	}
	s.metrics.submit.Observe(time.Since(start).Seconds())
	out := &api.SubmitResponse{JobId: uint64(res.ID), Duplicate: res.Duplicate}
	if j := s.fsm.Store().Snapshot().Job(res.ID); j != nil {
		out.Job = wire.JobToProto(j, nil)
	}
	return out, nil
}

// checkDependencies refuses dependencies on jobs that do not exist (yet):
// such a job could never start.
func checkDependencies(snap *state.Snapshot, j *model.Job) error {
	for _, d := range j.DependsOn {
		for _, id := range d.Jobs {
			if snap.Job(id) == nil {
				return fmt.Errorf("%s job %d does not exist; depend on a job that was submitted", d.Kind, id)
			}
		}
	}
	return nil
}

// estimate runs the scheduler core as if j were submitted now and says
// where or when it would start.
func (s *Server) estimate(snap *state.Snapshot, j model.Job) string {
	now := s.cfg.Now().UTC()
	in := s.coreInput(snap, now)
	j.ID = snap.NextJobID()
	j.State = model.JobPending
	j.SubmitTime = now
	in.Jobs = append(in.Jobs, &j)
	plan := core.Schedule(in, s.cfg.Scheduler)
	for _, st := range plan.Starts {
		if st.Job == j.ID {
			var nodes []string
			for _, p := range st.Placements {
				nodes = append(nodes, fmt.Sprintf("%s (cores %v, GPUs %v)", p.Node, p.Cores, p.GPUs))
			}
			return fmt.Sprintf("would start now on %v", nodes)
		}
	}
	for _, r := range plan.Reservations {
		if r.Job == j.ID {
			return fmt.Sprintf("would wait; estimated start %s (in %s) on %v; reason: %s", r.At.Format(time.RFC3339), r.At.Sub(now).Round(time.Second), r.Nodes, plan.Pending[j.ID])
		}
	}
	return "would wait: " + plan.Pending[j.ID]
}

// Get implements JobService.Get (contract in api/vhpc.proto).
func (js *jobService) Get(ctx context.Context, req *api.GetJobRequest) (*api.Job, error) {
	if !req.GetStale() {
		if c, fctx, ok, err := atLeader(js.s, ctx, api.NewJobServiceClient); err != nil {
			return nil, err
		} else if ok {
			return c.Get(fctx, req)
		}
	}
	snap, err := js.s.readSnapshot(ctx, req.GetStale())
	if err != nil {
		return nil, err
	}
	j := snap.Job(model.JobID(req.GetId()))
	if j == nil {
		return nil, status.Errorf(codes.NotFound, "job %d does not exist", req.GetId())
	}
	return js.s.jobView(snap, j, viewFull), nil
}

// jobView detail levels: a list row, a watched job (with allocations), or
// everything `hpcsub show` prints (also the priority factors, which take a
// scheduling pass to compute).
const (
	viewRow = iota
	viewAllocs
	viewFull
)

// jobView converts a job for users, adding the leader's pending reason and,
// at viewFull, the priority factors of a waiting job.
func (s *Server) jobView(snap *state.Snapshot, j *model.Job, level int) *api.Job {
	detail := level >= viewAllocs
	var allocs []*model.Alloc
	if detail {
		allocs = slices.Collect(snap.JobAllocs(j.ID))
	}
	p := wire.JobToProto(j, allocs)
	s.artifactsView(j, p) // data.go
	if !detail {
		p.SpecJson = "" // lists stay small; Get has the spec
	}
	if j.State == model.JobPending || (j.Array != nil && !j.State.Terminal()) {
		if r, ok := s.pendingReason(j.ID); ok {
			p.Reason = r
		}
	}
	if level == viewFull && j.State == model.JobPending {
		ex := core.Explain(s.coreInput(snap, s.cfg.Now().UTC()), s.cfg.Scheduler, j.ID)
		if ex.Found {
			f, w := ex.Factors, ex.Weights
			p.Priority = []*api.PriorityFactor{
				{Name: "priority", Value: ex.Priority, Detail: priorityDetail(ex)},
				{Name: "age", Value: f.Age, Detail: fmt.Sprintf("weight %.0f", w.Age)},
				{Name: "fairshare", Value: f.FairShare, Detail: fmt.Sprintf("weight %.0f; department %s", w.FairShare, j.Department)},
				{Name: "size", Value: f.Size, Detail: fmt.Sprintf("weight %.0f", w.Size)},
				{Name: "qos", Value: f.QOS, Detail: fmt.Sprintf("weight %.0f; qos %s", w.QOS, j.QOS)},
			}
			if !ex.EstimatedStart.IsZero() {
				p.Priority = append(p.Priority, &api.PriorityFactor{Name: "estimated_start", Value: float64(ex.EstimatedStart.Unix()), Detail: fmt.Sprintf("%s on %v", ex.EstimatedStart.UTC().Format(time.RFC3339), ex.Nodes)})
			}
		}
	}
	return p
}

// readSnapshot returns state that includes every write acknowledged before
// the call: on the leader after confirming leadership, else an error that
// names the leader. A stale read returns this member's state as it is.
func (s *Server) readSnapshot(ctx context.Context, stale bool) (*state.Snapshot, error) {
	if stale {
		return s.fsm.Store().Snapshot(), nil
	}
	if !s.isLeader() {
		return nil, s.notLeader()
	}
	if err := s.raft.VerifyLeader().Error(); err != nil {
		return nil, s.notLeader()
	}
	return s.fsm.Store().Snapshot(), nil
}

// List implements JobService.List (contract in api/vhpc.proto).
func (js *jobService) List(ctx context.Context, req *api.ListJobsRequest) (*api.ListJobsResponse, error) {
	s := js.s
	if !req.GetStale() {
		if c, fctx, ok, err := atLeader(s, ctx, api.NewJobServiceClient); err != nil {
			return nil, err
		} else if ok {
			return c.List(fctx, req)
		}
	}
	snap, err := s.readSnapshot(ctx, req.GetStale())
	if err != nil {
		return nil, err
	}
	limit := int(req.GetLimit())
	if limit <= 0 || limit > maxListJobs {
		limit = maxListJobs
	}
	want := map[string]bool{}
	for _, st := range req.GetStates() {
		want[st] = true
	}
	out := &api.ListJobsResponse{}
	visible := s.jobFilter(ctx, snap) // only what the caller may see
	jobs := snap.ActiveJobs()
	descending := req.GetBeforeId() > 0 || req.GetAll() || len(want) > 0
	switch {
	case req.GetBeforeId() > 0:
		jobs = snap.JobsBefore(model.JobID(req.GetBeforeId()))
	case descending:
		jobs = snap.JobsDescending()
	}
	for j := range jobs {
		if len(out.Jobs) >= limit {
			if descending {
				out.NextBeforeId = out.Jobs[len(out.Jobs)-1].GetId()
			}
			break
		}
		if len(want) > 0 && !want[string(j.State)] {
			continue
		}
		if d := req.GetDepartment(); d != "" && j.Department != d {
			continue
		}
		if !visible(j) {
			continue
		}
		out.Jobs = append(out.Jobs, s.jobView(snap, j, viewRow))
	}
	return out, nil
}

// Cancel implements JobService.Cancel (contract in api/vhpc.proto).
func (js *jobService) Cancel(ctx context.Context, req *api.CancelJobRequest) (*api.Job, error) {
	s := js.s
	if c, fctx, ok, err := atLeader(s, ctx, api.NewJobServiceClient); err != nil {
		return nil, err
	} else if ok {
		return c.Cancel(fctx, req)
	}
	if s.fsm.Store().Snapshot().Job(model.JobID(req.GetId())) == nil {
		return nil, status.Errorf(codes.NotFound, "job %d does not exist", req.GetId())
	}
	out, err := s.apply(ctx, fsm.EntryCancelJob, &fsm.CancelJob{Time: s.cfg.Now().UTC(), ID: model.JobID(req.GetId()), Reason: "cancelled by user"})
	if err != nil {
		return nil, toStatus(err)
	}
	j, _ := out.(*model.Job)
	if j == nil {
		return nil, status.Errorf(codes.Internal, "cancel of job %d returned %T", req.GetId(), out)
	}
	return wire.JobToProto(j, nil), nil
}

// Watch implements JobService.Watch (contract in api/vhpc.proto).
func (js *jobService) Watch(req *api.WatchJobRequest, stream grpc.ServerStreamingServer[api.JobEvent]) error {
	s := js.s
	id := model.JobID(req.GetId())
	var last string
	for {
		changed := s.fsm.Changed()
		snap, err := s.readSnapshot(stream.Context(), false)
		if err != nil {
			return err
		}
		j := snap.Job(id)
		if j == nil {
			return status.Errorf(codes.NotFound, "job %d does not exist", id)
		}
		view := s.jobView(snap, j, viewAllocs) // no scheduling pass per change
		msg := describeJob(j, view)
		if msg != last {
			if err := stream.Send(&api.JobEvent{Job: view, Message: msg}); err != nil {
				return err
			}
			last = msg
		}
		if j.State.Terminal() && liveCount(view) == 0 {
			return nil
		}
		select {
		case <-stream.Context().Done():
			return stream.Context().Err()
		case <-s.stop:
			return status.Error(codes.Unavailable, "server shutting down")
		case <-changed:
		case <-time.After(2 * time.Second): // pending reasons change without a commit
		}
	}
}

func liveCount(j *api.Job) int {
	n := 0
	for _, a := range j.GetAllocations() {
		if !model.AllocState(a.GetState()).Terminal() {
			n++
		}
	}
	return n
}

// describeJob is the one-line progress message Watch sends when it changes:
// the job's state and, per node of the current attempt, where it is.
func describeJob(j *model.Job, v *api.Job) string {
	if j.State == model.JobPending {
		if v.Reason != "" {
			return "pending (" + v.Reason + ")"
		}
		return "pending"
	}
	var parts []string
	for _, a := range v.GetAllocations() {
		if j.Array == nil && a.GetAttempt() != j.Attempt {
			continue
		}
		if j.Array != nil && model.AllocState(a.GetState()).Terminal() {
			continue
		}
		switch model.AllocState(a.GetState()) {
		case model.AllocPending:
			parts = append(parts, "scheduled on node "+a.GetNode())
		case model.AllocStarting:
			parts = append(parts, a.GetReason()+" on node "+a.GetNode())
		case model.AllocRunning:
			parts = append(parts, "running on node "+a.GetNode())
		}
	}
	if len(parts) == 0 || j.State.Terminal() {
		return string(j.State)
	}
	return strings.Join(parts, "; ")
}

// toStatus maps FSM and Raft errors to gRPC codes.
func toStatus(err error) error {
	switch {
	case err == nil:
		return nil
	case errors.Is(err, fsm.ErrNotFound):
		return status.Error(codes.NotFound, err.Error())
	case errors.Is(err, fsm.ErrStaleAttempt), errors.Is(err, fsm.ErrConflict):
		return status.Error(codes.FailedPrecondition, err.Error())
	case errors.Is(err, context.DeadlineExceeded):
		return status.Error(codes.DeadlineExceeded, err.Error())
	case errors.Is(err, context.Canceled):
		return status.Error(codes.Canceled, err.Error())
	}
	if _, ok := status.FromError(err); ok {
		return err
	}
	return status.Error(codes.Unavailable, err.Error())
}

// priorityDetail is the "priority" line of `hpcsub show`: the job's rank,
// its runtime estimate, and the guard that put it ahead, if any.
func priorityDetail(ex core.Explanation) string {
	d := fmt.Sprintf("rank %d in the queue; runtime estimate %s", ex.Rank, ex.Estimate)
	if g := ex.Guard(); g != "" {
		d += "; " + g
	}
	return d
}

// checkClientToken refuses a client token longer than maxTokenBytes: every
// mutating RPC (Submit, image Put and Remove) checks it before anything
// is proposed.
func checkClientToken(tok string) error {
	if len(tok) > maxTokenBytes {
		return status.Errorf(codes.InvalidArgument, "client_token is %d bytes; the limit is %d", len(tok), maxTokenBytes)
	}
	return nil
}
