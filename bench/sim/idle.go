package sim

import (
	"vhpc/scheduler/model"
)

// ShortRun is the longest run IdleProfile.ShortPending counts: the jobs
// that can fill the end of a drain.
const ShortRun = 600

// IdleProfile says where a replay's idle cores went (Options.IdleProfile,
// hpcsim --idle-profile): idle core-seconds split by the widest
// reservation of the plan that was in force, and the full-machine drains.
// A policy whose utilization is lower than another's on the same trace
// shows here whether it idles in drains, under narrow reservations, with
// nothing reserved or with nothing pending (the tail). Every field is
// measured between events, where the replay's plan holds.
type IdleProfile struct {
	// FullMachine, HalfOrMore and Narrower are the idle core-seconds
	// while the widest reservation held all cores, at least half of
	// them, or fewer; Unreserved while jobs were pending and none was
	// reserved; NothingPending while no job was pending.
	FullMachine    float64 `json:"fullMachine"`
	HalfOrMore     float64 `json:"halfOrMore"`
	Narrower       float64 `json:"narrower"`
	Unreserved     float64 `json:"unreserved"`
	NothingPending float64 `json:"nothingPending"`
	// FullDrains counts the jobs reserved on every core;
	// FullDrainSeconds is the time such a reservation stood (a drain), and
	// FullDrainIdle the idle core-seconds in that time (part of
	// FullMachine).
	FullDrains       int     `json:"fullDrains"`
	FullDrainSeconds float64 `json:"fullDrainSeconds"`
	FullDrainIdle    float64 `json:"fullDrainIdle"`
	// ShortPending is the mean number of pending jobs, the drain's own
	// job aside, whose run is at most ShortRun seconds while a
	// full-machine reservation stood (the
	// replay knows the runs; the scheduler does not): what was left to
	// fill the drains' ends.
	ShortPending float64 `json:"shortPendingInFullDrains"`
	// shortSeconds is ShortPending's integral over the drains' time.
	shortSeconds float64
}

// Total is the idle core-seconds of every kind.
func (p *IdleProfile) Total() float64 {
	return p.FullMachine + p.HalfOrMore + p.Narrower + p.Unreserved + p.NothingPending
}

// idleProbe builds an IdleProfile from the replay's events: note is
// called once per event, after the event's plan took effect, and charges
// the interval since the previous event to what that event noted.
type idleProbe struct {
	prof     IdleProfile
	cores    int64 // the cluster's cores
	last     int64 // the previous event's time (-1 before the first)
	idle     int64 // idle cores since then
	bucket   *float64
	fullJob  model.JobID // the full-machine job reserved since then (0: none)
	short    int         // pending short jobs since then
	reserved map[model.JobID]int64
}

func newIdleProbe(cores int64) *idleProbe {
	return &idleProbe{cores: cores, last: -1, reserved: map[model.JobID]int64{}}
}

// note charges [p.last, t) and records the state from t: the running
// allocations, the pending jobs and the plan (nil when the event had no
// cycle because nothing was pending).
func (p *idleProbe) note(s *state, plan *model.Plan, t int64) {
	if p.last >= 0 && p.bucket != nil {
		dt := float64(t - p.last)
		idle := float64(p.idle) * dt
		*p.bucket += idle
		if p.fullJob != 0 {
			p.prof.FullDrainIdle += idle
			p.prof.FullDrainSeconds += dt
			p.prof.shortSeconds += float64(p.short) * dt
		}
	}
	p.last = t
	var busy int64
	for _, a := range s.allocs {
		busy += int64(len(a.Placement.Cores))
	}
	p.idle = max(p.cores-busy, 0)
	p.fullJob, p.short = 0, 0
	var widest int64
	if plan != nil {
		for _, r := range plan.Reservations {
			c := s.jobs[r.Job-1].cores
			widest = max(widest, c)
			if c >= p.cores {
				p.fullJob = r.Job
				if _, ok := p.reserved[r.Job]; !ok {
					p.reserved[r.Job] = t
					p.prof.FullDrains++
				}
			}
		}
	}
	switch {
	case len(s.pending) == 0 || plan == nil:
		p.bucket = &p.prof.NothingPending
	case widest >= p.cores:
		p.bucket = &p.prof.FullMachine
	case 2*widest >= p.cores:
		p.bucket = &p.prof.HalfOrMore
	case widest > 0:
		p.bucket = &p.prof.Narrower
	default:
		p.bucket = &p.prof.Unreserved
	}
	if p.fullJob != 0 {
		for _, sj := range s.pending {
			if sj.job.State == model.JobPending && sj.actual <= ShortRun && sj.job.ID != p.fullJob {
				p.short++
			}
		}
	}
}

// result finishes the profile at the replay's end, the last job's end:
// wake-ups after it (a starvation recheck, say) charged idle cores with
// nothing pending that the makespan does not count.
func (p *idleProbe) result(end int64) *IdleProfile {
	out := p.prof
	if p.last > end {
		out.NothingPending -= float64(p.cores) * float64(p.last-end)
	}
	if out.FullDrainSeconds > 0 {
		out.ShortPending = out.shortSeconds / out.FullDrainSeconds
	}
	return &out
}
