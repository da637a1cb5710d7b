package server

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"slices"
	"strconv"
	"time"

	"github.com/hashicorp/raft"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"vhpc/api"
	"vhpc/scheduler/fsm"
)

type clusterService struct {
	api.UnimplementedClusterServiceServer
	s *Server
}

// status describes the cluster from this member's point of view.
func (s *Server) status() (*api.ClusterStatus, error) {
	stats := s.raft.Stats()
	num := func(k string) uint64 { v, _ := strconv.ParseUint(stats[k], 10, 64); return v }
	addr, leaderID := s.raft.LeaderWithID()
	snap := s.fsm.Store().Snapshot()
	out := &api.ClusterStatus{
		Id: s.cfg.ID, State: s.raft.State().String(), LeaderId: string(leaderID), LeaderAddress: string(addr),
		Term: num("term"), CommitIndex: num("commit_index"), AppliedIndex: num("applied_index"),
		LastLogIndex: num("last_log_index"), LastSnapshotIndex: num("last_snapshot_index"),
		LastContact: stats["last_contact"], Jobs: uint64(snap.JobCount()),
	}
	cf := s.raft.GetConfiguration()
	if err := cf.Error(); err != nil {
		return nil, status.Errorf(codes.Unavailable, "raft configuration: %v", err)
	}
	for _, srv := range cf.Configuration().Servers {
		m := &api.Member{Id: string(srv.ID), RaftAddress: string(srv.Address), Suffrage: srv.Suffrage.String(), Leader: srv.ID == leaderID}
		if rec, ok := snap.Member(string(srv.ID)); ok {
			m.GrpcAddress = rec.GRPCAddr
		}
		out.Members = append(out.Members, m)
	}
	slices.SortFunc(out.Members, func(a, b *api.Member) int {
		switch {
		case a.Id < b.Id:
			return -1
		case a.Id > b.Id:
			return 1
		}
		return 0
	})
	return out, nil
}

// Status implements ClusterService.Status (contract in api/vhpc.proto).
func (cs *clusterService) Status(ctx context.Context, _ *api.ClusterStatusRequest) (*api.ClusterStatus, error) {
	return cs.s.status()
}

// membershipChange runs one Raft configuration change on the leader and
// waits for it to commit; Raft applies one change at a time.
func (s *Server) membershipChange(f raft.IndexFuture, what string) (*api.ClusterStatus, error) {
	if err := f.Error(); err != nil {
		return nil, status.Errorf(codes.FailedPrecondition, "%s: %v", what, err)
	}
	s.log.Info("membership changed", "change", what, "index", f.Index())
	return s.status()
}

// AddMember implements ClusterService.AddMember (contract in api/vhpc.proto).
func (cs *clusterService) AddMember(ctx context.Context, req *api.AddMemberRequest) (*api.ClusterStatus, error) {
	s := cs.s
	if req.GetId() == "" || req.GetRaftAddress() == "" {
		return nil, status.Error(codes.InvalidArgument, "add-member needs an id and a raft address")
	}
	if c, fctx, ok, err := atLeader(s, ctx, api.NewClusterServiceClient); err != nil {
		return nil, err
	} else if ok {
		return c.AddMember(fctx, req)
	}
	return s.membershipChange(s.raft.AddVoter(raft.ServerID(req.GetId()), raft.ServerAddress(req.GetRaftAddress()), 0, 30*time.Second),
		fmt.Sprintf("add %s at %s", req.GetId(), req.GetRaftAddress()))
}

// RemoveMember implements ClusterService.RemoveMember (contract in api/vhpc.proto).
func (cs *clusterService) RemoveMember(ctx context.Context, req *api.RemoveMemberRequest) (*api.ClusterStatus, error) {
	s := cs.s
	if req.GetId() == "" {
		return nil, status.Error(codes.InvalidArgument, "remove-member needs an id")
	}
	if c, fctx, ok, err := atLeader(s, ctx, api.NewClusterServiceClient); err != nil {
		return nil, err
	} else if ok {
		return c.RemoveMember(fctx, req)
	}
	st, err := s.membershipChange(s.raft.RemoveServer(raft.ServerID(req.GetId()), 0, 30*time.Second), "remove "+req.GetId())
	if err != nil {
		return nil, err
	}
	if _, err := s.apply(ctx, fsm.EntrySetMember, &fsm.SetMember{ID: req.GetId(), Remove: true}); err != nil {
		s.log.Warn("forget removed member's address", "member", req.GetId(), "err", err)
	}
	return st, nil
}

// TransferLeadership implements ClusterService.TransferLeadership (contract in api/vhpc.proto).
func (cs *clusterService) TransferLeadership(ctx context.Context, req *api.TransferLeadershipRequest) (*api.ClusterStatus, error) {
	s := cs.s
	if c, fctx, ok, err := atLeader(s, ctx, api.NewClusterServiceClient); err != nil {
		return nil, err
	} else if ok {
		return c.TransferLeadership(fctx, req)
	}
	if req.GetTo() == s.cfg.ID {
		return s.status() // already leads: nothing to hand over
	}
	var f raft.Future
	if req.GetTo() == "" {
		f = s.raft.LeadershipTransfer()
	} else {
		var addr raft.ServerAddress
		for _, srv := range s.raft.GetConfiguration().Configuration().Servers {
			if string(srv.ID) == req.GetTo() {
				addr = srv.Address
			}
		}
		if addr == "" {
			return nil, status.Errorf(codes.InvalidArgument, "no member %q in the cluster", req.GetTo())
		}
		f = s.raft.LeadershipTransferToServer(raft.ServerID(req.GetTo()), addr)
	}
	if err := f.Error(); err != nil {
		return nil, status.Errorf(codes.FailedPrecondition, "leadership transfer: %v", err)
	}
	return s.status()
}

// SnapshotSave implements ClusterService.SnapshotSave (contract in api/vhpc.proto).
func (cs *clusterService) SnapshotSave(_ *api.SnapshotSaveRequest, stream grpc.ServerStreamingServer[api.SnapshotChunk]) error {
	s := cs.s
	f := s.raft.Snapshot()
	if err := f.Error(); err != nil && err != raft.ErrNothingNewToSnapshot {
		return status.Errorf(codes.Unavailable, "take snapshot: %v", err)
	}
	// A member with nothing new since its last snapshot still has that one.
	snaps, err := s.snapshots.List()
	if err != nil || len(snaps) == 0 {
		return status.Errorf(codes.Unavailable, "no snapshot to save: %v", err)
	}
	meta, rc, err := s.snapshots.Open(snaps[0].ID)
	if err != nil {
		return status.Errorf(codes.Internal, "open snapshot: %v", err)
	}
	defer rc.Close()
	s.log.Info("streaming snapshot", "index", meta.Index, "bytes", meta.Size)
	buf := make([]byte, 256<<10)
	for {
		n, err := rc.Read(buf)
		if n > 0 {
			if err := stream.Send(&api.SnapshotChunk{Data: append([]byte(nil), buf[:n]...)}); err != nil {
				return err
			}
		}
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return status.Errorf(codes.Internal, "read snapshot: %v", err)
		}
	}
}

// SnapshotRestore implements ClusterService.SnapshotRestore (contract in api/vhpc.proto).
func (cs *clusterService) SnapshotRestore(stream grpc.ClientStreamingServer[api.SnapshotChunk, api.ClusterStatus]) error {
	s := cs.s
	if !s.isLeader() {
		return s.notLeader()
	}
	var buf bytes.Buffer
	for {
		c, err := stream.Recv()
		if err == io.EOF {
			break
		}
		if err != nil {
			return err
		}
		if buf.Len()+len(c.GetData()) > 4<<30 {
			return status.Error(codes.InvalidArgument, "snapshot larger than 4 GiB")
		}
		buf.Write(c.GetData())
	}
	// Check it decodes before it replaces anything.
	probe := fsm.New(s.log)
	if err := probe.Restore(io.NopCloser(bytes.NewReader(buf.Bytes()))); err != nil {
		return status.Errorf(codes.InvalidArgument, "not a vhpc snapshot: %v", err)
	}
	meta := &raft.SnapshotMeta{Version: raft.SnapshotVersionMax, Size: int64(buf.Len())}
	if err := s.raft.Restore(meta, bytes.NewReader(buf.Bytes()), time.Minute); err != nil {
		return status.Errorf(codes.Internal, "restore: %v", err)
	}
	s.log.Info("restored state from a snapshot", "bytes", buf.Len(), "jobs", s.fsm.Store().Snapshot().JobCount())
	st, err := s.status()
	if err != nil {
		return err
	}
	return stream.SendAndClose(st)
}

// Announce implements ClusterService.Announce (contract in api/vhpc.proto).
func (cs *clusterService) Announce(ctx context.Context, m *api.Member) (*api.ClusterStatus, error) {
	s := cs.s
	if m.GetId() == "" || m.GetGrpcAddress() == "" {
		return nil, status.Error(codes.InvalidArgument, "announce needs an id and a gRPC address")
	}
	if c, fctx, ok, err := atLeader(s, ctx, api.NewClusterServiceClient); err != nil {
		return nil, err
	} else if ok {
		return c.Announce(fctx, m)
	}
	if _, err := s.apply(ctx, fsm.EntrySetMember, &fsm.SetMember{ID: m.GetId(), GRPCAddr: m.GetGrpcAddress(), RaftAddr: m.GetRaftAddress()}); err != nil {
		return nil, toStatus(err)
	}
	return s.status()
}

// announceLoop makes sure the replicated state records this member's gRPC
// address: the leader writes its own directly, a follower asks the leader.
func (s *Server) announceLoop() {
	me := &api.Member{Id: s.cfg.ID, GrpcAddress: s.GRPCAddr(), RaftAddress: s.raftAddr}
	cs := &clusterService{s: s}
	for wait := 100 * time.Millisecond; ; wait = min(2*wait, 5*time.Second) {
		changed := s.fsm.Changed()
		if m, ok := s.fsm.Store().Snapshot().Member(s.cfg.ID); ok && m.GRPCAddr == me.GrpcAddress && m.RaftAddr == me.RaftAddress {
			select { // recorded; look again when the state changes (a restore may drop it)
			case <-s.stop:
				return
			case <-changed:
				wait = 100 * time.Millisecond
				continue
			}
		}
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		_, err := cs.Announce(ctx, me)
		cancel()
		if err != nil {
			s.log.Debug("announce address", "err", err)
		}
		select {
		case <-s.stop:
			return
		case <-time.After(wait):
		}
	}
}
