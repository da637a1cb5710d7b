package core

import (
	"slices"

	"vhpc/scheduler/model"
)

// Planner schedules cycle after cycle for one caller and keeps, between
// cycles, what Schedule would rebuild each time: the node index (nodes in
// name order, hardware tables shared by identical nodes, the name lookup,
// each node's free view and holder storage) and each allocation's
// placement converted to the node's tables. hpcsim's replay loop calls it
// at every event; the server's loop can hold one per leadership term.
//
// Guarantee: p.Schedule(in, cfg) returns exactly what Schedule(in, cfg)
// returns, for any sequence of calls (TestPlannerMatchesSchedule). The
// index is reused only when in.Nodes holds the same pointers in the same
// order as in the previous call, and the caller must then not have
// modified those nodes in place: a changed node is a new *model.Node, as
// the state store's snapshots and hpcsim both give. Anything else rebuilds
// the index. Allocations are remembered by pointer in the same way: an
// Alloc's Placement must not be modified in place between calls (its
// State and StopRequested are read afresh each call). A Planner is not
// safe for concurrent use; its zero value is ready to use.
type Planner struct {
	cl *cluster
}

// Schedule is Schedule(in, cfg) on the planner's kept state: the same plan,
// without rebuilding the node index when the nodes are those of the last
// call. Called by hpcsim (bench/sim) once per event.
func (p *Planner) Schedule(in Input, cfg Config) model.Plan {
	s := newSchedOn(p.cluster(in.Nodes), &in, &cfg)
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
	return p.cl
}
