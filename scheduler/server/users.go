package server

import (
	"context"
	"os"
	"slices"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/peer"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/timestamppb"

	"vhpc/api"
	"vhpc/scheduler/fsm"
	"vhpc/scheduler/model"
	"vhpc/security/audit"
	"vhpc/security/pki"
)

// authService implements AuthService (api/vhpc_auth.proto): who the
// caller is, the users table, the audit log.
type authService struct {
	api.UnimplementedAuthServiceServer
	s *Server
}

func userToProto(u *model.User) *api.UserRecord {
	return &api.UserRecord{Name: u.Name, Departments: slices.Clone(u.Departments), AdminOf: slices.Clone(u.AdminOf)}
}

// WhoAmI implements AuthService.WhoAmI: answered from this member's state.
func (as *authService) WhoAmI(ctx context.Context, _ *api.WhoAmIRequest) (*api.WhoAmIResponse, error) {
	id, ok := caller(ctx)
	if !ok {
		return nil, status.Error(codes.FailedPrecondition, "this member runs without identities (insecure mode): there is no credential to show")
	}
	out := &api.WhoAmIResponse{Role: string(id.Role), Name: id.Name, Member: as.s.cfg.ID}
	if u := as.s.fsm.Store().Snapshot().User(id.Name); u != nil && (id.Role == pki.RoleUser || id.Role == pki.RoleOperator) {
		out.Known, out.Departments, out.AdminOf = true, slices.Clone(u.Departments), slices.Clone(u.AdminOf)
	}
	// The expiry of the certificate the call came with (not known for a
	// call forwarded by another member).
	if p, ok := peer.FromContext(ctx); ok {
		if info, ok := p.AuthInfo.(credentials.TLSInfo); ok && len(info.State.PeerCertificates) > 0 {
			leaf := info.State.PeerCertificates[0]
			if pid, err := pki.IdentityOf(leaf); err == nil && pid == id {
				out.NotAfter = timestamppb.New(leaf.NotAfter)
			}
		}
	}
	return out, nil
}

// PutUser implements AuthService.PutUser.
func (as *authService) PutUser(ctx context.Context, req *api.PutUserRequest) (*api.UserRecord, error) {
	s := as.s
	u := model.User{Name: req.GetName(), Departments: req.GetDepartments(), AdminOf: req.GetAdminOf()}.Normalized()
	if err := u.Validate(); err != nil {
		return nil, status.Error(codes.InvalidArgument, err.Error())
	}
	if c, fctx, ok, err := atLeader(s, ctx, api.NewAuthServiceClient); err != nil {
		return nil, err
	} else if ok {
		return c.PutUser(fctx, req)
	}
	out, err := s.apply(ctx, fsm.EntryPutUser, &fsm.PutUser{Time: s.cfg.Now().UTC(), User: u})
	if err != nil {
		return nil, toStatus(err)
	}
	stored, _ := out.(*model.User)
	if stored == nil {
		return nil, status.Errorf(codes.Internal, "put user %s returned %T", u.Name, out)
	}
	return userToProto(stored), nil
}

// RemoveUser implements AuthService.RemoveUser.
func (as *authService) RemoveUser(ctx context.Context, req *api.RemoveUserRequest) (*api.RemoveUserResponse, error) {
	s := as.s
	if req.GetName() == "" {
		return nil, status.Error(codes.InvalidArgument, "remove user: name is missing")
	}
	if c, fctx, ok, err := atLeader(s, ctx, api.NewAuthServiceClient); err != nil {
		return nil, err
	} else if ok {
		return c.RemoveUser(fctx, req)
	}
	if s.fsm.Store().Snapshot().User(req.GetName()) == nil {
		return nil, status.Errorf(codes.NotFound, "user %s does not exist", req.GetName())
	}
	if _, err := s.apply(ctx, fsm.EntryPutUser, &fsm.PutUser{Time: s.cfg.Now().UTC(), User: model.User{Name: req.GetName()}, Remove: true}); err != nil {
		return nil, toStatus(err)
	}
	return &api.RemoveUserResponse{}, nil
}

// ListUsers implements AuthService.ListUsers (linearizable: on the leader).
func (as *authService) ListUsers(ctx context.Context, req *api.ListUsersRequest) (*api.ListUsersResponse, error) {
	if c, fctx, ok, err := atLeader(as.s, ctx, api.NewAuthServiceClient); err != nil {
		return nil, err
	} else if ok {
		return c.ListUsers(fctx, req)
	}
	snap, err := as.s.readSnapshot(ctx, false)
	if err != nil {
		return nil, err
	}
	out := &api.ListUsersResponse{}
	for u := range snap.Users() {
		out.Users = append(out.Users, userToProto(u))
	}
	return out, nil
}

// ReadAudit implements AuthService.ReadAudit: this member's own log.
func (as *authService) ReadAudit(req *api.ReadAuditRequest, stream grpc.ServerStreamingServer[api.AuditRecord]) error {
	path := as.s.AuditLogPath()
	if path == "" {
		return status.Error(codes.FailedPrecondition, "this member runs without an audit log (insecure mode)")
	}
	var since time.Time
	if req.GetSince() != nil {
		since = req.GetSince().AsTime()
	}
	f, err := os.Open(path)
	if err != nil {
		return status.Errorf(codes.Internal, "open audit log: %v", err)
	}
	defer f.Close()
	err = audit.Read(f, since, func(r audit.Record) error {
		return stream.Send(&api.AuditRecord{Time: timestamppb.New(r.Time), Identity: r.Identity, Via: r.Via, Method: r.Method,
			Target: r.Target, Outcome: string(r.Outcome), Code: r.Code, Reason: r.Reason})
	})
	if _, ok := status.FromError(err); !ok {
		return status.Errorf(codes.Internal, "read audit log: %v", err)
	}
	return err
}

// PutUser adds or replaces a user on this member, which must lead (`hpcd
// dev` adds its local user this way once it leads).
func (s *Server) PutUser(ctx context.Context, u model.User) error {
	u = u.Normalized()
	if err := u.Validate(); err != nil {
		return err
	}
	if !s.isLeader() {
		return s.notLeader()
	}
	_, err := s.apply(ctx, fsm.EntryPutUser, &fsm.PutUser{Time: s.cfg.Now().UTC(), User: u})
	return err
}
