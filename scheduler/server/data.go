package server

import (
	"context"
	"errors"
	"fmt"
	"path"
	"strings"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/timestamppb"

	"vhpc/api"
	"vhpc/imagestore"
	"vhpc/jobdata"
	"vhpc/jobspec"
	"vhpc/scheduler/fsm"
	"vhpc/scheduler/model"
	"vhpc/scheduler/state"
	"vhpc/security/authz"
	"vhpc/security/regtoken"
)

// inspectTimeout bounds the master's look at a submitted file set.
const inspectTimeout = 30 * time.Second

// DataStore implements JobService.DataStore (contract in api/vhpc.proto).
// Every member answers from its own configuration.
func (js *jobService) DataStore(ctx context.Context, req *api.DataStoreRequest) (*api.DataStoreInfo, error) {
	s := js.s
	if s.cfg.ImageRegistry == "" {
		return nil, status.Error(codes.FailedPrecondition, jobdata.ErrNoStore.Error())
	}
	dept := req.GetDepartment()
	if dept == "" {
		dept = jobspec.DefaultDepartment
	}
	info := &api.DataStoreInfo{
		Registry: s.cfg.ImageRegistry, Repository: jobdata.RepositoryName(dept),
		MaxInputBytes: s.cfg.MaxInputBytes, MaxOutputBytes: s.cfg.MaxOutputBytes,
	}
	outputsRepo, err := s.dataStoreOutputs(ctx, req, dept)
	if err != nil {
		return nil, err
	}
	tok, err := s.dataStoreToken(ctx, dept, req.GetImageRepository(), outputsRepo) // regtokens.go
	if err != nil {
		return nil, err
	}
	if tok != nil {
		info.RegistryToken, info.RegistryTokenExpires = tok.Raw, timestamppb.New(tok.Expires)
	}
	return info, nil
}

// dataStoreOutputs is the outputs repository of the job a DataStore
// request asks to read ("" when it names none): the job must exist, be of
// dept, and be one the caller may see (authz.CanSeeJob: its owner, the
// department's admins, operators). Agents read outputs only through their
// own allocation's token (RegistryToken).
func (s *Server) dataStoreOutputs(ctx context.Context, req *api.DataStoreRequest, dept string) (string, error) {
	if req.GetJob() == 0 {
		return "", nil
	}
	snap := s.fsm.Store().Snapshot()
	j := snap.Job(model.JobID(req.GetJob()))
	if j == nil {
		return "", status.Errorf(codes.NotFound, "job %d not found", req.GetJob())
	}
	if j.Department != dept {
		return "", status.Errorf(codes.InvalidArgument, "job %d is of department %s, not %s", j.ID, j.Department, dept)
	}
	if id, secure := caller(ctx); secure && !authz.CanSeeJob(id, membershipOf(snap.User(id.Name)), j.User, j.Department) {
		return "", status.Errorf(codes.PermissionDenied, "job %d belongs to %s; %s may read the outputs of own jobs and of jobs of departments they administer", j.ID, j.User, id)
	}
	return jobdata.OutputRepositoryName(j.Department, uint64(j.ID)), nil
}

// checkInputs holds a submission to its stageIn: a job with stageIn names
// the file set hpcsub uploaded (one without names none), the set exists in
// the department's repository (so every blob is there: no half job), every
// file lies under a stageIn destination, and the total is within
// MaxInputBytes. The job records the set. Nothing is changed on error.
func (s *Server) checkInputs(ctx context.Context, spec *jobspec.Spec, file, digest string, j *model.Job) error {
	switch {
	case len(spec.StageIn) == 0 && digest == "":
		return nil
	case len(spec.StageIn) == 0:
		return status.Errorf(codes.InvalidArgument, "%s: the request names input files (%s) but the job has no stageIn", file, digest)
	case digest == "":
		return status.Errorf(codes.InvalidArgument, "%s: stageIn: the files were not uploaded; submit with hpcsub, which uploads them to the cluster's store (no compute host reads the submit directory)", file)
	case s.cfg.ImageRegistry == "":
		return status.Errorf(codes.FailedPrecondition, "%s: stageIn: %v", file, jobdata.ErrNoStore)
	}
	ictx, cancel := context.WithTimeout(ctx, inspectTimeout)
	defer cancel()
	repo := jobdata.RepositoryName(j.Department)
	set, err := jobdata.Inspect(ictx, s.cfg.ImageRegistry, repo, digest, s.RegistryOptions(repo, regtoken.ActionPull))
	switch {
	case err != nil && imagestore.Unavailable(err):
		return status.Errorf(codes.Unavailable, "%s: stageIn: the cluster's store is unavailable; retry: %v", file, err)
	case err != nil:
		return status.Errorf(codes.InvalidArgument, "%s: stageIn: %v", file, err)
	}
	var dests []string
	for _, st := range spec.StageIn {
		dests = append(dests, path.Clean(st.To))
	}
	for _, f := range set.Files {
		if !underAny(f.Path, dests) {
			return status.Errorf(codes.InvalidArgument, "%s: stageIn: the uploaded file set holds %s, which no stageIn destination (%s) names", file, f.Path, strings.Join(dests, ", "))
		}
	}
	if n := set.Bytes(); n > s.cfg.MaxInputBytes {
		return status.Errorf(codes.InvalidArgument, "%s: stageIn: %d bytes of input files; this cluster takes at most %d per job (hpcd --max-input-bytes)", file, n, s.cfg.MaxInputBytes)
	}
	if quota, ok := s.cfg.DataQuotas[j.Department]; ok {
		held := departmentSets(s.fsm.Store().Snapshot(), j.Department)
		if _, dup := held[digest]; !dup {
			if used := sumSets(held); used+set.Bytes() > quota {
				return status.Errorf(codes.ResourceExhausted, "%s: stageIn: department %s keeps %d bytes of job files in the store; these %d bytes would pass its quota of %d (hpcd --data-quotas). Files of finished jobs are deleted %s after they end (hpcsub fetch them first)",
					file, j.Department, used, set.Bytes(), quota, s.cfg.Retention)
			}
		}
	}
	j.Inputs, j.InputBytes, j.InputFiles = digest, set.Bytes(), len(set.Files)
	return nil
}

// underAny reports whether p is one of dests or lies under one of them.
func underAny(p string, dests []string) bool {
	for _, d := range dests {
		if p == d || strings.HasPrefix(p, d+"/") || d == "." {
			return true
		}
	}
	return false
}

// maxMissingReported bounds the missing stageOut sources an agent reports.
const maxMissingReported = 64

// outputsFromReport checks what an agent says it uploaded (nil when the
// report names nothing).
func outputsFromReport(req *api.UpdateAllocationRequest) (*model.Outputs, error) {
	if req.GetOutputs() == "" && len(req.GetOutputsMissing()) == 0 {
		return nil, nil
	}
	o := &model.Outputs{Digest: req.GetOutputs(), Repository: req.GetOutputsRepository(), Bytes: req.GetOutputBytes(), Files: int(req.GetOutputFiles())}
	if o.Digest != "" {
		if err := jobdata.CheckDigest(o.Digest); err != nil {
			return nil, fmt.Errorf("outputs: %w", err)
		}
	}
	if o.Bytes < 0 || o.Files < 0 || o.Files > jobdata.MaxFiles {
		return nil, errors.New("outputs: negative size or too many files")
	}
	if len(req.GetOutputsMissing()) > maxMissingReported {
		return nil, fmt.Errorf("outputs: %d missing paths reported; at most %d", len(req.GetOutputsMissing()), maxMissingReported)
	}
	for _, p := range req.GetOutputsMissing() {
		if err := jobdata.CheckPath(p); err != nil {
			return nil, fmt.Errorf("outputs missing: %w", err)
		}
		o.Missing = append(o.Missing, p)
	}
	return o, nil
}

// checkOutputsRepository holds the repository an agent reports its
// outputs in to the job's own (jobdata.OutputRepositoryName), the only one
// the allocation's registry token may push to. An empty one is the
// department's repository, where agents stored outputs before jobs had
// their own (only an open registry, one without tokens, still takes
// them there). The leader checks it against its state.
func checkOutputsRepository(o *model.Outputs, j *model.Job) error {
	if o == nil || o.Repository == "" {
		return nil
	}
	if want := jobdata.OutputRepositoryName(j.Department, uint64(j.ID)); o.Repository != want {
		return fmt.Errorf("outputs: repository %q is not job %d's (%s)", o.Repository, j.ID, want)
	}
	return nil
}

// departmentSets lists the file sets (digest -> bytes) that the
// department's jobs keep in the store: inputs and outputs of every job
// whose artifacts have not expired, each set once.
func departmentSets(snap *state.Snapshot, department string) map[string]int64 {
	out := map[string]int64{}
	for j := range snap.Jobs() {
		if j.Department != department || !j.ArtifactsExpired.IsZero() {
			continue
		}
		for set, n := range fsm.ArtifactsOf(snap, j) {
			out[set.Digest] = n // one digest is one set of blobs, whichever repositories name it
		}
	}
	return out
}

func sumSets(sets map[string]int64) int64 {
	var n int64
	for _, b := range sets {
		n += b
	}
	return n
}

// outputLimits answers, per department, how many bytes one allocation may
// upload: the cluster's MaxOutputBytes, or less when the department's data
// quota leaves less; negative when the quota is full (nothing is
// uploaded). It caches per department for one answer to an agent.
func (s *Server) outputLimits(snap *state.Snapshot) func(department string) int64 {
	cache := map[string]int64{}
	return func(dept string) int64 {
		if v, ok := cache[dept]; ok {
			return v
		}
		limit := s.cfg.MaxOutputBytes
		if quota, ok := s.cfg.DataQuotas[dept]; ok {
			left := quota - sumSets(departmentSets(snap, dept))
			if left <= 0 {
				left = -1
			}
			limit = min(limit, left)
		}
		cache[dept] = limit
		return limit
	}
}

// artifactsView tells a job's viewer when its file sets are deleted, or
// were.
func (s *Server) artifactsView(j *model.Job, p *api.Job) {
	switch {
	case !j.ArtifactsExpired.IsZero():
		p.ArtifactsDeleted = timestamppb.New(j.ArtifactsExpired)
	case j.State.Terminal() && !j.EndTime.IsZero() && s.cfg.ImageRegistry != "":
		p.ArtifactsExpire = timestamppb.New(j.EndTime.Add(s.cfg.Retention))
	}
}

// checkDatasetSet makes sure a dataset's digest names a file set in its
// department's repository, and records the set's size.
func (s *Server) checkDatasetSet(ctx context.Context, im *model.Image) error {
	if s.cfg.ImageRegistry == "" {
		return status.Error(codes.FailedPrecondition, jobdata.ErrNoStore.Error())
	}
	ictx, cancel := context.WithTimeout(ctx, inspectTimeout)
	defer cancel()
	repo := jobdata.RepositoryName(im.Department)
	set, err := jobdata.Inspect(ictx, s.cfg.ImageRegistry, repo, im.Digest, s.RegistryOptions(repo, regtoken.ActionPull))
	switch {
	case err != nil && imagestore.Unavailable(err):
		return status.Errorf(codes.Unavailable, "dataset %s: the cluster's store is unavailable; retry: %v", im.Ref(), err)
	case err != nil:
		return status.Errorf(codes.InvalidArgument, "dataset %s: %v (push it with hpc data push)", im.Ref(), err)
	}
	im.SizeBytes = set.Bytes()
	return nil
}
