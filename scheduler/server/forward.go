package server

import (
	"context"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	"vhpc/api"
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
	c, err := grpc.NewClient(m.GRPCAddr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		return nil, status.Errorf(codes.Unavailable, "dial leader %s at %s: %v", id, m.GRPCAddr, err)
	}
	s.fwdConns[m.GRPCAddr] = c
	return c, nil
}

// forwardCtx carries the caller's deadline and marks the hop.
func (s *Server) forwardCtx(ctx context.Context) context.Context {
	return metadata.AppendToOutgoingContext(ctx, forwardedKey, s.cfg.ID)
}

// jobsAtLeader returns a JobService client for the leader when this member
// is not the (ready) leader, or nil when it should answer itself.
func (s *Server) jobsAtLeader(ctx context.Context) (api.JobServiceClient, context.Context, error) {
	if s.isLeader() {
		return nil, ctx, nil
	}
	c, err := s.leaderConn(ctx)
	if err != nil {
		return nil, ctx, err
	}
	return api.NewJobServiceClient(c), s.forwardCtx(ctx), nil
}

// nodesAtLeader is jobsAtLeader for the NodeService.
func (s *Server) nodesAtLeader(ctx context.Context) (api.NodeServiceClient, context.Context, error) {
	if s.isLeader() {
		return nil, ctx, nil
	}
	c, err := s.leaderConn(ctx)
	if err != nil {
		return nil, ctx, err
	}
	return api.NewNodeServiceClient(c), s.forwardCtx(ctx), nil
}

// clusterAtLeader is jobsAtLeader for the ClusterService.
func (s *Server) clusterAtLeader(ctx context.Context) (api.ClusterServiceClient, context.Context, error) {
	if s.isLeader() {
		return nil, ctx, nil
	}
	c, err := s.leaderConn(ctx)
	if err != nil {
		return nil, ctx, err
	}
	return api.NewClusterServiceClient(c), s.forwardCtx(ctx), nil
}

func (s *Server) closeForwarders() {
	s.fwdMu.Lock()
	defer s.fwdMu.Unlock()
	for _, c := range s.fwdConns {
		_ = c.Close()
	}
	s.fwdConns = map[string]*grpc.ClientConn{}
}
