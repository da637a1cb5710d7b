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
// the walltime, or under EstimatePredicted the mean of the last
// HistoryLen runs it is predicted from (see predictFrom), capped by the
// walltime.
func (s *sched) estimate(j *model.Job) time.Duration {
	w := s.walltime(j)
	if s.cfg.Estimate != EstimatePredicted {
		return w
	}
	sum, n, _ := s.predictFrom(j, s.cfg.HistoryLen)
	if n == 0 {
		return w
	}
	p := max(sum/time.Duration(n), time.Second)
	return min(p, w)
}

// predictFrom returns the sum and number of the runtimes j's prediction is
// made from, and the newest two of them: the user's last want runs (all
// kept ones for want 0) of j's kind (model.JobKind) under PredictKind, or,
// when the user has run none of that kind in their kept history (and
// always under PredictUser), their last want runs of any kind.
func (s *sched) predictFrom(j *model.Job, want int) (sum time.Duration, n int, last [2]time.Duration) {
	h := s.in.History[j.User]
	if want <= 0 {
		want = len(h)
	}
	take := func(d time.Duration) {
		if n < len(last) {
			last[n] = d
		}
		sum += d
		n++
	}
	if s.cfg.PredictBy != PredictUser {
		kind := j.Kind()
		for i := len(h) - 1; i >= 0 && n < want; i-- {
			if h[i].Kind == kind {
				take(h[i].Runtime)
			}
		}
		if n > 0 {
			return sum, n, last
		}
	}
	for i := len(h) - 1; i >= 0 && n < want; i-- {
		take(h[i].Runtime)
	}
	return sum, n, last
}

// allocEnd is when a running allocation is expected to release its
// resources, as an offset from now (at least 1s in the future). A job that
// outlives its prediction is expected to run to its deadline.
func (s *sched) allocEnd(a *model.Alloc) int64 {
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
		if e := start.Add(s.estimate(j)); e.After(s.in.Now) && (deadline.IsZero() || e.Before(deadline)) {
			end = e
		}
	}
	off := int64(end.Sub(s.in.Now))
	if end.IsZero() {
		off = int64(s.cfg.DefaultWalltime)
	}
	return max(off, int64(time.Second))
}

// consistent reports whether j's prediction is one to trust: the newest
// two runtimes it would be made from (see predictFrom) are within a
// factor of two of each other.
func (s *sched) consistent(j *model.Job) bool {
	_, n, last := s.predictFrom(j, 2)
	a, b := last[0], last[1]
	return n >= 2 && a <= 2*b && b <= 2*a
}
