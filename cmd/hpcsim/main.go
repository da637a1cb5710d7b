// Command hpcsim replays an SWF workload trace through the real scheduler
// core (scheduler/core) in virtual time and prints wait, bounded slowdown,
// utilization and the wall time spent inside the core per cycle.
//
//	hpcsim --trace lublin_256.swf --nodes 256 --cpus-per-node 1 --policy default
//
// With --copies N it also replays N copies of the trace with a few run
// times moved by a second and prints the spread of the results; with
// --baseline POLICY it replays every copy with that policy too and compares
// the two copy by copy:
//
//	hpcsim --trace lublin_256.swf --nodes 256 --copies 11 --baseline fcfs-easy
package main

import (
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"os"
	"runtime"
	"runtime/debug"
	"runtime/pprof"

	"vhpc/bench/sim"
	"vhpc/scheduler/core"
)

func main() {
	if err := run(os.Args[1:], os.Stdout, os.Stderr); err != nil {
		fmt.Fprintln(os.Stderr, "hpcsim:", err)
		os.Exit(2)
	}
}

// run parses args, replays, and prints the result to out; a comparison
// reports each finished replay on progress.
func run(args []string, out, progress io.Writer) error {
	fs := flag.NewFlagSet("hpcsim", flag.ContinueOnError)
	trace := fs.String("trace", "", "SWF trace file (required)")
	nodes := fs.Int("nodes", 0, "number of nodes (required)")
	cpus := fs.Int("cpus-per-node", 1, "CPUs per node")
	gpus := fs.Int("gpus-per-node", 0, "GPUs per node; jobs take GPUs in proportion to their cores")
	policy := fs.String("policy", core.PolicyDefault, "fcfs, fcfs-easy or default")
	est := fs.String("estimates", sim.EstRuntime, "runtime (perfect), request (trace's requested time) or predicted (per-user history)")
	depth := fs.Int("reservations", -1, "reservation depth for the default policy (-1: core default)")
	starve := fs.Duration("starvation-age", -1, "default policy: wait after which a job is ordered by submit time ahead of younger ones (-1: core default)")
	maxAge := fs.Duration("max-age", -1, "default policy: age at which the age factor saturates (-1: core default)")
	slots := fs.Int("starvation-slots", -1, "default policy: oldest starving jobs promoted at once (-1: core default)")
	ageW := fs.Float64("age-weight", -1, "default policy: weight of the age factor (-1: core default)")
	sizeW := fs.Float64("size-weight", -1, "default policy: weight of the size factor (-1: core default)")
	widthExp := fs.Float64("size-width-exponent", -99, "default policy: 0 ranks by runtime, 1 by area, negative favors wide jobs (-99: core default)")
	smallArea := fs.Float64("small-job-area", -1, "default policy, packing backfill: area in core-seconds up to which a job is small and backfilled first (-1: core default)")
	guardRes := fs.Int("slowdown-reservations", -1, "default policy: urgent jobs reserved per cycle at most (-1: core default)")
	guard := fs.Float64("slowdown-guard", -1, "default policy: expansion factor (wait+estimate)/estimate from which a job goes first; 0 turns the guard off (-1: core default)")
	backfill := fs.String("backfill", "", "default policy: backfill order, packing or priority (empty: core default)")
	ageMode := fs.String("age-mode", "", "default policy: wait or expansion (empty: core default)")
	asJSON := fs.Bool("json", false, "print the result as JSON")
	limit := fs.Int("limit", 0, "replay only the first N jobs (0: all)")
	cpuProfile := fs.String("cpuprofile", "", "write a CPU profile here")
	copies := fs.Int("copies", 0, "also replay this many copies of the trace with jittered run times and print the spread")
	jitterFrac := fs.Float64("jitter-frac", 0.05, "with --copies: fraction of the jobs whose run time moves")
	jitterS := fs.Int64("jitter-s", 1, "with --copies: seconds a jittered run time moves, up or down")
	baseline := fs.String("baseline", "", "also replay with this policy (core defaults) and compare copy by copy")
	parallel := fs.Int("parallel", runtime.NumCPU(), "with --copies or --baseline: replays run at once (above 1 the core timings include contention)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *trace == "" || *nodes <= 0 || *cpus <= 0 {
		return fmt.Errorf("--trace and --nodes are required and --cpus-per-node must be positive")
	}
	switch *policy {
	case core.PolicyFCFS, core.PolicyFCFSEasy, core.PolicyDefault:
	default:
		return fmt.Errorf("--policy %q: want fcfs, fcfs-easy or default", *policy)
	}
	switch *baseline {
	case "", core.PolicyFCFS, core.PolicyFCFSEasy, core.PolicyDefault:
	default:
		return fmt.Errorf("--baseline %q: want fcfs, fcfs-easy or default", *baseline)
	}
	if *copies < 0 || *jitterFrac < 0 || *jitterFrac > 1 || *jitterS < 1 || *parallel < 1 {
		return fmt.Errorf("--copies must be at least 0, --jitter-frac within [0, 1], --jitter-s and --parallel at least 1")
	}
	if *guard != -1 {
		if err := core.CheckSlowdownGuard(*guard); err != nil {
			return fmt.Errorf("--slowdown-guard: %w", err)
		}
	}
	if *guardRes < -1 {
		return fmt.Errorf("--slowdown-reservations %d: want at least 0", *guardRes)
	}
	switch *est {
	case sim.EstRuntime, sim.EstRequest, sim.EstPredicted:
	default:
		return fmt.Errorf("--estimates %q: want runtime, request or predicted", *est)
	}
	switch *backfill {
	case "", core.BackfillPacking, core.BackfillPriority:
	default:
		return fmt.Errorf("--backfill %q: want packing or priority", *backfill)
	}
	f, err := os.Open(*trace)
	if err != nil {
		return fmt.Errorf("opening trace: %w", err)
	}
	defer f.Close()
	jobs, dropped, err := sim.ReadSWF(f)
	if err != nil {
		return err
	}
	if *limit > 0 && *limit < len(jobs) {
		jobs = jobs[:*limit]
	}
	if *cpuProfile != "" {
		pf, err := os.Create(*cpuProfile)
		if err != nil {
			return fmt.Errorf("cpu profile: %w", err)
		}
		defer pf.Close()
		if err := pprof.StartCPUProfile(pf); err != nil {
			return fmt.Errorf("cpu profile: %w", err)
		}
		defer pprof.StopCPUProfile()
	}
	// A replay is one long batch computation: trade memory for less GC.
	debug.SetGCPercent(400)
	cfg := core.DefaultConfig()
	cfg.Policy = *policy
	if *starve >= 0 {
		cfg.StarvationAge = *starve
	}
	if *maxAge >= 0 {
		cfg.MaxAge = *maxAge
	}
	if *slots >= 0 {
		cfg.StarvationSlots = *slots
	}
	if *ageW >= 0 {
		cfg.Weights.Age = *ageW
	}
	if *sizeW >= 0 {
		cfg.Weights.Size = *sizeW
	}
	if *widthExp != -99 {
		cfg.SizeWidthExponent = *widthExp
	}
	if *guard >= 0 {
		cfg.SlowdownGuard = *guard
	}
	if *guardRes >= 0 {
		cfg.SlowdownReservations = *guardRes
	}
	if *smallArea >= 0 {
		cfg.SmallJobArea = *smallArea
	}
	if *backfill != "" {
		cfg.Backfill = *backfill
	}
	if *ageMode != "" {
		cfg.AgeMode = *ageMode
	}
	if *depth >= 0 {
		cfg.ReservationDepth = *depth
	}
	opts := sim.Options{Nodes: *nodes, CPUsPerNode: *cpus, GPUsPerNode: *gpus, Estimates: *est, Config: cfg}
	if *copies > 0 || *baseline != "" {
		co := sim.CompareOptions{Options: opts, Copies: *copies, Frac: *jitterFrac, Delta: *jitterS, Workers: *parallel,
			Progress: func(done, total int) { fmt.Fprintf(progress, "hpcsim: %d of %d replays done\n", done, total) }}
		if *baseline != "" {
			b := core.DefaultConfig()
			b.Policy = *baseline
			co.Baseline = &b
		}
		return printComparison(out, sim.Compare(jobs, co), *asJSON)
	}
	res := sim.Run(jobs, opts)
	if *asJSON {
		return writeJSON(out, res)
	}
	fmt.Fprintf(out, "policy %s, estimates %s: %d jobs (%d dropped, %d larger than the cluster)\n", res.Policy, res.Estimates, res.Jobs, dropped, res.Skipped)
	fmt.Fprintf(out, "wait s: avg %.0f p50 %.0f p90 %.0f p99 %.0f max %.0f\n", res.AvgWait, res.P50Wait, res.P90Wait, res.P99Wait, res.MaxWait)
	fmt.Fprintf(out, "avg bounded slowdown (10 s): %.2f\n", res.AvgBSLD)
	fmt.Fprintf(out, "utilization %.4f, makespan %.0f s\n", res.Utilization, res.Makespan)
	fmt.Fprintf(out, "core: %d cycles, mean %s, max %s per cycle\n", res.Cycles, res.CoreMean, res.CoreMax)
	return nil
}

// printComparison prints one row per copy and the summary (or JSON).
func printComparison(out io.Writer, c sim.Comparison, asJSON bool) error {
	if asJSON {
		return writeJSON(out, c)
	}
	pol := c.Replicates[0].Policy
	fmt.Fprintf(out, "policy %s, estimates %s, %d jobs; copy 0 is the trace itself\n", pol.Policy, pol.Estimates, pol.Jobs)
	row := func(name string, r *sim.Result) string {
		return fmt.Sprintf("%s bsld %9.2f util %.4f max wait %8.0f s", name, r.AvgBSLD, r.Utilization, r.MaxWait)
	}
	for _, r := range c.Replicates {
		line := fmt.Sprintf("copy %2d: %s", r.Seed, row(r.Policy.Policy, &r.Policy))
		if r.Baseline != nil {
			line += fmt.Sprintf(" | %s | bsld ratio %.3f util diff %+.4f", row(r.Baseline.Policy, r.Baseline), r.BSLDRatio(), r.UtilDiff())
		}
		fmt.Fprintln(out, line)
	}
	sum := func(name string, s *sim.Summary) {
		fmt.Fprintf(out, "%s: bsld mean %.2f sd %.2f [%.2f, %.2f]; util mean %.4f sd %.4f [%.4f, %.4f]; max wait mean %.0f s, worst %.0f s\n",
			name, s.AvgBSLD.Mean, s.AvgBSLD.SD, s.AvgBSLD.Min, s.AvgBSLD.Max,
			s.Utilization.Mean, s.Utilization.SD, s.Utilization.Min, s.Utilization.Max, s.MaxWait.Mean, s.MaxWait.Max)
	}
	sum(pol.Policy, &c.Policy)
	if c.Baseline != nil {
		sum(c.Replicates[0].Baseline.Policy+" (baseline)", c.Baseline)
		p := c.Paired
		fmt.Fprintf(out, "paired over %d copies: bsld ratio mean %.3f [%.3f, %.3f]; util diff mean %+.4f sd %.4f; util no lower in %d of %d\n",
			len(c.Replicates), p.BSLDRatio.Mean, p.BSLDRatio.Min, p.BSLDRatio.Max, p.UtilDiff.Mean, p.UtilDiff.SD, p.UtilNoLower, len(c.Replicates))
	}
	return nil
}

// writeJSON prints v as indented JSON (--json).
func writeJSON(out io.Writer, v any) error {
	enc := json.NewEncoder(out)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}
