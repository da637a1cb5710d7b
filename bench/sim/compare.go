package sim

import (
	"math"
	"math/rand/v2"
	"slices"
	"sync"

	"vhpc/scheduler/core"
)

// Jitter returns a copy of trace in which each job's run time moves by
// ±delta seconds (never below 1) with probability frac. A requested time
// equal to the old run time moves with it, so a trace with exact requests
// keeps them exact. The same seed gives the same copy; seed 0 returns the
// trace unchanged. Compare calls it to measure how much a replay's result
// owes to chance: a backfilling schedule is chaotic, and one second on one
// job can move a whole trace's utilization by a tenth of a point.
func Jitter(trace []TraceJob, frac float64, delta int64, seed uint64) []TraceJob {
	out := slices.Clone(trace)
	if seed == 0 || frac <= 0 || delta <= 0 {
		return out
	}
	rng := rand.New(rand.NewPCG(seed, 0x76687063)) // "vhpc"
	for i := range out {
		if rng.Float64() >= frac {
			continue
		}
		d := delta
		if rng.IntN(2) == 0 {
			d = -delta
		}
		j := &out[i]
		run := max(j.Run+d, 1)
		if j.ReqTime == j.Run {
			j.ReqTime = run
		}
		j.Run = run
	}
	return out
}

// CompareOptions configure Compare.
type CompareOptions struct {
	// Options is the replay of the policy under test.
	Options
	// Baseline, when non-nil, is replayed on every copy too and compared
	// with the policy pairwise.
	Baseline *core.Config
	// Copies is the number of jittered copies replayed besides the
	// trace itself (copy i uses seed i).
	Copies int
	// Frac and Delta are Jitter's parameters.
	Frac  float64
	Delta int64
	// Workers bounds the replays run at once (at least 1). Above 1 the
	// Core* timings include the other replays' contention.
	Workers int
	// Progress, when set, is called after each replay ends with the
	// number done and the total, one call at a time.
	Progress func(done, total int)
}

// Replicate is one copy's results; Seed 0 is the trace itself.
type Replicate struct {
	Seed     uint64  `json:"seed"`
	Policy   Result  `json:"policy"`
	Baseline *Result `json:"baseline,omitempty"`
}

// BSLDRatio is the copy's policy / baseline average bounded slowdown
// (the baseline must be set).
func (r Replicate) BSLDRatio() float64 { return r.Policy.AvgBSLD / r.Baseline.AvgBSLD }

// UtilDiff is the copy's policy − baseline utilization (the baseline must
// be set).
func (r Replicate) UtilDiff() float64 { return r.Policy.Utilization - r.Baseline.Utilization }

// Stat is a sample's mean, standard deviation, minimum and maximum.
type Stat struct {
	Mean float64 `json:"mean"`
	SD   float64 `json:"sd"`
	Min  float64 `json:"min"`
	Max  float64 `json:"max"`
}

// Summary aggregates the replicates of one policy.
type Summary struct {
	AvgBSLD     Stat `json:"avgBoundedSlowdown"`
	Utilization Stat `json:"utilization"`
	MaxWait     Stat `json:"maxWaitS"`
}

// Paired compares the policy with the baseline copy by copy.
type Paired struct {
	// BSLDRatio is policy / baseline average bounded slowdown.
	BSLDRatio Stat `json:"bsldRatio"`
	// UtilDiff is policy − baseline utilization.
	UtilDiff Stat `json:"utilizationDiff"`
	// UtilNoLower counts the copies where the policy's utilization is at
	// least the baseline's.
	UtilNoLower int `json:"utilizationNoLower"`
}

// Comparison is what Compare measured.
type Comparison struct {
	Replicates []Replicate `json:"replicates"`
	Policy     Summary     `json:"policy"`
	Baseline   *Summary    `json:"baseline,omitempty"`
	Paired     *Paired     `json:"paired,omitempty"`
}

// Compare replays trace and Copies jittered copies of it with the policy
// and, when set, the baseline, and summarizes the spread. hpcsim calls it
// for --copies; the result is deterministic apart from the Core* timings.
func Compare(trace []TraceJob, o CompareOptions) Comparison {
	n := max(o.Copies, 0) + 1
	reps := make([]Replicate, n)
	type task struct {
		i    int
		base bool
	}
	var tasks []task
	for i := range reps {
		reps[i].Seed = uint64(i)
		tasks = append(tasks, task{i, false})
		if o.Baseline != nil {
			reps[i].Baseline = &Result{}
			tasks = append(tasks, task{i, true})
		}
	}
	Parallel(len(tasks), o.Workers, func(i int) {
		tk := tasks[i]
		ro := o.Options
		if tk.base {
			ro.Config = *o.Baseline
		}
		r := Run(Jitter(trace, o.Frac, o.Delta, uint64(tk.i)), ro)
		if tk.base {
			*reps[tk.i].Baseline = r
		} else {
			reps[tk.i].Policy = r
		}
	}, o.Progress)
	c := Comparison{Replicates: reps}
	c.Policy = summarize(reps, func(r Replicate) *Result { return &r.Policy })
	if o.Baseline == nil {
		return c
	}
	b := summarize(reps, func(r Replicate) *Result { return r.Baseline })
	c.Baseline = &b
	p := Paired{}
	ratio, diff := make([]float64, n), make([]float64, n)
	for i, r := range reps {
		ratio[i], diff[i] = r.BSLDRatio(), r.UtilDiff()
		if diff[i] >= 0 {
			p.UtilNoLower++
		}
	}
	p.BSLDRatio, p.UtilDiff = stat(ratio), stat(diff)
	c.Paired = &p
	return c
}

func summarize(reps []Replicate, pick func(Replicate) *Result) Summary {
	var b, u, w []float64
	for _, r := range reps {
		x := pick(r)
		b, u, w = append(b, x.AvgBSLD), append(u, x.Utilization), append(w, x.MaxWait)
	}
	return Summary{AvgBSLD: stat(b), Utilization: stat(u), MaxWait: stat(w)}
}

// stat computes the sample statistics (SD with n−1; 0 for one value).
func stat(xs []float64) Stat {
	if len(xs) == 0 {
		return Stat{}
	}
	s := Stat{Min: xs[0], Max: xs[0]}
	for _, x := range xs {
		s.Mean += x
		s.Min, s.Max = min(s.Min, x), max(s.Max, x)
	}
	s.Mean /= float64(len(xs))
	if len(xs) > 1 {
		var v float64
		for _, x := range xs {
			v += (x - s.Mean) * (x - s.Mean)
		}
		s.SD = math.Sqrt(v / float64(len(xs)-1))
	}
	return s
}

// Parallel calls do(0) ... do(n-1), at most workers (at least 1) at once,
// and progress (when set) after each call with the number done and n, one
// progress call at a time. Compare and bench/suite run replays with it.
func Parallel(n, workers int, do func(i int), progress func(done, total int)) {
	sem := make(chan struct{}, max(workers, 1))
	var mu sync.Mutex
	var wg sync.WaitGroup
	done := 0
	for i := range n {
		wg.Go(func() {
			sem <- struct{}{}
			defer func() { <-sem }()
			do(i)
			if progress != nil {
				mu.Lock()
				done++
				progress(done, n)
				mu.Unlock()
			}
		})
	}
	wg.Wait()
}
