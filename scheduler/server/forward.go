package server

import (
	"context"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	"vhpc/security/authz"
)

// forwardedKey marks a request one member forwarded to another; a
// forwarded request is never forwarded again (no loops while leadership
// moves).
const forwardedKey = "x-vhpc-forwarded-by"

// leaderConn returns a connection to the leader's gRPC API, from the
// addresses members announced into the replicated state.
func (s *Server) leaderConn(ctx context.Context) (*grpc.ClientConn, error) {
	if md, ok := metadata.FromIncomingContext(ctx); ok && len(md.Get(forwardedKey)) > 0 {
		return nil, s.notLeader()
	}
	_, id := s.raft.LeaderWithID()
	if id == "" || string(id) == s.cfg.ID {
		return nil, s.notLeader()
	}
	m, ok := s.fsm.Store().Snapshot().Member(string(id))
	if !ok || m.GRPCAddr == "" {
		return nil, status.Errorf(codes.Unavailable, "leader %s has not announced its API address yet; retry shortly", id)
	}
	s.fwdMu.Lock()
	defer s.fwdMu.Unlock()
	if c, ok := s.fwdConns[m.GRPCAddr]; ok {
		return c, nil
	}
	c, err := grpc.NewClient(m.GRPCAddr, grpc.WithTransportCredentials(s.peerCredentials()))
	if err != nil {
		return nil, status.Errorf(codes.Unavailable, "dial leader %s at %s: %v", id, m.GRPCAddr, err)
	}
	s.fwdConns[m.GRPCAddr] = c
	return c, nil
}

// forwardCtx carries the caller's deadline and identity (the leader
// accepts it from a member's server certificate and applies the ACL table
// to the original caller) and marks the hop.
func (s *Server) forwardCtx(ctx context.Context) context.Context {
	return metadata.AppendToOutgoingContext(authz.ForwardContext(ctx), forwardedKey, s.cfg.ID)
}

// atLeader returns a client of the leader's API when this member is not
// the (ready) leader, or ok=false when it should answer itself.
func atLeader[C any](s *Server, ctx context.Context, newClient func(grpc.ClientConnInterface) C) (c C, fctx context.Context, ok bool, err error) {
	if s.isLeader() {
		return c, ctx, false, nil
	}
	conn, err := s.leaderConn(ctx)
	if err != nil {
		return c, ctx, false, err
	}
	return newClient(conn), s.forwardCtx(ctx), true, nil
}

func (s *Server) closeForwarders() {
	s.fwdMu.Lock()
	defer s.fwdMu.Unlock()
	for _, c := range s.fwdConns {
		_ = c.Close()
	}
	s.fwdConns = map[string]*grpc.ClientConn{}
}
