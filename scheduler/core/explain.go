package core

import (
	"fmt"
	"time"

	"vhpc/scheduler/model"
)

// Explanation is why one job is where it is in the queue, for `hpcsub show`
// and `hpcsub --dry-run`.
type Explanation struct {
	Job model.JobID
	// Found is false when the job is not a candidate (unknown, running
	// without tasks left, or ended); the other fields are then empty.
	Found bool
	// Rank is the job's 1-based position in the cycle's order.
	Rank int
	// Priority is the weighted sum of Factors (0 under the fcfs policies).
	Priority float64
	// Starving is true when the job waited past the starvation threshold
	// (Config.StarvationAge, lowered with the backlog by
	// Config.StarvationBacklog down to Config.StarvationFloor) and
	// is ordered by submit time ahead of all younger jobs.
	Starving bool
	// Urgent is true when the job's expansion factor reached
	// Config.SlowdownGuard: it is ordered ahead of all but the starving jobs.
	Urgent bool
	// Factors are the raw factors, Weights what multiplies them.
	Factors Factors
	Weights Weights
	// Estimate is the runtime the plan assumes for the job.
	Estimate time.Duration
	// Reason is the plan's pending reason ("" when it starts now).
	Reason string
	// Start is the start the plan makes for the job now, if any.
	Start *model.Start
	// EstimatedStart is when the job is expected to start: Now when it
	// starts, its reservation's time, or a time computed for this
	// explanation from the plan as it stood; zero when unknown.
	EstimatedStart time.Time
	// Nodes are the nodes of the start or expected start.
	Nodes []string
}

// String renders the explanation in a few lines.
func (e Explanation) String() string {
	if !e.Found {
		return fmt.Sprintf("job %d: not waiting to start", e.Job)
	}
	s := fmt.Sprintf("job %d: rank %d, priority %.1f (age %.2f, fair-share %.2f, size %.2f, qos %.2f), estimate %s\n",
		e.Job, e.Rank, e.Priority, e.Factors.Age, e.Factors.FairShare, e.Factors.Size, e.Factors.QOS, e.Estimate)
	if g := e.Guard(); g != "" {
		s += g + "\n"
	}
	if e.Reason == "" {
		return s + fmt.Sprintf("starts now on %v\n", e.Nodes)
	}
	s += "pending: " + e.Reason + "\n"
	if !e.EstimatedStart.IsZero() {
		s += fmt.Sprintf("estimated start: %s on %v\n", e.EstimatedStart.UTC().Format(time.RFC3339), e.Nodes)
	}
	return s
}

// Guard says which guard, if any, put the job ahead of the priority order
// ("" when none did). String and `hpcsub show`'s priority line print it.
func (e Explanation) Guard() string {
	switch {
	case e.Starving:
		return "starving: waited past the starvation age, ordered ahead of younger jobs"
	case e.Urgent:
		return "urgent: slowed down past the slowdown guard, ordered ahead of the others"
	}
	return ""
}

// explainState is the hook Explain puts into one Schedule pass.
type explainState struct {
	id  model.JobID
	out Explanation
}

// Explain runs the same cycle as Schedule and reports, for job id, its
// priority factors, its place in the order, the plan's reason and an
// estimated start (its reservation, or the earliest fit given the plan's
// starts and the reservations ahead of it). Pure, like Schedule.
func Explain(in Input, cfg Config, id model.JobID) Explanation {
	s := newSched(&in, &cfg)
	s.explain = &explainState{id: id, out: Explanation{Job: id}}
	s.run()
	if s.explain.out.Found {
		s.explain.out.Reason = s.plan.Pending[id]
	}
	return s.explain.out
}

func (e *explainState) record(s *sched, c candidate, rank int, why string) {
	o := &e.out
	o.Found, o.Rank, o.Factors, o.Weights = true, rank+1, c.f, s.cfg.Weights
	o.Priority, o.Estimate, o.Reason, o.Starving, o.Urgent = c.prio, c.est, why, c.starved, c.urgent
	for i := range s.plan.Starts {
		if st := s.plan.Starts[i]; st.Job == e.id {
			o.Start = &st
			o.EstimatedStart = s.in.Now
			o.Nodes = nodesOf(st.Placements)
			return
		}
	}
	for _, r := range s.plan.Reservations {
		if r.Job == e.id {
			o.EstimatedStart, o.Nodes = r.At, r.Nodes
			return
		}
	}
	if s.depReason(c.j) != "" || s.staticReason(c.j, c.key) != "" {
		return
	}
	if t, nodes, _, ok := s.cl.earliest(&c.j.Request, s.imageNodes(c.j), s.partNodes(c.key.part), int64(c.est)); ok {
		o.EstimatedStart = s.in.Now.Add(time.Duration(t))
		names := make([]string, len(nodes))
		for i, n := range nodes {
			names[i] = s.cl.nodes[n].info.node.Name
		}
		o.Nodes = names
	}
}

func nodesOf(ps []model.Placement) []string {
	out := make([]string, len(ps))
	for i, p := range ps {
		out[i] = p.Node
	}
	return out
}
