package server

import (
	"context"
	"errors"
	"io"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"vhpc/api"
	"vhpc/scheduler/fsm"
	"vhpc/scheduler/model"
	"vhpc/scheduler/state"
)

// Job output lives in the replicated state (fsm.AppendOutput, one entry
// per pushed chunk), so every member has it and a failover loses none of
// it. Agents push to the leader (followers forward); users read from any
// member (stale) or the leader.

// PushLogs implements NodeService.PushLogs (contract in api/vhpc.proto):
// on the leader each chunk is committed as one AppendOutput entry before
// the next is read; a follower relays the stream to the leader. A chunk
// the FSM refuses as a gap ends the stream with FailedPrecondition and a
// PushLogsResponse detail whose Have is the offset to resend from.
func (ns *nodeService) PushLogs(stream grpc.ClientStreamingServer[api.LogChunk, api.PushLogsResponse]) error {
	s := ns.s
	ctx := stream.Context()
	if c, fctx, ok, err := atLeader(s, ctx, api.NewNodeServiceClient); err != nil {
		return err
	} else if ok {
		return relayPushLogs(stream, c, fctx)
	}
	resp := &api.PushLogsResponse{}
	for {
		c, err := stream.Recv()
		if err == io.EOF {
			return stream.SendAndClose(resp)
		}
		if err != nil {
			return err
		}
		if len(c.GetData()) > fsm.MaxOutputChunk {
			return status.Errorf(codes.InvalidArgument, "log chunk of %d bytes; send at most %d bytes per chunk", len(c.GetData()), fsm.MaxOutputChunk)
		}
		out, err := s.apply(ctx, fsm.EntryAppendOutput, &fsm.AppendOutput{
			Job: model.JobID(c.GetJob()), Alloc: model.AllocID(c.GetAllocId()), Attempt: c.GetAttempt(),
			Offset: c.GetOffset(), Data: c.GetData(),
		})
		if err != nil {
			return pushLogsStatus(err)
		}
		r, ok := out.(fsm.OutputResult)
		if !ok {
			return status.Errorf(codes.Internal, "append output returned %T", out)
		}
		resp.Have, resp.Truncated = r.Have, r.Truncated
	}
}

// pushLogsStatus maps an AppendOutput error to gRPC; a gap carries the
// offset to resend from as a PushLogsResponse detail.
func pushLogsStatus(err error) error {
	var gap *fsm.GapError
	if !errors.As(err, &gap) {
		return toStatus(err)
	}
	st, derr := status.New(codes.FailedPrecondition, gap.Error()).WithDetails(&api.PushLogsResponse{Have: gap.Have})
	if derr != nil {
		return status.Errorf(codes.Internal, "attach the gap's offset: %v", derr)
	}
	return st.Err()
}

// relayPushLogs copies a follower's PushLogs stream to the leader and the
// leader's answer (or error) back.
func relayPushLogs(stream grpc.ClientStreamingServer[api.LogChunk, api.PushLogsResponse], c api.NodeServiceClient, fctx context.Context) error {
	up, err := c.PushLogs(fctx)
	if err != nil {
		return err
	}
	for {
		chunk, err := stream.Recv()
		if err == io.EOF {
			resp, err := up.CloseAndRecv()
			if err != nil {
				return err
			}
			return stream.SendAndClose(resp)
		}
		if err != nil {
			return err
		}
		if err := up.Send(chunk); err != nil {
			_, err = up.CloseAndRecv() // the leader's status, not the send's io.EOF
			return err
		}
	}
}

// Logs implements JobService.Logs (contract in api/vhpc.proto): the job's
// output from the replicated state, from req.Offset; with follow, new
// chunks as they are applied, until the job and its allocations have
// ended. Without stale a follower relays the leader's stream.
func (js *jobService) Logs(req *api.LogsRequest, stream grpc.ServerStreamingServer[api.LogChunk]) error {
	s := js.s
	ctx := stream.Context()
	if !req.GetStale() {
		if c, fctx, ok, err := atLeader(s, ctx, api.NewJobServiceClient); err != nil {
			return err
		} else if ok {
			return relayLogs(stream, c, fctx, req)
		}
	}
	if _, err := s.readSnapshot(ctx, req.GetStale()); err != nil {
		return err
	}
	id := model.JobID(req.GetId())
	offset := max(req.GetOffset(), 0)
	for {
		changed := s.fsm.Changed()
		snap := s.fsm.Store().Snapshot()
		j := snap.Job(id)
		if j == nil {
			return status.Errorf(codes.NotFound, "job %d does not exist", id)
		}
		for c := range snap.JobOutput(id, offset) {
			data := c.Data[max(offset-c.Offset, 0):]
			if err := stream.Send(&api.LogChunk{Job: uint64(id), AllocId: string(c.Alloc), Attempt: c.Attempt, Offset: offset, Data: data}); err != nil {
				return err
			}
			offset = c.End()
		}
		if !req.GetFollow() || ended(snap, j) {
			return nil
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-s.stop:
			return status.Error(codes.Unavailable, "server shutting down; resume at the last offset on another member")
		case <-changed:
		}
	}
}

// ended: the job is terminal and none of its allocations is live, so no
// more output will come (agents push an allocation's last output before
// its final report).
func ended(snap *state.Snapshot, j *model.Job) bool {
	if !j.State.Terminal() {
		return false
	}
	for a := range snap.JobAllocs(j.ID) {
		if !a.State.Terminal() {
			return false
		}
	}
	return true
}

// relayLogs copies the leader's Logs stream to a caller of a follower.
func relayLogs(stream grpc.ServerStreamingServer[api.LogChunk], c api.JobServiceClient, fctx context.Context, req *api.LogsRequest) error {
	up, err := c.Logs(fctx, req)
	if err != nil {
		return err
	}
	for {
		m, err := up.Recv()
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return err
		}
		if err := stream.Send(m); err != nil {
			return err
		}
	}
}
