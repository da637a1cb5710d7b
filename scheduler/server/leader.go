package server

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"maps"
	"sync"
	"time"

	"vhpc/scheduler/core"
	"vhpc/scheduler/fsm"
	"vhpc/scheduler/model"
)

// leadershipLoop runs the leader's duties while this member leads: a
// barrier first (so the state holds every committed entry), then the
// scheduling loop and the node lease monitor.
func (s *Server) leadershipLoop() {
	var (
		cancel context.CancelFunc
		wg     sync.WaitGroup
	)
	stopDuties := func() {
		s.setReady(false)
		if cancel != nil {
			cancel()
			wg.Wait()
			cancel = nil
		}
	}
	defer stopDuties()
	for {
		select {
		case <-s.stop:
			return
		case isLeader := <-s.raft.LeaderCh():
			stopDuties()
			if !isLeader {
				s.log.Info("lost leadership")
				continue
			}
			ctx, stopFn := context.WithCancel(context.Background())
			cancel = stopFn
			wg.Add(1)
			go func() {
				defer wg.Done()
				s.leaderDuties(ctx)
			}()
		}
	}
}

func (s *Server) leaderDuties(ctx context.Context) {
	// What a previous term heard of the nodes' image caches may be stale;
	// the heartbeats this term accepts tell it again.
	s.images.reset()
	if err := s.raft.Barrier(30 * time.Second).Error(); err != nil {
		s.log.Error("leader barrier failed; stepping back", "err", err)
		return
	}
	s.log.Info("leading", "id", s.cfg.ID, "applied_index", s.fsm.Store().Snapshot().Index())
	s.setReady(true)
	defer s.setReady(false)
	// Agents get a full lease from now to reach the new leader.
	s.mu.Lock()
	now := s.cfg.Now()
	s.heartbeat = map[string]time.Time{}
	for n := range s.fsm.Store().Snapshot().Nodes() {
		s.heartbeat[n.Name] = now
	}
	s.mu.Unlock()
	var wg sync.WaitGroup
	wg.Add(3)
	go func() { defer wg.Done(); s.scheduleLoop(ctx) }()
	go func() { defer wg.Done(); s.leaseLoop(ctx) }()
	go func() { defer wg.Done(); s.retentionLoop(ctx) }() // retention.go
	wg.Wait()
}

// minCycleGap spaces scheduling cycles under a stream of changes, so a
// burst of submissions costs a few cycles, not one per commit.
const minCycleGap = 25 * time.Millisecond

// scheduleLoop runs one cycle after every state change (coalescing
// bursts) and at least once a second, for time-driven decisions such as
// reservations and job age.
//
// The loop keeps one core.Planner for the leadership term: its plans are
// core.Schedule's, and it keeps the node index and the allocations'
// converted placements between cycles. Its contract (a node or
// allocation pointer it saw is never changed in place) is the state
// store's: snapshots are immutable, every Put stores a fresh copy (the
// FSM copies before it changes anything) and a restore builds new
// objects, so fsm.CoreInput hands the same pointers only for unchanged
// objects. Only this goroutine calls it; the handlers' dry runs and
// Explain keep core.Schedule and core.Explain.
func (s *Server) scheduleLoop(ctx context.Context) {
	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	var planner core.Planner
	var last time.Time
	for {
		if gap := minCycleGap - time.Since(last); gap > 0 {
			select {
			case <-time.After(gap):
			case <-ctx.Done():
				return
			}
		}
		last = time.Now()
		changed := s.fsm.Changed()
		started, err := s.scheduleOnce(ctx, &planner)
		if err != nil && ctx.Err() == nil {
			s.log.Warn("scheduling cycle", "err", err)
		}
		if started > 0 {
			continue // our own plan changed the state; look again at once
		}
		select {
		case <-ctx.Done():
			return
		case <-changed:
		case <-tick.C:
		}
	}
}

// scheduleOnce computes a plan on the current snapshot with the term's
// planner, remembers why each job waits, and commits the starts. It
// returns how many starts committed.
func (s *Server) scheduleOnce(ctx context.Context, planner *core.Planner) (int, error) {
	now := s.cfg.Now().UTC()
	snap := s.fsm.Store().Snapshot()
	in := s.coreInput(snap, now)
	t0 := time.Now()
	plan := planner.Schedule(in, s.cfg.Scheduler)
	s.metrics.schedule.Observe(time.Since(t0).Seconds())
	pending := withNotice(maps.Clone(plan.Pending), s.clusterNotice(snap))
	s.mu.Lock()
	s.pending = pending
	s.mu.Unlock()
	if len(plan.Starts) == 0 && len(plan.Preemptions) == 0 {
		return 0, nil
	}
	for i := range plan.Starts {
		if j := snap.Job(plan.Starts[i].Job); j != nil && j.Networked() {
			secret := make([]byte, 32)
			_, _ = rand.Read(secret) // crypto/rand.Read never fails (Go 1.24+)
			plan.Starts[i].NetSecret = hex.EncodeToString(secret)
		}
	}
	out, err := s.apply(ctx, fsm.EntryApplyPlan, &fsm.ApplyPlan{Time: now, Starts: plan.Starts, Preemptions: plan.Preemptions})
	if err != nil {
		return 0, fmt.Errorf("commit plan of %d starts: %w", len(plan.Starts), err)
	}
	res, _ := out.(fsm.PlanResult)
	for _, r := range res.Rejected {
		s.log.Warn("plan item rejected at commit", "reason", r)
	}
	if res.Applied > 0 || res.Preempted > 0 {
		s.log.Info("plan committed", "starts", res.Applied, "preemptions", res.Preempted, "rejected", len(res.Rejected))
	}
	return res.Applied, nil
}

// pendingReason is the leader's latest word on why a job waits.
func (s *Server) pendingReason(id model.JobID) (string, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	r, ok := s.pending[id]
	return r, ok
}

// leaseLoop marks nodes down when they miss their lease, which requeues
// their allocations (with a new attempt number) per job retry policy.
func (s *Server) leaseLoop(ctx context.Context) {
	tick := time.NewTicker(s.cfg.HeartbeatInterval)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
		now := s.cfg.Now()
		for n := range s.fsm.Store().Snapshot().Nodes() {
			if n.State == model.NodeDown {
				continue
			}
			s.mu.Lock()
			last, ok := s.heartbeat[n.Name]
			if !ok {
				s.heartbeat[n.Name] = now
				last = now
			}
			s.mu.Unlock()
			if now.Sub(last) <= s.cfg.Lease {
				continue
			}
			reason := fmt.Sprintf("no heartbeat for %s (lease %s)", now.Sub(last).Round(time.Second), s.cfg.Lease)
			s.log.Warn("node missed its lease", "node", n.Name, "reason", reason)
			if _, err := s.apply(ctx, fsm.EntrySetNodeState, &fsm.SetNodeState{Time: now.UTC(), Name: n.Name, State: model.NodeDown, Reason: reason}); err != nil {
				s.log.Warn("mark node down", "node", n.Name, "err", err)
			}
		}
	}
}

// sawNode records a heartbeat or registration from a node.
func (s *Server) sawNode(name string) {
	s.mu.Lock()
	s.heartbeat[name] = s.cfg.Now()
	s.mu.Unlock()
}
