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
// the walltime, or under EstimatePredicted the mean of the user's last
// runtimes, capped by the walltime.
func (s *sched) estimate(j *model.Job) time.Duration {
	w := s.walltime(j)
	if s.cfg.Estimate != EstimatePredicted {
		return w
	}
	h := s.in.History[j.User]
	if n := s.cfg.HistoryLen; n > 0 && len(h) > n {
		h = h[len(h)-n:]
	}
	if len(h) == 0 {
		return w
	}
	var sum time.Duration
	for _, d := range h {
		sum += d
	}
	p := max(sum/time.Duration(len(h)), time.Second)
	return min(p, w)
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

// consistent reports whether j's prediction is one to trust: its user's
// last two runtimes are within a factor of two of each other.
func (s *sched) consistent(j *model.Job) bool {
	h := s.in.History[j.User]
	if len(h) < 2 {
		return false
	}
	a, b := h[len(h)-1], h[len(h)-2]
	return a <= 2*b && b <= 2*a
}
