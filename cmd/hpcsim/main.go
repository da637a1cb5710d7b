// Command hpcsim replays an SWF workload trace through the real scheduler
// core (scheduler/core) in virtual time and prints wait, bounded slowdown,
// utilization and the wall time spent inside the core per cycle.
//
//	hpcsim --trace lublin_256.swf --nodes 256 --cpus-per-node 1 --policy default
package main

import (
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"os"
	"runtime/debug"
	"runtime/pprof"

	"vhpc/bench/sim"
	"vhpc/scheduler/core"
)

func main() {
	if err := run(os.Args[1:], os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "hpcsim:", err)
		os.Exit(2)
	}
}

func run(args []string, out io.Writer) error {
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
	backfill := fs.String("backfill", "", "default policy: backfill order, packing or priority (empty: core default)")
	ageMode := fs.String("age-mode", "", "default policy: wait or expansion (empty: core default)")
	asJSON := fs.Bool("json", false, "print the result as JSON")
	limit := fs.Int("limit", 0, "replay only the first N jobs (0: all)")
	cpuProfile := fs.String("cpuprofile", "", "write a CPU profile here")
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
	res := sim.Run(jobs, sim.Options{Nodes: *nodes, CPUsPerNode: *cpus, GPUsPerNode: *gpus, Estimates: *est, Config: cfg})
	if *asJSON {
		enc := json.NewEncoder(out)
		enc.SetIndent("", "  ")
		return enc.Encode(res)
	}
	fmt.Fprintf(out, "policy %s, estimates %s: %d jobs (%d dropped, %d larger than the cluster)\n", res.Policy, res.Estimates, res.Jobs, dropped, res.Skipped)
	fmt.Fprintf(out, "wait s: avg %.0f p50 %.0f p90 %.0f p99 %.0f max %.0f\n", res.AvgWait, res.P50Wait, res.P90Wait, res.P99Wait, res.MaxWait)
	fmt.Fprintf(out, "avg bounded slowdown (10 s): %.2f\n", res.AvgBSLD)
	fmt.Fprintf(out, "utilization %.4f, makespan %.0f s\n", res.Utilization, res.Makespan)
	fmt.Fprintf(out, "core: %d cycles, mean %s, max %s per cycle\n", res.Cycles, res.CoreMean, res.CoreMax)
	return nil
}
