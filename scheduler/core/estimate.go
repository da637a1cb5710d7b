package core

import (
	"time"

	"vhpc/scheduler/model"
)

// walltime is the job's kill limit: its own, else its partition's default,
// else the config's.
func (s *sched) walltime(j *model.Job) time.Duration {
	if j.Walltime > 0 {
		return j.Walltime
	}
	if p, ok := s.cfg.Partitions[s.partition(j)]; ok && p.DefaultWalltime > 0 {
		return p.DefaultWalltime
	}
	if s.cfg.DefaultWalltime > 0 {
		return s.cfg.DefaultWalltime
	}
	return time.Hour
}

// estimate is the runtime the plan assumes for a job (or one array task):
// the walltime, or under EstimatePredicted its prediction (see predict),
// capped by the walltime.
func (s *sched) estimate(j *model.Job) time.Duration {
	w := s.walltime(j)
	if s.cfg.Estimate != EstimatePredicted {
		return w
	}
	p, ok := s.predict(j)
	if !ok {
		return w
	}
	return min(max(p, time.Second), w)
}

// predict is j's predicted runtime from its user's history, false when
// the history has nothing to go on:
//   - PredictUser: the mean of the user's last HistoryLen runs;
//   - PredictKind: the mean of the user's last HistoryLen runs of j's kind
//     (model.JobKind); for a kind the user has not run lately, j's
//     walltime times the user's mean accuracy (runtime over requested
//     walltime) over their last AccuracyLen runs: a user who asks for
//     four times what their jobs need gets a quarter of a new request.
func (s *sched) predict(j *model.Job) (time.Duration, bool) {
	h := s.in.History[j.User]
	if s.cfg.PredictBy == PredictUser {
		sum, n, _ := lastRuns(h, s.cfg.HistoryLen, nil)
		return sum / time.Duration(max(n, 1)), n > 0
	}
	kind := j.Kind()
	if sum, n, _ := lastRuns(h, s.cfg.HistoryLen, &kind); n > 0 {
		return sum / time.Duration(n), true
	}
	var acc float64
	n := 0
	for i := len(h) - 1; i >= 0 && n < s.cfg.AccuracyLen; i-- {
		if w := h[i].Kind.Walltime; w > 0 {
			acc += float64(h[i].Runtime) / float64(w)
			n++
		}
	}
	if n == 0 {
		return 0, false
	}
	return time.Duration(acc / float64(n) * float64(s.walltime(j))), true
}

// lastRuns returns the sum and number of the last want runs of h (all of
// them for want 0), only those of kind when it is not nil, and the newest
// two of them.
func lastRuns(h []model.Run, want int, kind *model.JobKind) (sum time.Duration, n int, last [2]time.Duration) {
	if want <= 0 {
		want = len(h)
	}
	for i := len(h) - 1; i >= 0 && n < want; i-- {
		if kind != nil && h[i].Kind != *kind {
			continue
		}
		if n < len(last) {
			last[n] = h[i].Runtime
		}
		sum += h[i].Runtime
		n++
	}
	return sum, n, last
}

// allocEnd is when a running allocation is expected to release its
// resources, as an offset from now (at least 1s in the future). A job that
// outlives its prediction is expected to run to its deadline.
func (s *sched) allocEnd(a *model.Alloc) int64 {
	off, _ := s.allocEndBy(a)
	return off
}

// allocEndBy is allocEnd, and whether that end is the job's prediction:
// if the job still runs then, its expected end moves to the deadline
// with no event (see recheck).
func (s *sched) allocEndBy(a *model.Alloc) (off int64, predicted bool) {
	start := a.Started
	if start.IsZero() {
		start = a.Created
	}
	deadline := a.Deadline
	j := s.jobs[a.Job]
	if deadline.IsZero() && j != nil {
		deadline = start.Add(s.walltime(j))
	}
	end := deadline
	if j != nil && s.cfg.Estimate == EstimatePredicted {
		e := start.Add(s.estimate(j))
		switch {
		case e.After(s.in.Now) && (deadline.IsZero() || e.Before(deadline)):
			end, predicted = e, true
		case !e.After(s.in.Now) && a.Speculative && s.speculative():
			// A speculative gang past its prediction is stopped when a
			// starving job needs its place: it holds it until StopGrace.
			end = s.in.Now.Add(time.Duration(s.stopGrace()) + time.Second)
		}
	}
	off = int64(end.Sub(s.in.Now))
	if end.IsZero() {
		off = int64(s.cfg.DefaultWalltime)
	}
	return max(off, int64(time.Second)), predicted
}

// consistent reports whether j's prediction is one to trust: it is made
// from runs (of j's kind under PredictKind; a prediction from the user's
// accuracy is never consistent) and the newest two are within a factor of
// two of each other.
func (s *sched) consistent(j *model.Job) bool {
	var kind *model.JobKind
	if s.cfg.PredictBy != PredictUser {
		k := j.Kind()
		kind = &k
	}
	_, n, last := lastRuns(s.in.History[j.User], 2, kind)
	a, b := last[0], last[1]
	return n >= 2 && a <= 2*b && b <= 2*a
}
