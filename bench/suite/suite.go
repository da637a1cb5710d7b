// Package suite judges a scheduling policy over a family of workloads
// instead of one trace: it replays the policy and the baselines (fcfs-easy
// and sjf-easy, planned with the walltime) over generated traces
// (bench/gen) and any given ones, and reports per trace and as geometric
// means the ratio of average bounded slowdown to fcfs-easy's, the
// utilization difference and the ratio of the longest waits. hpcsim
// --suite is its front end.
package suite

import (
	"encoding/json"
	"fmt"
	"hash/fnv"
	"math"
	"os"
	"path/filepath"

	"vhpc/bench/gen"
	"vhpc/bench/sim"
	"vhpc/scheduler/core"
)

// Trace is one workload of the suite.
type Trace struct {
	Name  string
	Nodes int
	Jobs  []sim.TraceJob
}

// Family is a grid of generated workloads: every size × load × seed.
type Family struct {
	Sizes []int
	Loads []float64
	// Seeds is how many seeds per cell, from FirstSeed on.
	Seeds     int
	FirstSeed uint64
	// Jobs are the trace lengths: every cell is generated once per
	// length, from the same seed. With more than one length the names
	// end in "-j" and the length ("n512-l0.95-s1-j10000"), so one suite
	// judges a policy on short and long traces together.
	Jobs []int
}

// DefaultFamily is the family the default policy was chosen on: four
// machine sizes from 128 to 4,096 one-CPU nodes, four loads from 0.6 to
// 1.05, one seed each, 2,000 jobs per trace.
func DefaultFamily() Family {
	return Family{Sizes: []int{128, 512, 1024, 4096}, Loads: []float64{0.6, 0.8, 0.95, 1.05}, Seeds: 1, FirstSeed: 1, Jobs: []int{2000}}
}

// Traces generates the family's traces, named like "n512-l0.95-s1", in
// length, size, load and seed order. Each cell's seed mixes the size and
// load in, so no two cells share a stream; it does not depend on the
// length.
func (f Family) Traces() ([]Trace, error) {
	var out []Trace
	for _, length := range f.Jobs {
		for _, n := range f.Sizes {
			for _, l := range f.Loads {
				for s := range uint64(f.Seeds) {
					seed := f.FirstSeed + s
					jobs, err := gen.Generate(gen.Params{Nodes: n, Jobs: length, Load: l, Seed: seed*1_000_003 + uint64(n)*101 + uint64(l*1000)})
					if err != nil {
						return nil, fmt.Errorf("family: %w", err)
					}
					name := fmt.Sprintf("n%d-l%.2f-s%d", n, l, seed)
					if len(f.Jobs) > 1 {
						name += fmt.Sprintf("-j%d", length)
					}
					out = append(out, Trace{Name: name, Nodes: n, Jobs: jobs})
				}
			}
		}
	}
	return out, nil
}

// Options configure Run.
type Options struct {
	// Policy is the policy under test.
	Policy core.Config
	// Estimates is the replay's walltime mode (sim.EstRequest: the
	// users' requested times).
	Estimates string
	// ResumePreempted is sim.Options.ResumePreempted for every replay
	// (a what-if; the baselines never preempt, so only the policy's
	// results change).
	ResumePreempted bool
	// Workers bounds the replays run at once (at least 1).
	Workers int
	// Progress, when set, is called after each replay with the number
	// done and the total, one call at a time.
	Progress func(done, total int)
	// CacheDir, when set, keeps each replay's result in a file named by
	// the trace, the estimates, the policy and Build, and reuses it:
	// exploring policy variants then replays the baselines once.
	CacheDir string
	// Build names the code that replays (hpcsim passes a hash of its own
	// executable): a result cached by another build of the core is never
	// reused, so a changed scheduler cannot be judged by its
	// predecessor's numbers under an unchanged Config.
	Build string
}

// Row is one trace's results: the policy's and the two baselines'.
type Row struct {
	Trace    string     `json:"trace"`
	Nodes    int        `json:"nodes"`
	Policy   sim.Result `json:"policy"`
	FCFSEasy sim.Result `json:"fcfsEasy"`
	SJFEasy  sim.Result `json:"sjfEasy"`
}

// BSLDRatio is the policy's average bounded slowdown over fcfs-easy's.
func (r Row) BSLDRatio() float64 { return r.Policy.AvgBSLD / r.FCFSEasy.AvgBSLD }

// SJFRatio is sjf-easy's average bounded slowdown over fcfs-easy's.
func (r Row) SJFRatio() float64 { return r.SJFEasy.AvgBSLD / r.FCFSEasy.AvgBSLD }

// UtilDiff is the policy's utilization minus fcfs-easy's.
func (r Row) UtilDiff() float64 { return r.Policy.Utilization - r.FCFSEasy.Utilization }

// WaitRatio is the policy's longest wait over fcfs-easy's (waits under a
// minute count as a minute, so two empty queues compare as 1).
func (r Row) WaitRatio() float64 { return waitRatio(r.Policy.MaxWait, r.FCFSEasy.MaxWait) }

// SJFWaitRatio is sjf-easy's longest wait over fcfs-easy's.
func (r Row) SJFWaitRatio() float64 { return waitRatio(r.SJFEasy.MaxWait, r.FCFSEasy.MaxWait) }

func waitRatio(a, b float64) float64 { return max(a, 60) / max(b, 60) }

// Summary aggregates the rows.
type Summary struct {
	// GeoBSLDRatio and GeoSJFRatio are geometric means of the rows'
	// ratios; GeoWaitRatio of the longest-wait ratios.
	GeoBSLDRatio    float64 `json:"geoBsldRatio"`
	GeoSJFRatio     float64 `json:"geoSjfBsldRatio"`
	GeoWaitRatio    float64 `json:"geoWaitRatio"`
	GeoSJFWaitRatio float64 `json:"geoSjfWaitRatio"`
	// MeanUtilDiff is the mean utilization difference, MinUtilDiff the
	// worst; MaxWaitRatio is the worst longest-wait ratio.
	MeanUtilDiff float64 `json:"meanUtilDiff"`
	MinUtilDiff  float64 `json:"minUtilDiff"`
	MaxWaitRatio float64 `json:"maxWaitRatio"`
}

// Report is what Run measured.
type Report struct {
	Rows    []Row   `json:"rows"`
	Summary Summary `json:"summary"`
}

// Goals are the acceptance bounds: geometric-mean bsld ratio at
// most MaxGeoBSLD, utilization never lower than fcfs-easy's by more than
// MaxUtilLoss, longest wait never above MaxWaitRatio × fcfs-easy's.
type Goals struct {
	MaxGeoBSLD   float64
	MaxUtilLoss  float64
	MaxWaitRatio float64
}

// DefaultGoals are issue 17's: 0.5, 0.01 and 1.5.
var DefaultGoals = Goals{MaxGeoBSLD: 0.5, MaxUtilLoss: 0.01, MaxWaitRatio: 1.5}

// Misses lists the goals s does not meet (empty when all hold).
func (g Goals) Misses(s Summary) []string {
	var out []string
	if s.GeoBSLDRatio > g.MaxGeoBSLD {
		out = append(out, fmt.Sprintf("geomean bsld ratio %.3f > %.2f", s.GeoBSLDRatio, g.MaxGeoBSLD))
	}
	if s.MinUtilDiff < -g.MaxUtilLoss {
		out = append(out, fmt.Sprintf("utilization %.4f below fcfs-easy's on some trace (allowed %.2f)", s.MinUtilDiff, g.MaxUtilLoss))
	}
	if s.MaxWaitRatio > g.MaxWaitRatio {
		out = append(out, fmt.Sprintf("longest wait %.2f× fcfs-easy's on some trace (allowed %.1f×)", s.MaxWaitRatio, g.MaxWaitRatio))
	}
	return out
}

// Run replays every trace under the policy, fcfs-easy and sjf-easy. The
// result is deterministic apart from the Core* timings.
func Run(traces []Trace, o Options) Report {
	rows := make([]Row, len(traces))
	type task struct {
		t   int
		cfg core.Config
		out *sim.Result
	}
	var tasks []task
	for i, tr := range traces {
		rows[i] = Row{Trace: tr.Name, Nodes: tr.Nodes}
		tasks = append(tasks,
			task{i, o.Policy, &rows[i].Policy},
			task{i, sim.BaselineConfig(core.PolicyFCFSEasy), &rows[i].FCFSEasy},
			task{i, sim.BaselineConfig(core.PolicySJFEasy), &rows[i].SJFEasy})
	}
	if o.CacheDir != "" {
		// A cache that cannot be made only costs time (writeCache).
		_ = os.MkdirAll(o.CacheDir, 0o755)
	}
	sim.Parallel(len(tasks), o.Workers, func(i int) {
		tk := tasks[i]
		tr := traces[tk.t]
		ro := sim.Options{Nodes: tr.Nodes, CPUsPerNode: 1, Estimates: o.Estimates, Config: tk.cfg, ResumePreempted: o.ResumePreempted}
		path := o.cachePath(tr, ro)
		if path != "" && readCache(path, tk.out) {
			return
		}
		*tk.out = sim.Run(tr.Jobs, ro)
		if path != "" {
			writeCache(path, *tk.out)
		}
	}, o.Progress)
	return Report{Rows: rows, Summary: summarize(rows)}
}

func summarize(rows []Row) Summary {
	if len(rows) == 0 {
		return Summary{}
	}
	s := Summary{MinUtilDiff: math.Inf(1)}
	var lb, ls, lw, lsw float64
	for _, r := range rows {
		lb += math.Log(r.BSLDRatio())
		ls += math.Log(r.SJFRatio())
		lw += math.Log(r.WaitRatio())
		lsw += math.Log(r.SJFWaitRatio())
		s.MeanUtilDiff += r.UtilDiff()
		s.MinUtilDiff = min(s.MinUtilDiff, r.UtilDiff())
		s.MaxWaitRatio = max(s.MaxWaitRatio, r.WaitRatio())
	}
	n := float64(len(rows))
	s.GeoBSLDRatio, s.GeoSJFRatio = math.Exp(lb/n), math.Exp(ls/n)
	s.GeoWaitRatio, s.GeoSJFWaitRatio = math.Exp(lw/n), math.Exp(lsw/n)
	s.MeanUtilDiff /= n
	return s
}

// cachePath names a replay's cache file: a hash of the build, the trace's
// jobs, the machine and the options ("" without a CacheDir).
func (o Options) cachePath(tr Trace, ro sim.Options) string {
	if o.CacheDir == "" {
		return ""
	}
	h := fnv.New64a()
	cfg := any(ro.Config)
	if ro.Config.Policy != core.PolicyDefault {
		// The baselines read only these: retuning the default's other
		// fields keeps their cached results.
		cfg = []string{ro.Config.Policy, ro.Config.Estimate}
	} else if ro.ResumePreempted {
		cfg = []any{cfg, "resume-preempted"}
	}
	fmt.Fprintf(h, "%s %d %s %+v %v", o.Build, tr.Nodes, ro.Estimates, cfg, tr.Jobs)
	return filepath.Join(o.CacheDir, fmt.Sprintf("%s-%s-%016x.json", tr.Name, ro.Config.Policy, h.Sum64()))
}

// readCache loads a cached result; false when there is none.
func readCache(path string, r *sim.Result) bool {
	data, err := os.ReadFile(path)
	return err == nil && json.Unmarshal(data, r) == nil
}

// writeCache stores a result; a cache that cannot be written only costs
// time, so the error is dropped on purpose.
func writeCache(path string, r sim.Result) {
	if data, err := json.Marshal(r); err == nil {
		_ = os.WriteFile(path, data, 0o644)
	}
}
