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
//
// --idle-profile adds where one replay's idle cores went: by the widest
// reservation of the plan in force, and the full-machine drains (bench/sim
// IdleProfile):
//
//	hpcsim --trace lublin_256.swf --nodes 256 --idle-profile
//
// --preemptions FILE writes every run the replay preempted (a speculative
// gang stopped for a starving job): what it ran, what it was predicted to
// run, and the job it made room for (bench/sim PreemptedRun).
//
// --generate writes a synthetic trace (bench/gen: Lublin–Feitelson jobs,
// users' requested walltimes) instead of replaying one:
//
//	hpcsim --generate out.swf --nodes 1024 --jobs 10000 --load 0.9 --seed 7
//
// --suite replays the policy and the baselines (fcfs-easy, sjf-easy) over a
// family of generated traces and any --trace given, and prints per trace
// and as geometric means the bounded-slowdown ratio, the utilization
// difference and the longest wait's ratio (bench/suite):
//
//	hpcsim --suite --trace lublin_256.swf --trace-nodes 256
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
	"slices"
	"strings"

	"vhpc/bench/sim"
	"vhpc/scheduler/core"
)

func main() {
	if err := run(os.Args[1:], os.Stdout, os.Stderr); err != nil {
		fmt.Fprintln(os.Stderr, "hpcsim:", err)
		os.Exit(2)
	}
}

// policyFlags binds the policy's flags to cfg's fields: each flag's
// default is the core default, so nothing needs an "unset" value, and
// Config.Validate checks the result.
func policyFlags(fs *flag.FlagSet, cfg *core.Config) {
	fs.StringVar(&cfg.Policy, "policy", cfg.Policy, strings.Join(core.Policies(), ", "))
	fs.IntVar(&cfg.ReservationDepth, "reservations", cfg.ReservationDepth, "default policy: blocked jobs first by priority that get a reservation")
	fs.DurationVar(&cfg.StarvationAge, "starvation-age", cfg.StarvationAge, "default policy: wait after which a job is ordered by submit time ahead of younger ones (0: off)")
	fs.DurationVar(&cfg.MaxAge, "max-age", cfg.MaxAge, "default policy: age at which the age factor saturates")
	fs.DurationVar(&cfg.StarvationGrace, "starvation-grace", cfg.StarvationGrace, "default policy, predictions: how long a starving lead job still lets jobs with consistent predictions (last two runs within 2x) be planned with them (0: walltimes at once)")
	fs.Float64Var(&cfg.SpeculativeSlack, "speculative-slack", cfg.SpeculativeSlack, "default policy, --speculative: a speculative start needs a hole of its prediction plus this many times it (0: the prediction alone)")
	fs.BoolVar(&cfg.SpeculativeBackfill, "speculative", cfg.SpeculativeBackfill, "default policy, predictions: while a starving job leads, start a job on its prediction where its walltime does not fit, and preempt (requeue) it if it runs past its prediction into the starving job's reservation (on by default; --speculative=false turns it off)")
	fs.Float64Var(&cfg.StarvationBacklog, "starvation-backlog", cfg.StarvationBacklog, "default policy: a job starves once its wait exceeds this x the backlog (pending and running work over the machine's capacity), clamped to [--starvation-floor, --starvation-age] (0: --starvation-age alone)")
	fs.DurationVar(&cfg.StarvationFloor, "starvation-floor", cfg.StarvationFloor, "default policy, --starvation-backlog: the earliest a job starves")
	fs.IntVar(&cfg.StarvationSlots, "starvation-slots", cfg.StarvationSlots, "default policy: oldest starving jobs promoted at once (0, the default: all)")
	fs.Float64Var(&cfg.Weights.Age, "age-weight", cfg.Weights.Age, "default policy: weight of the age factor")
	fs.Float64Var(&cfg.Weights.FairShare, "fairshare-weight", cfg.Weights.FairShare, "default policy: weight of the fair-share factor")
	fs.Float64Var(&cfg.Weights.QOS, "qos-weight", cfg.Weights.QOS, "default policy: weight of the QOS factor")
	fs.Float64Var(&cfg.Weights.Size, "size-weight", cfg.Weights.Size, "default policy: weight of the size factor")
	fs.Float64Var(&cfg.SizeWidthExponent, "size-width-exponent", cfg.SizeWidthExponent, "default policy: 0 ranks by runtime, 1 by area, negative favors wide jobs")
	fs.Float64Var(&cfg.SmallJobArea, "small-job-area", cfg.SmallJobArea, "default policy, packing backfill: area in core-seconds up to which a job is small and backfilled first")
	fs.Float64Var(&cfg.DrainPacking, "drain-packing", cfg.DrainPacking, "default policy, shortest backfill: while a starving job needing at least this share of the machine leads, backfill small jobs first, then largest area first (0: off)")
	fs.Float64Var(&cfg.DrainSmallArea, "drain-small-area", cfg.DrainSmallArea, "default policy, --drain-packing: area in core-seconds up to which a job is small and backfilled first in a packed drain")
	fs.DurationVar(&cfg.DrainYield, "drain-yield", cfg.DrainYield, "default policy, --drain-packing: a job planned to run at most this long starts before the packed drain's lead, delaying it at most this long (0: off)")
	fs.IntVar(&cfg.SlowdownReservations, "slowdown-reservations", cfg.SlowdownReservations, "default policy: urgent jobs reserved per cycle at most")
	fs.Float64Var(&cfg.SlowdownGuard, "slowdown-guard", cfg.SlowdownGuard, "default policy: expansion factor (wait+estimate)/estimate from which a job goes first (0: off)")
	fs.StringVar(&cfg.Backfill, "backfill", cfg.Backfill, "default policy: backfill order, shortest, packing or priority")
	fs.StringVar(&cfg.AgeMode, "age-mode", cfg.AgeMode, "default policy: wait or expansion")
	fs.StringVar(&cfg.Estimate, "plan", cfg.Estimate, "what the core plans with: predicted (each user's history, capped by the walltime) or request (the walltime)")
	fs.StringVar(&cfg.PredictBy, "predict-by", cfg.PredictBy, "predicted estimates: kind (the user's last runs of the job's kind: name, shape, walltime; for a new kind its walltime times the user's accuracy) or user (the user's last runs of any kind)")
	fs.IntVar(&cfg.AccuracyLen, "accuracy-runs", cfg.AccuracyLen, "predictions by kind: a new kind's walltime is scaled by the user's mean accuracy (runtime over walltime) over this many last runs")
	fs.IntVar(&cfg.HistoryLen, "history", cfg.HistoryLen, "predicted estimates: runtimes averaged (see --predict-by)")
}

// run parses args, replays, and prints the result to out; a comparison
// reports each finished replay on progress.
func run(args []string, out, progress io.Writer) error {
	fs := flag.NewFlagSet("hpcsim", flag.ContinueOnError)
	cfg := core.DefaultConfig()
	policyFlags(fs, &cfg)
	trace := fs.String("trace", "", "SWF trace file (required unless --generate or --suite)")
	nodes := fs.Int("nodes", 0, "number of nodes (required to replay or generate)")
	cpus := fs.Int("cpus-per-node", 1, "CPUs per node")
	gpus := fs.Int("gpus-per-node", 0, "GPUs per node; jobs take GPUs in proportion to their cores")
	est := fs.String("estimates", sim.EstRequest, "walltimes: runtime (perfect), request (the trace's requested time; the run time where it has none) or predicted (request, planned with per-user history whatever the policy says; a replay only). With --suite every replay, baselines too, gets these walltimes")
	asJSON := fs.Bool("json", false, "print the result as JSON")
	limit := fs.Int("limit", 0, "replay only the first N jobs (0: all)")
	cpuProfile := fs.String("cpuprofile", "", "write a CPU profile here")
	startsOut := fs.String("starts", "", "also write each started job's trace number and start second, one per line, to this file (to compare two builds' plans)")
	copies := fs.Int("copies", 0, "also replay this many copies of the trace with jittered run times and print the spread")
	jitterFrac := fs.Float64("jitter-frac", 0.05, "with --copies: fraction of the jobs whose run time moves")
	jitterS := fs.Int64("jitter-s", 1, "with --copies: seconds a jittered run time moves, up or down")
	baseline := fs.String("baseline", "", "also replay with this policy (core defaults, planned with the walltime) and compare copy by copy")
	parallel := fs.Int("parallel", runtime.NumCPU(), "replays run at once with --copies, --baseline or --suite (above 1 the core timings include contention)")
	idleProfile := fs.Bool("idle-profile", false, "one replay: also print where the idle cores went (idle core-seconds by the plan's widest reservation: full machine, half or more, narrower, none, nothing pending) and the full-machine drains (how many, how long, how idle, and how many jobs of at most 10 minutes were pending to fill them)")
	preemptionsOut := fs.String("preemptions", "", "one replay: also write every preempted run to this file, one tab-separated line each under a header: job, cores, start and stop second, what it ran, what it still had to run, its walltime, the prediction it started speculatively with, and the job it was stopped for with how long that job had waited")
	resume := fs.Bool("resume-preempted", false, "what-if hpcd cannot follow (QEMU refuses to save a job guest: scheduler/core/README.md, eleventh round): a preempted gang keeps its progress, as if its guests were saved and restored on any nodes, instead of losing its run (with --suite: every replay)")
	gf := genFlags(fs)
	if err := fs.Parse(args); err != nil {
		return err
	}
	if err := checkModeFlags(fs, gf); err != nil {
		return err
	}
	if err := cfg.Validate(); err != nil {
		return err
	}
	if *parallel < 1 {
		return fmt.Errorf("--parallel %d: want at least 1", *parallel)
	}
	switch *est {
	case sim.EstRuntime, sim.EstRequest, sim.EstPredicted:
	default:
		return fmt.Errorf("--estimates %q: want runtime, request or predicted", *est)
	}
	switch {
	case gf.out != "":
		return gf.generate(*nodes, progress)
	case gf.suite:
		if *est == sim.EstPredicted {
			return fmt.Errorf("--suite --estimates predicted: the baselines would be planned with predictions too; want request or runtime (the policy's own planning is --plan)")
		}
		return gf.runSuite(out, progress, cfg, *trace, *est, *parallel, *asJSON, *resume)
	}
	if *trace == "" || *nodes <= 0 || *cpus <= 0 {
		return fmt.Errorf("--trace and --nodes are required and --cpus-per-node must be positive")
	}
	if *baseline != "" {
		b := core.DefaultConfig()
		b.Policy = *baseline
		if err := b.Validate(); err != nil {
			return fmt.Errorf("--baseline: %w", err)
		}
	}
	if *copies < 0 || *jitterFrac < 0 || *jitterFrac > 1 || *jitterS < 1 {
		return fmt.Errorf("--copies must be at least 0, --jitter-frac within [0, 1], --jitter-s at least 1")
	}
	jobs, dropped, err := readTrace(*trace)
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
	opts := sim.Options{Nodes: *nodes, CPUsPerNode: *cpus, GPUsPerNode: *gpus, Estimates: *est, Config: cfg, ResumePreempted: *resume, IdleProfile: *idleProfile,
		Preemptions: *preemptionsOut != ""}
	if *copies > 0 || *baseline != "" {
		for _, f := range []struct {
			name string
			set  bool
		}{{"idle-profile", *idleProfile}, {"preemptions", *preemptionsOut != ""}, {"starts", *startsOut != ""}} {
			if f.set {
				return fmt.Errorf("--%s describes one replay: drop --copies and --baseline", f.name)
			}
		}
		co := sim.CompareOptions{Options: opts, Copies: *copies, Frac: *jitterFrac, Delta: *jitterS, Workers: *parallel,
			Progress: func(done, total int) { fmt.Fprintf(progress, "hpcsim: %d of %d replays done\n", done, total) }}
		if *baseline != "" {
			b := sim.BaselineConfig(*baseline)
			co.Baseline = &b
		}
		return printComparison(out, sim.Compare(jobs, co), *asJSON)
	}
	res := sim.Run(jobs, opts)
	if *startsOut != "" {
		if err := writeFlagFile("--starts", *startsOut, startsText(res.Starts)); err != nil {
			return err
		}
	}
	if *preemptionsOut != "" {
		if err := writeFlagFile("--preemptions", *preemptionsOut, preemptionsText(res.Preemptions)); err != nil {
			return err
		}
	}
	if *asJSON {
		return writeJSON(out, res)
	}
	fmt.Fprintf(out, "policy %s, estimates %s: %d jobs (%d dropped, %d larger than the cluster)\n", res.Policy, res.Estimates, res.Jobs, dropped, res.Skipped)
	fmt.Fprintf(out, "wait s: avg %.0f p50 %.0f p90 %.0f p99 %.0f max %.0f\n", res.AvgWait, res.P50Wait, res.P90Wait, res.P99Wait, res.MaxWait)
	fmt.Fprintf(out, "avg bounded slowdown (10 s): %.2f\n", res.AvgBSLD)
	fmt.Fprintf(out, "utilization %.4f, makespan %.0f s\n", res.Utilization, res.Makespan)
	fmt.Fprintf(out, "core: %d cycles (%d on the one-slot pool), mean %s, max %s per cycle (%d events with nothing pending skipped)\n", res.Cycles, res.PoolCycles, res.CoreMean, res.CoreMax, res.IdleCycles)
	if res.Preempted > 0 {
		fate := fmt.Sprintf("%.0f core-seconds of their runs lost", res.PreemptedCoreSeconds)
		if opts.ResumePreempted {
			fate = fmt.Sprintf("%.0f core-seconds of their runs kept (--resume-preempted)", res.ResumedCoreSeconds)
		}
		fmt.Fprintf(out, "preempted: %d gangs (speculative backfill; one job at most %d times), %s\n", res.Preempted, res.MostPreempted, fate)
	}
	if p := res.Idle; p != nil {
		printIdleProfile(out, p)
	}
	return nil
}

// writeFlagFile writes text to the file a flag (--starts, --preemptions)
// names; an error names the flag.
func writeFlagFile(flag, path, text string) error {
	if err := os.WriteFile(path, []byte(text), 0o644); err != nil {
		return fmt.Errorf("%s: %w", flag, err)
	}
	return nil
}

// startsText is --starts' file: one "job second" line per started job.
func startsText(starts []sim.JobStart) string {
	var b strings.Builder
	for _, s := range starts {
		fmt.Fprintf(&b, "%d %d\n", s.ID, s.At)
	}
	return b.String()
}

// preemptionsText is --preemptions' file: a header, then one
// tab-separated line per preempted run (sim.PreemptedRun).
func preemptionsText(runs []sim.PreemptedRun) string {
	var b strings.Builder
	b.WriteString("job\tcores\tstart\tstop\tran\trun\twalltime\tpredicted\tby\tby_waited\n")
	for _, r := range runs {
		fmt.Fprintf(&b, "%d\t%d\t%d\t%d\t%d\t%d\t%d\t%d\t%d\t%d\n",
			r.Job, r.Cores, r.Start, r.Stop, r.Stop-r.Start, r.Run, r.Walltime, r.Predicted, r.By, r.ByWaited)
	}
	return b.String()
}

// readTrace reads an SWF file.
func readTrace(path string) ([]sim.TraceJob, int, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, 0, fmt.Errorf("opening trace: %w", err)
	}
	defer f.Close()
	return sim.ReadSWF(f)
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

// checkModeFlags refuses a flag that hpcsim's mode (--generate, --suite,
// or a replay of --trace) would ignore, so that a flag given is a flag
// used: run calls it before anything is read or replayed.
func checkModeFlags(fs *flag.FlagSet, g *genOpts) error {
	if g.out != "" && g.suite {
		return fmt.Errorf("--generate and --suite: choose one")
	}
	policy := flag.NewFlagSet("policy", flag.ContinueOnError)
	policyFlags(policy, new(core.Config))
	var mode string
	var applies func(name string) bool
	switch {
	case g.out != "":
		mode = "--generate"
		applies = func(name string) bool {
			return slices.Contains([]string{"generate", "nodes", "jobs", "load", "seed"}, name)
		}
	case g.suite:
		mode = "--suite"
		applies = func(name string) bool {
			return policy.Lookup(name) != nil || strings.HasPrefix(name, "family-") || slices.Contains([]string{
				"suite", "suite-cache", "trace", "trace-nodes", "no-family", "estimates", "json", "parallel", "resume-preempted"}, name)
		}
	default:
		mode = "a replay of --trace"
		applies = func(name string) bool {
			return policy.Lookup(name) != nil || slices.Contains([]string{
				"trace", "nodes", "cpus-per-node", "gpus-per-node", "estimates", "json", "limit", "cpuprofile", "starts",
				"copies", "jitter-frac", "jitter-s", "baseline", "parallel", "resume-preempted", "idle-profile", "preemptions"}, name)
		}
	}
	var unused []string
	fs.Visit(func(f *flag.Flag) {
		if !applies(f.Name) {
			unused = append(unused, "--"+f.Name)
		}
	})
	if len(unused) > 0 {
		verb := "does"
		if len(unused) > 1 {
			verb = "do"
		}
		return fmt.Errorf("%s %s not apply to %s (hpcsim -h says which mode reads each flag)", strings.Join(unused, ", "), verb, mode)
	}
	return nil
}

// printIdleProfile prints --idle-profile's lines: idle core-seconds by
// the widest reservation, then the full-machine drains.
func printIdleProfile(out io.Writer, p *sim.IdleProfile) {
	m := func(v float64) string { return fmt.Sprintf("%.1f M", v/1e6) }
	fmt.Fprintf(out, "idle core-seconds: %s; while reserved for the full machine %s, half or more %s, narrower %s; with none reserved %s; with nothing pending %s\n",
		m(p.Total()), m(p.FullMachine), m(p.HalfOrMore), m(p.Narrower), m(p.Unreserved), m(p.NothingPending))
	if p.FullDrains == 0 {
		fmt.Fprintln(out, "full-machine drains: none")
		return
	}
	n := float64(p.FullDrains)
	fmt.Fprintf(out, "full-machine drains: %d, %.1f h and %s idle core-seconds each on average; %.1f jobs of at most %d s pending in them on average\n",
		p.FullDrains, p.FullDrainSeconds/n/3600, m(p.FullDrainIdle/n), p.ShortPending, sim.ShortRun)
}
