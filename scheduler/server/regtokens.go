package server

import (
	"context"
	"fmt"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/timestamppb"

	"vhpc/api"
	"vhpc/imagestore"
	"vhpc/jobdata"
	"vhpc/scheduler/model"
	"vhpc/security/pki"
	"vhpc/security/regtoken"
)

// Who gets which registry token (Config.RegistryTokens; none without it,
// the registry is then open):
//
//   - the agent running an allocation (RegistryToken): pull of the job's
//     image repository, pull of the department's file sets (inputs,
//     datasets), pull and push of the job's own outputs repository
//     (jobdata.OutputRepositoryName), so it can neither write a file
//     set another job reads nor read another job's outputs;
//   - a user or operator (DataStore): pull and push of the department's
//     file sets (inputs and datasets are shared within a department);
//     with image_repository that repository of the same department:
//     pull, push for its admins and operators; with job, pull of that
//     job's outputs repository, for those who may see the job;
//   - the master itself (RegistryOptions): one repository and the
//     actions of the call (Inspect pulls, retention deletes).
//
// Registry names are exact, so a token of one department never opens
// another's repositories.

// allocAccess is what an allocation of job j may do in the registry.
func allocAccess(j *model.Job) []regtoken.Access {
	image := ""
	if dept, name, _, ok := model.SplitImageRef(j.ImageRef); ok && j.ImageDigest != "" {
		image = dept + "/" + name
	}
	return regtoken.AllocationAccess(image, jobdata.RepositoryName(j.Department), jobdata.OutputRepositoryName(j.Department, uint64(j.ID)))
}

// RegistryToken implements NodeService.RegistryToken (contract in
// api/vhpc.proto). The ACL table has checked that the allocation is on
// the caller's node; only a live allocation gets a token.
func (ns *nodeService) RegistryToken(ctx context.Context, req *api.RegistryTokenRequest) (*api.RegistryTokenResponse, error) {
	s := ns.s
	iss := s.cfg.RegistryTokens
	if iss == nil {
		return nil, status.Error(codes.FailedPrecondition, "this master signs no registry tokens (no registry token key; the registry is open)")
	}
	snap := s.fsm.Store().Snapshot()
	a := snap.Alloc(model.AllocID(req.GetAllocId()))
	if a == nil {
		return nil, status.Errorf(codes.NotFound, "allocation %q not found", req.GetAllocId())
	}
	if a.State.Terminal() {
		return nil, status.Errorf(codes.FailedPrecondition, "allocation %s has ended (%s): no registry token", a.ID, a.State)
	}
	j := snap.Job(a.Job)
	if j == nil {
		return nil, status.Errorf(codes.NotFound, "job %d of allocation %s not found", a.Job, a.ID)
	}
	tok, err := iss.Issue(fmt.Sprintf("agent/%s alloc %s", a.Placement.Node, a.ID), allocAccess(j)...)
	if err != nil {
		return nil, status.Errorf(codes.Internal, "registry token: %v", err)
	}
	return &api.RegistryTokenResponse{Token: tok.Raw, Expires: timestamppb.New(tok.Expires)}, nil
}

// dataStoreToken is the token DataStore hands a user or operator for the
// department dept (the ACL table has checked membership), plus
// imageRepo when named and pull of outputsRepo when named (DataStore has
// checked the caller may see its job). Agents get none here
// (RegistryToken).
func (s *Server) dataStoreToken(ctx context.Context, dept, imageRepo, outputsRepo string) (*regtoken.Token, error) {
	iss := s.cfg.RegistryTokens
	id, secure := caller(ctx)
	if iss == nil || id.Role == pki.RoleAgent {
		return nil, nil
	}
	access := []regtoken.Access{regtoken.Repository(jobdata.RepositoryName(dept), regtoken.ActionPull, regtoken.ActionPush)}
	if imageRepo != "" {
		d, name, tag, ok := model.SplitImageRef(imageRepo)
		if !ok || tag != "latest" || d+"/"+name != imageRepo {
			return nil, status.Errorf(codes.InvalidArgument, "image_repository %q: want department/name", imageRepo)
		}
		if d != dept {
			return nil, status.Errorf(codes.InvalidArgument, "image_repository %s is not of department %s", imageRepo, dept)
		}
		actions := []string{regtoken.ActionPull}
		if !secure || id.Role == pki.RoleOperator || membershipOf(s.fsm.Store().Snapshot().User(id.Name)).Administers(dept) {
			actions = append(actions, regtoken.ActionPush)
		}
		access = append(access, regtoken.Repository(imageRepo, actions...))
	}
	if outputsRepo != "" {
		access = append(access, regtoken.Repository(outputsRepo, regtoken.ActionPull))
	}
	subject := "insecure client"
	if secure {
		subject = id.String()
	}
	tok, err := iss.Issue(subject, access...)
	if err != nil {
		return nil, status.Errorf(codes.Internal, "registry token: %v", err)
	}
	return &tok, nil
}

// RegistryOptions are the options of the master's own registry calls on
// repository repo: a token for exactly actions there, signed afresh for
// each call (nil Token when the master signs none). The handlers call
// it, and hpcd dev to publish its tiny image.
func (s *Server) RegistryOptions(repo string, actions ...string) imagestore.Options {
	o := imagestore.Options{Logger: s.log}
	if iss := s.cfg.RegistryTokens; iss != nil {
		o.Token = func(context.Context, string) (string, error) {
			tok, err := iss.Issue("server/"+s.cfg.ID, regtoken.Repository(repo, actions...))
			return tok.Raw, err
		}
	}
	return o
}
