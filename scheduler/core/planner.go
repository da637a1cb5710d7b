package core

import (
	"slices"

	"vhpc/scheduler/model"
)

// Planner schedules cycle after cycle for one caller and keeps, between
// cycles, what Schedule would rebuild each time: the node index (nodes in
// name order, hardware tables shared by identical nodes, the name lookup,
// each node's free view and holder storage) and each allocation's
// placement converted to the node's tables, and its per-call working
// storage. hpcsim's replay loop calls it at every event; the server's
// loop holds one per leadership term.
//
// Guarantee: p.Schedule(in, cfg) returns exactly what Schedule(in, cfg)
// returns, for any sequence of calls (TestPlannerMatchesSchedule). The
// index is reused only when in.Nodes holds the same pointers in the same
// order as in the previous call, and the caller must then not have
// modified those nodes in place: a changed node is a new *model.Node, as
// the state store's snapshots and hpcsim both give. Anything else rebuilds
// the index. Allocations are remembered by pointer in the same way: an
// Alloc the Planner has seen must not be modified in place (a stop
// request or a new state is a new *model.Alloc, as the state store's
// snapshots and hpcsim both give), so that a run of the same pointers is
// read as the same run without reading its allocations again. A Planner
// is not safe for concurrent use; its zero value is ready to use.
//
// On a one-slot cluster (every node identical and ready, one logical CPU,
// no GPU, no partition: hpcsim's one-CPU machines) with no image locality
// and no preemption, the cycle runs on a pool (see pool): the same cycle
// and decisions, with the node timelines replaced by the busy nodes and
// their ends, and the running allocations read per gang instead of per
// node. A call the pool cannot answer the same way is run again on the
// full path, and the Planner stops trying the pool for those nodes.
// Plans are read-only: on the pool, a reservation's placements may share
// storage with an earlier plan's (equal values).
type Planner struct {
	cl      *cluster
	pool    pool
	oneSlot bool // oneSlot(cl), computed when cl is built
	pooled  bool // the last call's plan came from the pool
}

// Pooled reports whether the last Schedule call's plan was computed on the
// pool (the one-slot fast path) rather than the full path. The replay
// (sim.Result.PoolCycles) and the tests that check the fast path was
// taken call it; the plan is the same either way.
func (p *Planner) Pooled() bool { return p.pooled }

// Schedule is Schedule(in, cfg) on the planner's kept state: the same plan,
// without rebuilding the node index when the nodes are those of the last
// call. Called by hpcsim (bench/sim) once per event.
func (p *Planner) Schedule(in Input, cfg Config) model.Plan {
	cl := p.cluster(in.Nodes)
	p.pooled = false
	if p.oneSlot && !p.pool.off && len(in.ImageNodes) == 0 && (cfg.Preemption == "" || cfg.Preemption == PreemptOff) {
		p.pool.begin(len(cl.nodes))
		cl.pool = &p.pool
		s := newSchedOn(cl, &in, &cfg)
		if !p.pool.abort {
			s.run()
		}
		cl.pool = nil
		if !p.pool.abort {
			p.pooled = true
			return s.plan
		}
		p.pool.off = !p.pool.retry
		cl.reset()
	}
	s := newSchedOn(cl, &in, &cfg)
	s.run()
	return s.plan
}

// cluster returns the kept cluster emptied, or a new one when nodes are not
// the last call's.
func (p *Planner) cluster(nodes []*model.Node) *cluster {
	if p.cl != nil && slices.Equal(p.cl.src, nodes) {
		p.cl.reset()
		return p.cl
	}
	p.cl = newCluster(nodes)
	p.cl.memo = map[*model.Alloc]*allocMemo{}
	p.cl.scr = &scratch{}
	p.oneSlot = oneSlot(p.cl)
	p.pool = pool{}
	return p.cl
}
