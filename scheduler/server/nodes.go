package server

import (
	"context"
	"fmt"
	"net/netip"
	"slices"
	"strings"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"

	"vhpc/api"
	"vhpc/scheduler/fsm"
	"vhpc/scheduler/model"
	"vhpc/scheduler/state"
	"vhpc/wire"
)

// DefaultPartition is the partition of nodes that name none, and the
// jobspec default, so a fresh cluster runs jobs with no partition setup.
const DefaultPartition = "default"

type nodeService struct {
	api.UnimplementedNodeServiceServer
	s *Server
}

// validNodeName keeps node names to what fits in logs, metrics labels and
// domain names.
func validNodeName(n string) error {
	if n == "" || len(n) > 64 {
		return fmt.Errorf("node name %q must be 1..64 characters", n)
	}
	for _, r := range n {
		if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || strings.ContainsRune("._-", r)) {
			return fmt.Errorf("node name %q has %q; allowed: letters, digits, '.', '_', '-'", n, r)
		}
	}
	return nil
}

// Register implements NodeService.Register (contract in api/vhpc.proto).
func (ns *nodeService) Register(ctx context.Context, req *api.RegisterRequest) (*api.RegisterResponse, error) {
	s := ns.s
	n := wire.NodeFromProto(req.GetNode())
	if n.Partition == "" {
		n.Partition = DefaultPartition
	}
	if err := validNodeName(n.Name); err != nil {
		return nil, status.Error(codes.InvalidArgument, err.Error())
	}
	if n.Underlay != "" {
		if ap, err := netip.ParseAddrPort(n.Underlay); err != nil || !ap.Addr().Is4() || ap.Port() == 0 {
			return nil, status.Errorf(codes.InvalidArgument, "node %s: underlay %q: want an IPv4 address and UDP port, e.g. 10.0.0.7:4789", n.Name, n.Underlay)
		}
	}
	if len(n.Cores) == 0 || n.MemoryMiB() <= 0 {
		return nil, status.Errorf(codes.InvalidArgument, "node %s registered %d cores and %d MiB of memory; an agent must report its inventory", n.Name, len(n.Cores), n.MemoryMiB())
	}
	if c, fctx, ok, err := atLeader(s, ctx, api.NewNodeServiceClient); err != nil {
		return nil, err
	} else if ok {
		return c.Register(fctx, req)
	}
	if _, err := s.apply(ctx, fsm.EntryRegisterNode, &fsm.RegisterNode{Time: s.cfg.Now().UTC(), Node: n}); err != nil {
		return nil, toStatus(err)
	}
	s.sawNode(n.Name)
	s.log.Info("node registered", "node", n.Name, "cores", len(n.Cores), "memory_mib", n.MemoryMiB(), "gpus", len(n.GPUs), "hypervisor", n.Hypervisor)
	return &api.RegisterResponse{HeartbeatIntervalMs: s.cfg.HeartbeatInterval.Milliseconds(), LeaseMs: s.cfg.Lease.Milliseconds()}, nil
}

// Heartbeat implements NodeService.Heartbeat (contract in api/vhpc.proto).
func (ns *nodeService) Heartbeat(ctx context.Context, req *api.HeartbeatRequest) (*api.HeartbeatResponse, error) {
	s := ns.s
	cached, err := checkCachedImages(req.GetCachedImages())
	if err != nil {
		return nil, status.Errorf(codes.InvalidArgument, "node %q: %v", req.GetNode(), err)
	}
	if c, fctx, ok, err := atLeader(s, ctx, api.NewNodeServiceClient); err != nil {
		return nil, err
	} else if ok {
		return c.Heartbeat(fctx, req)
	}
	n := s.fsm.Store().Snapshot().Node(req.GetNode())
	if n == nil {
		return nil, status.Errorf(codes.NotFound, "node %q is not registered; register first", req.GetNode())
	}
	if n.State == model.NodeDown {
		// Its allocations were given up when it went down; it comes back empty.
		if _, err := s.apply(ctx, fsm.EntrySetNodeState, &fsm.SetNodeState{Time: s.cfg.Now().UTC(), Name: n.Name, State: model.NodeReady, Reason: "heartbeat resumed"}); err != nil {
			return nil, toStatus(err)
		}
	}
	s.sawNode(n.Name)
	s.images.set(n.Name, cached)
	return &api.HeartbeatResponse{LeaseMs: s.cfg.Lease.Milliseconds()}, nil
}

// WatchAllocations implements NodeService.WatchAllocations (contract in api/vhpc.proto).
func (ns *nodeService) WatchAllocations(req *api.WatchAllocationsRequest, stream grpc.ServerStreamingServer[api.AllocationSet]) error {
	s := ns.s
	var last *api.AllocationSet
	for {
		changed := s.fsm.Changed()
		if !s.isLeader() {
			return s.notLeader()
		}
		snap := s.fsm.Store().Snapshot()
		if snap.Node(req.GetNode()) == nil {
			return status.Errorf(codes.NotFound, "node %q is not registered; register first", req.GetNode())
		}
		set := nodeAllocations(snap, req.GetNode(), s.outputLimits(snap))
		set.Acceptance = wire.AcceptanceRunToProto(snap.Node(req.GetNode()).AcceptanceRun)
		if last == nil || !proto.Equal(set, last) {
			if err := stream.Send(set); err != nil {
				return err
			}
			last = set
		}
		select {
		case <-stream.Context().Done():
			return stream.Context().Err()
		case <-s.stop:
			return status.Error(codes.Unavailable, "server shutting down")
		case <-changed:
		}
	}
}

// nodeAllocations is the set of live allocations one node must run (or
// stop); each may upload at most outputLimit(its department) bytes of
// stageOut files.
func nodeAllocations(snap *state.Snapshot, node string, outputLimit func(department string) int64) *api.AllocationSet {
	set := &api.AllocationSet{}
	for a := range snap.LiveAllocs() {
		if a.Placement.Node == node {
			j := snap.Job(a.Job)
			p := wire.AllocToProto(a, j)
			if j != nil {
				p.MaxOutputBytes = outputLimit(j.Department)
			}
			if a.NetSecret != "" {
				p.NetworkSecret, p.Gang = a.NetSecret, gang(snap, a)
			}
			set.Allocations = append(set.Allocations, p)
		}
	}
	return set
}

// gang lists the nodes of a's attempt by rank, with their underlays, for
// the agent that builds the job network.
func gang(snap *state.Snapshot, a *model.Alloc) []*api.GangMember {
	var out []*api.GangMember
	for o := range snap.JobAllocs(a.Job) {
		if o.Task != a.Task || o.Attempt != a.Attempt {
			continue
		}
		m := &api.GangMember{Rank: int32(o.Rank), Node: o.Placement.Node}
		if n := snap.Node(o.Placement.Node); n != nil {
			m.Underlay = n.Underlay
		}
		out = append(out, m)
	}
	slices.SortFunc(out, func(x, y *api.GangMember) int { return int(x.Rank - y.Rank) })
	return out
}

// UpdateAllocation implements NodeService.UpdateAllocation (contract in api/vhpc.proto).
func (ns *nodeService) UpdateAllocation(ctx context.Context, req *api.UpdateAllocationRequest) (*api.UpdateAllocationResponse, error) {
	s := ns.s
	st := model.AllocState(req.GetState())
	switch st {
	case model.AllocStarting, model.AllocRunning, model.AllocCompleted, model.AllocFailed, model.AllocCancelled, model.AllocTimedOut, model.AllocRequeued:
	default:
		return nil, status.Errorf(codes.InvalidArgument, "state %q: want starting, running, completed, failed, cancelled, timeout or requeued", req.GetState())
	}
	outputs, err := outputsFromReport(req) // data.go
	if err != nil {
		return nil, status.Error(codes.InvalidArgument, err.Error())
	}
	if c, fctx, ok, err := atLeader(s, ctx, api.NewNodeServiceClient); err != nil {
		return nil, err
	} else if ok {
		return c.UpdateAllocation(fctx, req)
	}
	if outputs != nil {
		snap := s.fsm.Store().Snapshot()
		if a := snap.Alloc(model.AllocID(req.GetAllocId())); a != nil {
			if j := snap.Job(a.Job); j != nil {
				if err := checkOutputsRepository(outputs, j); err != nil { // data.go
					return nil, status.Error(codes.InvalidArgument, err.Error())
				}
			}
		}
	}
	_, err = s.apply(ctx, fsm.EntryUpdateAlloc, &fsm.UpdateAlloc{
		Time: s.cfg.Now().UTC(), ID: model.AllocID(req.GetAllocId()), Node: req.GetNode(), Attempt: req.GetAttempt(),
		State: st, ExitCode: int(req.GetExitCode()), Reason: req.GetReason(),
		BootSeconds: req.GetBootSeconds(), RunSeconds: req.GetRunSeconds(), GPUUsage: wire.GPUUsageFromProto(req.GetGpuUsage()),
		ImagePulled: req.GetImagePulled(), Outputs: outputs,
	})
	if err != nil {
		return nil, toStatus(err)
	}
	return &api.UpdateAllocationResponse{}, nil
}

// Nodes implements JobService.Nodes (contract in api/vhpc.proto).
func (js *jobService) Nodes(ctx context.Context, req *api.NodesRequest) (*api.NodesResponse, error) {
	if c, fctx, ok, err := atLeader(js.s, ctx, api.NewJobServiceClient); err != nil {
		return nil, err
	} else if ok {
		return c.Nodes(fctx, req)
	}
	snap, err := js.s.readSnapshot(ctx, false)
	if err != nil {
		return nil, err
	}
	used := map[string]*api.Node{}
	for a := range snap.LiveAllocs() {
		u := used[a.Placement.Node]
		if u == nil {
			u = &api.Node{}
			used[a.Placement.Node] = u
		}
		u.UsedCores += int32(len(a.Placement.Cores))
		u.UsedMemoryMib += a.Placement.MemoryMiB
		u.UsedGpus += int32(len(a.Placement.GPUs))
		u.UsedScratchMib += a.Placement.Scratch
		u.Allocations++
	}
	out := &api.NodesResponse{}
	for n := range snap.Nodes() {
		p := wire.NodeToProto(n)
		if u := used[n.Name]; u != nil {
			p.UsedCores, p.UsedMemoryMib, p.UsedGpus, p.UsedScratchMib, p.Allocations = u.UsedCores, u.UsedMemoryMib, u.UsedGpus, u.UsedScratchMib, u.Allocations
		}
		out.Nodes = append(out.Nodes, p)
	}
	slices.SortFunc(out.Nodes, func(a, b *api.Node) int { return strings.Compare(a.Name, b.Name) })
	out.Notice = js.s.clusterNotice(snap)
	return out, nil
}

// SetGPUHealth implements NodeService.SetGPUHealth (contract in api/vhpc.proto).
func (ns *nodeService) SetGPUHealth(ctx context.Context, req *api.GPUHealthRequest) (*api.Node, error) {
	s := ns.s
	if len(req.GetReason()) > 512 {
		return nil, status.Errorf(codes.InvalidArgument, "reason is %d bytes; the limit is 512", len(req.GetReason()))
	}
	if c, fctx, ok, err := atLeader(s, ctx, api.NewNodeServiceClient); err != nil {
		return nil, err
	} else if ok {
		return c.SetGPUHealth(fctx, req)
	}
	out, err := s.apply(ctx, fsm.EntryGPUHealth, &fsm.GPUHealth{Time: s.cfg.Now().UTC(), Node: req.GetNode(), PCI: req.GetPciAddress(), Reason: req.GetReason()})
	if err != nil {
		return nil, toStatus(err)
	}
	n, _ := out.(*model.Node)
	if n == nil {
		return nil, status.Errorf(codes.Internal, "GPU health change returned %T", out)
	}
	if req.GetReason() != "" {
		s.log.Warn("GPU taken out of service", "node", req.GetNode(), "gpu", req.GetPciAddress(), "reason", req.GetReason())
	} else {
		s.log.Info("GPU returned to service", "node", req.GetNode(), "gpu", req.GetPciAddress())
	}
	return wire.NodeToProto(n), nil
}
