package core

import (
	"math"
	"slices"
	"time"

	"vhpc/scheduler/model"
)

// DecayUsage returns prev decayed by elapsed with the given half-life:
// every value is multiplied by 2^(-elapsed/halfLife). The FSM calls it when
// it folds ended allocations into the usage it passes as Input.Usage; hpcsim
// does the same in virtual time. A non-positive halfLife disables decay.
// prev is not modified.
func DecayUsage(prev map[string]float64, elapsed, halfLife time.Duration) map[string]float64 {
	out := make(map[string]float64, len(prev))
	f := 1.0
	if halfLife > 0 && elapsed > 0 {
		f = math.Exp2(-float64(elapsed) / float64(halfLife))
	}
	for k, v := range prev {
		out[k] = v * f
	}
	return out
}

// Charge is the usage one allocation accrues over d: core-seconds plus
// GPU-seconds weighted by cfg.GPUWeight. Callers add it to the
// department's entry in the usage map when the allocation ends.
func Charge(p model.Placement, d time.Duration, cfg Config) float64 {
	if d <= 0 {
		return 0
	}
	return d.Seconds() * (float64(len(p.Cores)) + cfg.GPUWeight*float64(len(p.GPUs)))
}

// fairShare computes the fair-share factor per department: 2^(-u/s) where u
// is the department's fraction of all usage (Input.Usage plus what running
// allocations have accrued so far) and s its fraction of the shares of the
// departments that have work or usage. A department under its share gets a
// factor above 0.5 and rises as others use more.
func fairShare(in *Input, cfg *Config, jobs map[model.JobID]*model.Job) map[string]float64 {
	ch := newCharger(in, cfg, jobs)
	for _, a := range in.Allocs {
		ch.add(a, 1)
	}
	return ch.factors()
}

// charger adds what running allocations have accrued to the usage, in
// list order (fairShare; the pool's fairShare adds whole runs). A
// department's sum is kept in a local while consecutive allocations are
// its (a gang's are), and an allocation like the last counted one (same
// job, state, times and sizes: a gang's usually are) adds the same charge
// again: the same additions in the same order as adding each allocation's
// charge to the map, without a lookup or a charge per allocation.
type charger struct {
	in    *Input
	cfg   *Config
	jobs  map[model.JobID]*model.Job
	usage map[string]float64
	cur   *model.Job
	prev  *model.Alloc // the last allocation counted, c its charge
	c     float64
	dept  string
	sum   float64
	open  bool
}

func newCharger(in *Input, cfg *Config, jobs map[model.JobID]*model.Job) *charger {
	usage := make(map[string]float64, len(in.Usage)+4)
	for d, v := range in.Usage {
		usage[d] += v
	}
	return &charger{in: in, cfg: cfg, jobs: jobs, usage: usage}
}

// add counts a and the n-1 allocations after it, which the caller knows
// are charged as a (sameCharge): n additions of a's charge.
func (ch *charger) add(a *model.Alloc, n int) {
	if ch.prev != nil && sameCharge(ch.prev, a) {
		ch.addN(n)
		return
	}
	ch.prev = nil
	if ch.cur == nil || a.Job != ch.cur.ID {
		ch.cur = ch.jobs[a.Job]
	}
	j := ch.cur
	if j == nil || a.State.Terminal() {
		return
	}
	start := a.Started
	if start.IsZero() {
		start = a.Created
	}
	if !ch.open || j.Department != ch.dept {
		if ch.open {
			ch.usage[ch.dept] = ch.sum
		}
		ch.dept, ch.sum, ch.open = j.Department, ch.usage[j.Department], true
	}
	ch.prev, ch.c = a, float64(Charge(a.Placement, ch.in.Now.Sub(start), *ch.cfg))
	ch.addN(n)
}

// addN adds the current charge n times, one addition each (not n times
// the charge: the same rounding as adding allocation by allocation).
func (ch *charger) addN(n int) {
	sum, c := ch.sum, ch.c
	for range n {
		sum += c
	}
	ch.sum = sum
}

// factors closes the last department's sum and turns the usage into the
// factors.
func (ch *charger) factors() map[string]float64 {
	in, cfg, usage := ch.in, ch.cfg, ch.usage
	if ch.open {
		usage[ch.dept] = ch.sum
	}
	depts := make(map[string]bool)
	for _, j := range in.Jobs {
		depts[j.Department] = true
	}
	for d := range usage {
		depts[d] = true
	}
	names := make([]string, 0, len(depts))
	for d := range depts {
		names = append(names, d)
	}
	slices.Sort(names)
	var totalU, totalS float64
	for _, d := range names {
		totalU += usage[d]
		totalS += deptShare(cfg, d)
	}
	out := make(map[string]float64, len(names))
	for _, d := range names {
		if totalU <= 0 || totalS <= 0 {
			out[d] = 1
			continue
		}
		s := deptShare(cfg, d) / totalS
		if s <= 0 {
			out[d] = 0
			continue
		}
		out[d] = math.Exp2(-(usage[d] / totalU) / s)
	}
	return out
}

// sameCharge reports whether b is charged as a, a counted allocation: the
// same job and state, start and creation times, cores and GPUs.
func sameCharge(a, b *model.Alloc) bool {
	return b.Job == a.Job && b.State == a.State && b.Started == a.Started && b.Created == a.Created &&
		len(b.Placement.Cores) == len(a.Placement.Cores) && len(b.Placement.GPUs) == len(a.Placement.GPUs)
}

func deptShare(cfg *Config, dept string) float64 {
	if s, ok := cfg.Shares[dept]; ok {
		return s
	}
	return cfg.DefaultShare
}
