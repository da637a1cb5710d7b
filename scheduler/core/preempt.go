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

// victims lists the running gangs in partition part that a job of QOS
// rank may preempt, cheapest first: lowest QOS, then the most recently
// started (least work lost), then the highest job id. Gangs already being
// stopped, or stopped by this plan, are left out: they free their
// resources anyway. The full list is built once per partition and cycle;
// a rank takes its prefix (the list is ordered by QOS first).
func (s *sched) victims(rank int, part string) []victim {
	var out []victim
	for _, v := range s.allVictims(victimSet{part, false}) {
		if qosRank(v.j.QOS) >= rank {
			break
		}
		if !s.preempted[gangKey{v.j.ID, v.task}] {
			out = append(out, v)
		}
	}
	return out
}

// victimSet names one of buildVictims' lists: the partition's gangs, all
// of them or only the speculative ones.
type victimSet struct {
	part        string
	speculative bool
}

// allVictims is buildVictims' list for set, built once per cycle.
func (s *sched) allVictims(set victimSet) []victim {
	all, ok := s.victimList[set]
	if !ok {
		all = s.buildVictims(set)
		s.victimList[set] = all
	}
	return all
}

// buildVictims lists the live gangs of set's partition, cheapest first
// (see victims): only the speculative ones for set.speculative, which a
// SpeculativeBackfill cycle asks for on every starving job that cannot
// start, so it looks at nothing else (a start marks every allocation of
// its gang alike).
func (s *sched) buildVictims(set victimSet) []victim {
	part := set.part
	byKey := map[gangKey]*victim{}
	var order []gangKey
	skip := map[gangKey]bool{}
	for _, a := range s.allocs {
		if set.speculative && !a.Speculative {
			continue
		}
		k := gangKey{a.Job, a.Task}
		j := s.jobs[a.Job]
		if a.State.Terminal() || j == nil {
			continue
		}
		n, ok := s.cl.byName[a.Placement.Node]
		if ok {
			info := s.cl.nodes[n].info // as partNodes selects
			ok = info.ready && (part == "" || info.node.Partition == part)
		}
		if a.StopRequested || qosRank(j.QOS) >= 2 || !ok {
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

// maxPreemptSearches bounds the victim searches of one cycle (each costs a
// pass over the partition's nodes). Jobs past it wait like any other and
// search in a later cycle; the leader runs cycles back to back while work
// moves, so a backlog of preemptors is worked through a batch at a time.
const maxPreemptSearches = 64

// preemptKey caches failed searches: a shape that found no set of victims
// at one rank and estimate finds none for any longer estimate later in
// the cycle (the cluster only fills up and victims are only used up).
type preemptKey struct {
	shape shapeKey
	rank  int
}

// fitSet tracks the nodes on which one task fits over a window, as
// victims are detached and put back.
type fitSet struct {
	cl     *cluster
	r      *model.Request
	img    bitset // nodes holding the job's image (gangAt); nil for none
	t0, d  int64
	member map[int]bool
	nodes  []int
}

func (fs *fitSet) recheck(n int) {
	ok := fs.cl.fitsAt(n, fs.r, fs.t0, fs.d)
	switch {
	case ok && !fs.member[n]:
		fs.member[n] = true
		fs.nodes = append(fs.nodes, n)
	case !ok && fs.member[n]:
		delete(fs.member, n)
		fs.nodes = slices.DeleteFunc(fs.nodes, func(m int) bool { return m == n })
	}
}

// gang places the task on the fitting nodes, if there are enough.
func (fs *fitSet) gang() ([]int, []use, bool) {
	if len(fs.nodes) < max(fs.r.Nodes, 1) {
		return nil, nil, false
	}
	slices.Sort(fs.nodes) // deterministic whatever the detach order
	return fs.cl.gangAt(fs.r, fs.img, fs.nodes, fs.t0, fs.d)
}

// tryPreempt is called for a task of c that cannot start now. Under
// PreemptRequeue it looks for the fewest, cheapest running gangs of a
// lower QOS whose end would let the task start, and if there are such,
// adds their preemption to the plan and reserves the task on the freed
// nodes from StopGrace on. It returns the pending reason, or "" when
// preemption does not apply (off, nothing lower to stop, not enough even
// if everything lower stopped, or what ends by the grace frees enough).
//
// The search runs on the node timelines (preemptSearch) or, on a
// one-slot cluster, on the Planner's pool (pool.preempt), with the same
// result.
func (s *sched) tryPreempt(c candidate, task, d int64) string {
	rank := qosRank(c.j.QOS)
	// Only the lead stops speculative gangs: they started in front of
	// its reservation, and with every starving job promoted
	// (StarvationSlots 0) a search for each would cost a cycle more than
	// it frees.
	spec := s.speculative() && c.starved && s.protect && c.j.ID == s.leadID
	if !spec && (s.cfg.Preemption != PreemptRequeue || rank <= s.lowestRunningQOS()) {
		return ""
	}
	if spec {
		rank = speculativeRank
	}
	pk := preemptKey{c.key, rank}
	if m, ok := s.preemptFail[pk]; (ok && d >= m) || s.preemptSearches >= maxPreemptSearches {
		return ""
	}
	s.preemptSearches++
	grace := s.stopGrace()
	victims := func() []victim {
		if spec {
			return s.speculativeVictims(c)
		}
		return s.victims(rank, c.key.part)
	}
	var fit preemptFit
	if p := s.cl.pool; p != nil {
		fit = p.preempt(s, c, grace, d, victims)
	} else {
		fit = s.preemptSearch(c, grace, d, victims)
	}
	if fit.enough {
		return "" // what ends by the grace frees enough: a plain reservation follows
	}
	if fit.picked == nil {
		if m, ok := s.preemptFail[pk]; !ok || d < m {
			s.preemptFail[pk] = d
		}
		return ""
	}
	var names []string
	for _, v := range fit.chosen {
		s.preempted[gangKey{v.j.ID, v.task}] = true
		s.plan.Preemptions = append(s.plan.Preemptions, model.Preemption{
			Job: v.j.ID, Task: v.task, Attempt: v.attempt, Allocs: slices.Clone(v.allocs), By: c.j.ID,
			Reason: preemptReason(c.j, v.j, spec),
		})
		names = append(names, fmt.Sprint(v.j.ID))
	}
	s.reserve(c, task, fit.picked, fit.uses, grace, d)
	why := "lower QOS"
	if spec {
		why = "speculative backfill past its prediction"
	}
	return fmt.Sprintf("preempting job %s (%s); starts when its guests have stopped", strings.Join(names, ", "), why)
}

// preemptFit is what a victim search for one task found: enough (what
// ends by the grace frees enough, no victim needed), or the victims to
// stop, cheapest first, already planned to release their resources at
// the grace, and the task's gang on the freed resources (picked nil when
// no set of victims frees enough).
type preemptFit struct {
	enough bool
	chosen []victim
	picked []int
	uses   []use
}

// preemptSearch is tryPreempt's search on the node timelines. The fit is
// checked over [grace, grace+d): what ends before the grace anyway needs
// no stopping. Victims are detached in order until the task fits, then
// put back, most valuable first, where it still fits without them. Only
// the victims' nodes are re-examined as victims are taken, so a search
// costs one pass over the partition plus the victims' nodes.
func (s *sched) preemptSearch(c candidate, grace, d int64, victims func() []victim) preemptFit {
	r := &c.j.Request
	fs := &fitSet{cl: s.cl, r: r, img: s.imageNodes(c.j), t0: grace, d: d, member: map[int]bool{}}
	for _, n := range s.partNodes(c.key.part) {
		fs.recheck(n)
	}
	if _, _, ok := fs.gang(); ok {
		return preemptFit{enough: true}
	}
	vs := victims()
	detached := make([][]placedHolder, 0, len(vs))
	fits := false
	for _, v := range vs {
		detached = append(detached, s.cl.detach(v.j.ID, v.task, v.nodes))
		for _, n := range v.nodes {
			fs.recheck(n)
		}
		if _, _, ok := fs.gang(); ok {
			fits = true
			break
		}
	}
	if !fits {
		for _, hs := range detached {
			s.cl.attach(hs)
		}
		return preemptFit{}
	}
	chosen := make([]bool, len(detached))
	for i := range chosen {
		chosen[i] = true
	}
	for i := len(detached) - 1; i >= 0; i-- {
		s.cl.attach(detached[i])
		for _, n := range vs[i].nodes {
			fs.recheck(n)
		}
		if _, _, ok := fs.gang(); ok {
			chosen[i] = false
			continue
		}
		detached[i] = s.cl.detach(vs[i].j.ID, vs[i].task, vs[i].nodes)
		for _, n := range vs[i].nodes {
			fs.recheck(n)
		}
	}
	fit := preemptFit{}
	fit.picked, fit.uses, _ = fs.gang()
	// The victims keep their resources until their guests stop: plan them
	// to end at the grace, and the preempting task right after.
	for i, hs := range detached {
		if !chosen[i] {
			continue
		}
		for _, ph := range hs {
			ph.h.end = min(ph.h.end, grace)
			s.cl.add(ph.n, ph.h)
		}
		fit.chosen = append(fit.chosen, vs[i])
	}
	return fit
}

// speculativeRank marks tryPreempt's failed-search cache entries for
// speculative victims (above every QOS rank).
const speculativeRank = 3

// speculative reports whether this cycle runs SpeculativeBackfill: the
// default policy planning with predictions.
func (s *sched) speculative() bool {
	return s.cfg.SpeculativeBackfill && s.cfg.Policy == PolicyDefault && s.cfg.Estimate == EstimatePredicted
}

// speculativeVictims lists the running gangs a starving job c may stop
// under SpeculativeBackfill: started speculatively, of jobs submitted
// after c (so a requeued victim never outranks the job it made room
// for), most recently started first.
func (s *sched) speculativeVictims(c candidate) []victim {
	var out []victim
	for _, v := range s.allVictims(victimSet{c.key.part, true}) {
		if v.j.SubmitTime.After(c.j.SubmitTime) && !s.preempted[gangKey{v.j.ID, v.task}] {
			out = append(out, v)
		}
	}
	return out
}

// preemptReason is the reason a preempted gang's allocations carry.
func preemptReason(by, victim *model.Job, spec bool) string {
	if spec {
		return fmt.Sprintf("preempted by starving job %d: started speculatively and ran past its prediction into its reservation", by.ID)
	}
	return fmt.Sprintf("preempted by job %d (QOS %s over %s)", by.ID, qosName(by.QOS), qosName(victim.QOS))
}

// stopGrace is when a gang asked to stop is planned to have released its
// resources, in plan time (Config.StopGrace, at least a second).
func (s *sched) stopGrace() int64 {
	return max(int64(s.cfg.StopGrace), int64(time.Second))
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
