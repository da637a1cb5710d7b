package sim

import (
	"container/heap"
	"slices"
	"strconv"
	"time"

	"vhpc/scheduler/core"
	"vhpc/scheduler/model"
)

// state is the virtual cluster during a replay.
type state struct {
	jobs    []*simJob
	cfg     core.Config
	pending []*simJob
	// allocs are the running allocations, gang after gang in start order
	// (each gang whole, in rank order): appended at its start, removed
	// at its end.
	allocs []*model.Alloc
	// ended lists the jobs finished at the current event, removed from
	// allocs together (one pass per event, not one per job).
	ended   []model.JobID
	running int // jobs running (gangs in allocs)
	idBuf   []byte
	idEnds  []int
	ends    endHeap
	usage   map[string]float64
	lastUse int64
	history map[string][]model.Run
	waits   []float64
	until   int64
	// wasted is the core-seconds preempted gangs had run (Result.PreemptedCoreSeconds).
	wasted float64
	// planner keeps the core's node index between events (the nodes never
	// change during a replay); its plans are core.Schedule's.
	planner core.Planner
	rebuild bool // Options.Rebuild: core.Schedule at every event
	resume  bool // Options.ResumePreempted
	// resumed is the core-seconds preempted gangs had run and kept
	// (Result.ResumedCoreSeconds).
	resumed float64
	// wakes are the times of the wake-ups in ends (wake).
	wakes map[int64]bool
	// idle profiles the idle cores (Options.IdleProfile; nil when off).
	idle *idleProbe
	// record keeps each preempted run in runs (Options.Preemptions).
	record bool
	runs   []PreemptedRun
}

func newState(jobs []*simJob, cfg core.Config) *state {
	return &state{jobs: jobs, cfg: cfg, usage: map[string]float64{}, history: map[string][]model.Run{}, wakes: map[int64]bool{}}
}

func (s *state) loop(nodes []*model.Node, clock func() time.Time, res *Result) {
	next := 0
	var first, last int64 = -1, 0
	var used float64
	var bs float64
	var coreTotal time.Duration
	for next < len(s.jobs) || s.ends.Len() > 0 {
		t := int64(1) << 62
		if next < len(s.jobs) {
			t = s.jobs[next].tj.Submit
		}
		if s.ends.Len() > 0 && s.ends[0].at < t {
			t = s.ends[0].at
		}
		if first < 0 {
			first = t
		}
		if s.until > 0 && t > s.until {
			break
		}
		for s.ends.Len() > 0 && s.ends[0].at == t {
			ev := heap.Pop(&s.ends).(endEvent)
			if ev.idx < 0 {
				delete(s.wakes, ev.at)
				continue // a wake-up
			}
			if s.jobs[ev.idx].gen != ev.gen {
				continue // the end of a run that was preempted
			}
			s.finish(s.jobs[ev.idx], t)
		}
		s.dropEnded()
		for next < len(s.jobs) && s.jobs[next].tj.Submit == t {
			s.pending = append(s.pending, s.jobs[next])
			next++
		}
		s.decay(t)
		if len(s.pending) == 0 {
			// Nothing to start: the plan would have no starts (a replay
			// has no arrays), so the cycle is skipped.
			res.IdleCycles++
			if s.idle != nil {
				s.idle.note(s, nil, t)
			}
			continue
		}
		in := s.input(nodes, t)
		t0 := clock()
		var plan model.Plan
		if s.rebuild {
			plan = core.Schedule(in, s.cfg)
		} else {
			plan = s.planner.Schedule(in, s.cfg)
			if s.planner.Pooled() {
				res.PoolCycles++
			}
		}
		d := clock().Sub(t0)
		coreTotal += d
		res.CoreMax = max(res.CoreMax, d)
		res.Cycles++
		for _, st := range plan.Starts {
			s.start(st, t)
		}
		for _, p := range plan.Preemptions {
			s.requeue(p.Job, p.By, t)
			res.Preempted++
		}
		if len(plan.Preemptions) > 0 {
			// The gangs stop at once; the job that preempted them is
			// reserved from StopGrace on, so wake a cycle then.
			s.dropEnded()
			s.wake(t + max(int64(s.cfg.StopGrace/time.Second), 1))
		}
		if !plan.Recheck.IsZero() {
			// A live server cycles every second; this replay cycles at
			// events, so it wakes where the plan changes with none.
			// (the first whole second from it: times here are seconds)
			at := plan.Recheck.Sub(epoch)
			s.wake(max(int64((at+time.Second-1)/time.Second), t+1))
		}
		s.compactPending()
		if s.idle != nil {
			s.idle.note(s, &plan, t)
		}
	}
	done := s.jobs[:0:0]
	for _, sj := range s.jobs {
		if sj.job.State == model.JobPending {
			continue
		}
		done = append(done, sj)
		res.MostPreempted = max(res.MostPreempted, sj.gen)
		res.Starts = append(res.Starts, JobStart{ID: sj.tj.ID, At: sj.startAt, End: sj.end()})
		end := sj.end()
		if s.until > 0 {
			end = min(end, s.until)
		}
		res.Dept[sj.job.Department] += float64(sj.cores * (max(end-sj.startAt, 0) + sj.done))
	}
	for _, sj := range done {
		// The wait is the time the job was not running: the response
		// time less the run, which is the time to its last start unless
		// it resumed a kept run.
		end := sj.end()
		w := float64(end - sj.tj.Submit - sj.actual)
		s.waits = append(s.waits, w)
		bs += bsld(w, float64(sj.actual))
		used += float64(sj.cores * sj.actual)
		last = max(last, end)
	}
	res.Jobs = len(done)
	res.PreemptedCoreSeconds = s.wasted
	res.Preemptions = s.runs
	res.ResumedCoreSeconds = s.resumed
	res.finish(s.waits)
	if res.Jobs > 0 {
		res.AvgBSLD = bs / float64(res.Jobs)
	}
	res.Makespan = float64(last - first)
	if s.idle != nil {
		res.Idle = s.idle.result(last)
	}
	procs := 0
	for _, n := range nodes {
		procs += len(n.Cores)
	}
	if res.Makespan > 0 {
		res.Utilization = used / (float64(procs) * res.Makespan)
	}
	if res.Cycles > 0 {
		res.CoreMean = coreTotal / time.Duration(res.Cycles)
	}
}

func (s *state) input(nodes []*model.Node, t int64) core.Input {
	jobs := make([]*model.Job, 0, len(s.pending)+s.running)
	for _, sj := range s.pending {
		jobs = append(jobs, sj.job)
	}
	// Running jobs in allocs order, one gang at a time (a gang's
	// allocations are consecutive, rank 0 first).
	for i := 0; i < len(s.allocs); {
		sj := s.jobs[s.allocs[i].Job-1]
		jobs = append(jobs, sj.job)
		i += max(len(sj.gang), 1)
	}
	return core.Input{Now: epoch.Add(time.Duration(t) * time.Second), Nodes: nodes, Jobs: jobs,
		Allocs: s.allocs, Usage: s.usage, History: s.history}
}

func (s *state) start(st model.Start, t int64) {
	sj := s.jobs[st.Job-1]
	now := epoch.Add(time.Duration(t) * time.Second)
	// A gang's allocations are cut from one array, and their IDs ("job.rank")
	// from one string: one object each, not one a node.
	sj.job.Attempt++ // as the state machine numbers a job's placements
	gang := make([]model.Alloc, len(st.Placements))
	ids, ends := s.gangIDs(st.Job, len(gang))
	for i, p := range st.Placements {
		a := &gang[i]
		*a = model.Alloc{ID: model.AllocID(ids[ends[i]:ends[i+1]]), Job: st.Job, Rank: i, Attempt: sj.job.Attempt,
			Placement: p, State: model.AllocRunning, Created: now, Started: now, Deadline: now.Add(sj.job.Walltime), Speculative: st.Speculative}
		s.allocs = append(s.allocs, a)
	}
	sj.gang = gang
	s.running++
	sj.job.State = model.JobRunning
	sj.job.StartTime = now
	sj.startAt = t
	sj.predicted = 0
	if s.record && st.Speculative {
		sj.predicted = int64(core.Estimate(s.history, sj.job, s.cfg) / time.Second)
	}
	heap.Push(&s.ends, endEvent{at: sj.end(), idx: int(st.Job - 1), gen: sj.gen})
}

// end is when sj's current run ends: the rest of its run from its last
// start.
func (sj *simJob) end() int64 { return sj.startAt + sj.actual - sj.done }

// wake schedules a cycle at at (virtual seconds), once per time: a
// replay cycles only at events.
func (s *state) wake(at int64) {
	if s.wakes[at] {
		return
	}
	s.wakes[at] = true
	heap.Push(&s.ends, endEvent{at: at, idx: -1})
}

// requeue stops a running job at t (a preemption of its gang, for job
// by) and puts it back in the queue with its submit time, as the state
// machine does; the run's core-seconds count as wasted, not as used,
// unless the run is kept (Options.ResumePreempted): then the job waits
// with the rest of its run and walltime.
func (s *state) requeue(id, by model.JobID, t int64) {
	sj := s.jobs[id-1]
	s.stop(sj, t)
	ran := t - sj.startAt
	if s.record {
		b := s.jobs[by-1]
		s.runs = append(s.runs, PreemptedRun{Job: sj.tj.ID, Cores: sj.cores, Start: sj.startAt, Stop: t,
			Run: sj.actual - sj.done, Walltime: int64(sj.job.Walltime / time.Second), Predicted: sj.predicted,
			By: b.tj.ID, ByWaited: t - b.tj.Submit})
	}
	if s.resume {
		s.resumed += float64(sj.cores * ran)
		sj.done += ran
		sj.job.Walltime -= time.Duration(ran) * time.Second
	} else {
		s.wasted += float64(sj.cores * ran)
	}
	sj.gen++
	sj.job.State = model.JobPending
	sj.job.StartTime = time.Time{}
	s.pending = append(s.pending, sj)
}

// gangIDs returns the allocation IDs "job.0" ... "job.(n-1)" in one
// string, the i-th at [ends[i], ends[i+1]). ends is valid until the next
// call.
func (s *state) gangIDs(job model.JobID, n int) (ids string, ends []int) {
	b := strconv.AppendUint(s.idBuf[:0], uint64(job), 10)
	b = append(b, '.')
	prefix := len(b)
	ends = append(s.idEnds[:0], 0)
	for i := range n {
		if i > 0 {
			b = append(b, b[:prefix]...)
		}
		b = strconv.AppendInt(b, int64(i), 10)
		ends = append(ends, len(b))
	}
	s.idBuf, s.idEnds = b, ends
	return string(b), ends
}

func (s *state) finish(sj *simJob, t int64) {
	s.stop(sj, t)
	sj.job.State = model.JobCompleted
	sj.job.Walltime += time.Duration(sj.done) * time.Second // the kind the user submitted
	core.RecordRuntime(s.history, sj.job.User, model.Run{Kind: sj.job.Kind(), Runtime: time.Duration(sj.actual) * time.Second}, model.RunsKept)
}

// stop ends sj's run at t, by its end or a preemption: its usage is
// charged and its allocations leave allocs at dropEnded.
func (s *state) stop(sj *simJob, t int64) {
	for i := range sj.gang {
		s.usage[sj.job.Department] += core.Charge(sj.gang[i].Placement, time.Duration(t-sj.startAt)*time.Second, s.cfg)
	}
	sj.gang = nil
	s.running--
	s.ended = append(s.ended, sj.job.ID)
}

// dropEnded removes the allocations of the jobs finish ended at this
// event from allocs, keeping the order.
func (s *state) dropEnded() {
	if len(s.ended) == 0 {
		return
	}
	out := s.allocs[:0]
	for _, a := range s.allocs {
		if !slices.Contains(s.ended, a.Job) {
			out = append(out, a)
		}
	}
	clear(s.allocs[len(out):])
	s.allocs = out
	s.ended = s.ended[:0]
}

func (s *state) decay(t int64) {
	if t > s.lastUse && s.cfg.HalfLife > 0 && len(s.usage) > 0 {
		s.usage = core.DecayUsage(s.usage, time.Duration(t-s.lastUse)*time.Second, s.cfg.HalfLife)
	}
	s.lastUse = t
}

func (s *state) compactPending() {
	out := s.pending[:0]
	for _, sj := range s.pending {
		if sj.job.State == model.JobPending {
			out = append(out, sj)
		}
	}
	s.pending = out
}
