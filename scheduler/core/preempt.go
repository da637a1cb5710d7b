package core

import (
	"fmt"
	"slices"
	"strings"
	"time"

	"vhpc/scheduler/model"
)

// qosRank orders QOS levels for preemption: low < normal ("" too) < high.
func qosRank(qos string) int {
	switch qos {
	case "low":
		return 0
	case "high":
		return 2
	}
	return 1
}

// gangKey names the gang of one job task.
type gangKey struct {
	job  model.JobID
	task int64
}

// victim is one running gang (every allocation of one job task attempt)
// that a job of a higher QOS could stop.
type victim struct {
	j       *model.Job
	task    int64
	attempt uint64
	started time.Time
	allocs  []model.AllocID
	nodes   []int
}

// victims lists the running gangs in partition part that a job of QOS rank
// may preempt, cheapest first: lowest QOS, then the most recently started
// (least work lost), then the highest job id. Gangs already being stopped
// are left out: they free their resources anyway.
func (s *sched) victims(rank int, part string) []victim {
	inPart := map[int]bool{}
	for _, n := range s.partNodes(part) {
		inPart[n] = true
	}
	type key = gangKey
	byKey := map[key]*victim{}
	var order []key
	skip := map[key]bool{}
	for _, a := range s.allocs {
		k := key{a.Job, a.Task}
		j := s.jobs[a.Job]
		if a.State.Terminal() || j == nil {
			continue
		}
		n, ok := s.cl.byName[a.Placement.Node]
		if a.StopRequested || s.preempted[k] || qosRank(j.QOS) >= rank || !ok || !inPart[n] {
			skip[k] = true // a gang is taken whole or not at all
			continue
		}
		v := byKey[k]
		if v == nil {
			v = &victim{j: j, task: a.Task, attempt: a.Attempt, started: a.Started}
			if v.started.IsZero() {
				v.started = a.Created
			}
			byKey[k] = v
			order = append(order, k)
		}
		v.allocs = append(v.allocs, a.ID)
		v.nodes = append(v.nodes, n)
	}
	var out []victim
	for _, k := range order {
		if !skip[k] {
			out = append(out, *byKey[k])
		}
	}
	slices.SortFunc(out, func(a, b victim) int {
		if ra, rb := qosRank(a.j.QOS), qosRank(b.j.QOS); ra != rb {
			return ra - rb
		}
		if c := b.started.Compare(a.started); c != 0 {
			return c
		}
		if a.j.ID != b.j.ID {
			return cmpU(uint64(b.j.ID), uint64(a.j.ID))
		}
		return int(a.task - b.task)
	})
	return out
}

// tryPreempt is called for a task of c that cannot start now. Under
// PreemptRequeue it looks for the fewest, cheapest running gangs of a
// lower QOS whose end would let the task start, and if there are such,
// adds their preemption to the plan and reserves the task on the freed
// nodes from StopGrace on. It returns the pending reason, or "" when
// preemption does not apply (off, nothing lower to stop, not enough even
// if everything lower stopped, or gangs already stopping will free enough).
func (s *sched) tryPreempt(c candidate, task, d int64) string {
	rank := qosRank(c.j.QOS)
	if s.cfg.Preemption != PreemptRequeue || rank <= s.lowestRunningQOS() {
		return ""
	}
	r := &c.j.Request
	nodes := s.partNodes(c.key.part)
	grace := max(int64(s.cfg.StopGrace), int64(time.Second))
	if t, _, _, ok := s.cl.earliest(r, nodes, d); ok && t <= grace {
		return "" // what is already stopping frees enough: a plain reservation follows
	}
	vs := s.victims(rank, c.key.part)
	if len(vs) == 0 {
		return ""
	}
	// Stop victims in order until the task fits over [grace, grace+d) (what
	// ends before the grace anyway needs no stopping), then put back any
	// that turned out not to be needed (most valuable first).
	detached := make([][]placedHolder, 0, len(vs))
	fits := false
	for _, v := range vs {
		detached = append(detached, s.cl.detach(v.j.ID, v.task, v.nodes))
		if _, _, ok := s.cl.gangAt(r, nodes, grace, d); ok {
			fits = true
			break
		}
	}
	if !fits {
		for _, hs := range detached {
			s.cl.attach(hs)
		}
		return ""
	}
	chosen := make([]bool, len(detached))
	for i := range chosen {
		chosen[i] = true
	}
	for i := len(detached) - 1; i >= 0; i-- {
		s.cl.attach(detached[i])
		if _, _, ok := s.cl.gangAt(r, nodes, grace, d); ok {
			chosen[i] = false
			continue
		}
		detached[i] = s.cl.detach(vs[i].j.ID, vs[i].task, vs[i].nodes)
	}
	picked, uses, _ := s.cl.gangAt(r, nodes, grace, d)
	// The victims keep their resources until their guests stop: plan them
	// to end at the grace time, and the preempting task right after.
	var names []string
	for i, hs := range detached {
		if !chosen[i] {
			continue
		}
		for _, ph := range hs {
			ph.h.end = min(ph.h.end, grace)
			s.cl.add(ph.n, ph.h)
		}
		v := vs[i]
		s.preempted[gangKey{v.j.ID, v.task}] = true
		s.plan.Preemptions = append(s.plan.Preemptions, model.Preemption{
			Job: v.j.ID, Task: v.task, Attempt: v.attempt, Allocs: slices.Clone(v.allocs), By: c.j.ID,
			Reason: fmt.Sprintf("preempted by job %d (QOS %s over %s)", c.j.ID, qosName(c.j.QOS), qosName(v.j.QOS)),
		})
		names = append(names, fmt.Sprint(v.j.ID))
	}
	s.reserve(c, task, picked, uses, grace, d)
	return fmt.Sprintf("preempting job %s (lower QOS); starts when its guests have stopped", strings.Join(names, ", "))
}

// lowestRunningQOS is the lowest QOS rank of a live allocation not being
// stopped (3 when there is none), computed once per cycle: a job can only
// preempt when its rank is above it.
func (s *sched) lowestRunningQOS() int {
	if s.lowestQOS >= 0 {
		return s.lowestQOS
	}
	s.lowestQOS = 3
	for _, a := range s.allocs {
		if j := s.jobs[a.Job]; j != nil && !a.State.Terminal() && !a.StopRequested {
			s.lowestQOS = min(s.lowestQOS, qosRank(j.QOS))
		}
	}
	return s.lowestQOS
}

func qosName(q string) string {
	if q == "" {
		return "normal"
	}
	return q
}
