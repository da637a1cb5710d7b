// Package gen generates synthetic rigid-job workloads for bench/sim: the
// Lublin–Feitelson model of arrivals (with its daily cycle), sizes and run
// times, plus users and their requested walltimes after Tsafrir, Etsion
// and Feitelson's model of user estimates (round values, mostly
// overestimates, some jobs killed at their limit). hpcsim --generate and
// hpcsim --suite call it; the same Params and seed give the same trace.
//
// References: U. Lublin, D. Feitelson, "The workload on parallel
// supercomputers: modeling the characteristics of rigid jobs", JPDC 2003
// (batch-job parameters of its m_lublin99 model); D. Tsafrir, Y. Etsion,
// D. Feitelson, "Modeling user runtime estimates", JSSPP 2005.
package gen

import (
	"fmt"
	"math"
	"math/rand/v2"
	"slices"

	"vhpc/bench/sim"
)

// Params describe one generated workload.
type Params struct {
	// Nodes is the machine size in processors (one-CPU nodes).
	Nodes int
	// Jobs is how many jobs to generate.
	Jobs int
	// Load is the offered load: total processor-seconds of the run times
	// over Nodes × the arrival span (0.6 light, 1.0 saturated).
	Load float64
	// Seed selects the random stream.
	Seed uint64
	// Users is how many users submit (Zipf-distributed activity); 0 means
	// DefaultUsers.
	Users int
}

// DefaultUsers is the number of users when Params.Users is 0.
const DefaultUsers = 64

// Lublin–Feitelson batch-job parameters (m_lublin99).
const (
	serialProb = 0.2927 // a job of one processor
	pow2Prob   = 0.6686 // a parallel job of a power-of-two size
	uLow       = 1.2054 // log2 of the smallest parallel size drawn
	uMedOff    = 2.5    // uMed = log2(Nodes) - uMedOff
	uProb      = 0.9220 // probability of the lower size range
	// Run times: log(run) is hyper-gamma, Gamma(a1, b1) with probability
	// p = pa×size + pb, else Gamma(a2, b2).
	a1, b1 = 4.2, 0.94
	a2, b2 = 312, 0.03
	pa, pb = -0.0054, 0.78
	// modelNodes is the machine size the run-time mixing probability was
	// fitted on; larger machines scale the size into it.
	modelNodes = 128
)

// hourWeight is the daily cycle of arrivals: relative submit rate per hour
// of the day (low at night, a peak in the working day), after the shape of
// Lublin–Feitelson's arrival model. Its mean is normalized at use.
var hourWeight = [24]float64{
	0.45, 0.35, 0.3, 0.25, 0.25, 0.3, 0.45, 0.7, 1.1, 1.5, 1.75, 1.8,
	1.6, 1.7, 1.8, 1.75, 1.6, 1.4, 1.2, 1.0, 0.9, 0.8, 0.7, 0.55,
}

// Generate returns a trace of p.Jobs jobs in submit order, numbered from 1,
// with requested times (TraceJob.ReqTime) and users set.
func Generate(p Params) ([]sim.TraceJob, error) {
	if p.Nodes < 1 || p.Jobs < 1 || !(p.Load > 0 && p.Load <= 10) {
		return nil, fmt.Errorf("generate: nodes %d, jobs %d, load %v: want nodes and jobs at least 1 and load in (0, 10]", p.Nodes, p.Jobs, p.Load)
	}
	users := p.Users
	if users <= 0 {
		users = DefaultUsers
	}
	rng := rand.New(rand.NewPCG(p.Seed, 0x6c75626c696e)) // "lublin"
	jobs := make([]sim.TraceJob, p.Jobs)
	us := newUsers(users)
	var area float64
	for i := range jobs {
		j := &jobs[i]
		j.ID = int64(i + 1)
		u := us.pick(rng)
		j.User, j.Group = int64(u+1), int64(u%8+1)
		if prev := us.last[u]; prev != nil && rng.Float64() < repeatProb {
			// A user resubmits the same kind of job: same size and
			// request, a run time near the last one.
			j.Procs, j.ReqTime = prev.Procs, prev.ReqTime
			j.Run = min(max(int64(float64(prev.Run)*math.Exp(rng.NormFloat64()*0.3)), 1), j.ReqTime)
			if rng.Float64() < killProb {
				j.Run = j.ReqTime
			}
		} else {
			j.Procs = size(rng, p.Nodes)
			j.Run = runTime(rng, j.Procs, p.Nodes)
			j.ReqTime, j.Run = request(rng, j.Run)
		}
		us.last[u] = j
		area += float64(j.Procs * j.Run)
	}
	arrivals(rng, jobs, area, p)
	return jobs, nil
}

// size draws a job's processor count: serial, or 2^u with u from a
// two-stage uniform in log2 space, rounded to a power of two with
// pow2Prob.
func size(rng *rand.Rand, nodes int) int64 {
	if nodes == 1 || rng.Float64() < serialProb {
		return 1
	}
	hi := math.Log2(float64(nodes))
	med := max(hi-uMedOff, uLow)
	lo := min(uLow, hi)
	var u float64
	if rng.Float64() < uProb {
		u = lo + rng.Float64()*(med-lo)
	} else {
		u = med + rng.Float64()*(hi-med)
	}
	var s int64
	if rng.Float64() < pow2Prob {
		s = int64(1) << int(math.Round(u))
	} else {
		s = int64(math.Round(math.Exp2(u)))
	}
	return min(max(s, 1), int64(nodes))
}

// runTime draws a run time in seconds from the hyper-gamma of log(run);
// wider jobs run longer (the mixing probability falls with the size).
func runTime(rng *rand.Rand, procs int64, nodes int) int64 {
	scaled := float64(procs) * modelNodes / float64(max(nodes, modelNodes))
	prob := min(max(pa*scaled+pb, 0), 1)
	var l float64
	if rng.Float64() < prob {
		l = gamma(rng, a1, b1)
	} else {
		l = gamma(rng, a2, b2)
	}
	return min(max(int64(math.Exp(l)), 1), maxRun)
}

// arrivals sets the submit times: a Poisson process whose rate follows
// hourWeight, scaled so the offered load is p.Load.
func arrivals(rng *rand.Rand, jobs []sim.TraceJob, area float64, p Params) {
	var mean float64
	for _, w := range hourWeight {
		mean += w
	}
	mean /= 24
	peak := slices.Max(hourWeight[:]) / mean
	// Jobs per second on average: area/n processor-seconds per job.
	rate := p.Load * float64(p.Nodes) / (area / float64(len(jobs)))
	t := 8 * 3600.0 // start in the morning
	for i := range jobs {
		for { // thinning against the peak rate
			t += rng.ExpFloat64() / (rate * peak)
			h := int(math.Mod(t/3600, 24))
			if rng.Float64() < hourWeight[h]/mean/peak {
				break
			}
		}
		jobs[i].Submit = int64(t)
	}
}

// gamma draws from Gamma(shape k, scale theta) (Marsaglia–Tsang).
func gamma(rng *rand.Rand, k, theta float64) float64 {
	if k < 1 {
		return gamma(rng, k+1, theta) * math.Pow(rng.Float64(), 1/k)
	}
	d := k - 1.0/3
	c := 1 / math.Sqrt(9*d)
	for {
		x := rng.NormFloat64()
		v := 1 + c*x
		if v <= 0 {
			continue
		}
		v = v * v * v
		u := rng.Float64()
		if math.Log(u) < 0.5*x*x+d-d*v+d*math.Log(v) {
			return d * v * theta
		}
	}
}

// users draws who submits: Zipf-like activity (user i with weight
// 1/(i+1)), and remembers each user's last job for resubmissions.
type users struct {
	cum  []float64
	last []*sim.TraceJob
}

func newUsers(n int) *users {
	u := &users{cum: make([]float64, n), last: make([]*sim.TraceJob, n)}
	var s float64
	for i := range u.cum {
		s += 1 / float64(i+1)
		u.cum[i] = s
	}
	return u
}

func (u *users) pick(rng *rand.Rand) int {
	x := rng.Float64() * u.cum[len(u.cum)-1]
	i, _ := slices.BinarySearch(u.cum, x)
	return min(i, len(u.cum)-1)
}
