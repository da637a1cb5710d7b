package main

import (
	"crypto/sha256"
	"encoding/hex"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"

	"vhpc/bench/gen"
	"vhpc/bench/sim"
	"vhpc/bench/suite"
	"vhpc/scheduler/core"
)

// genOpts are the --generate and --suite flags.
type genOpts struct {
	out        string
	jobs       int
	load       float64
	seed       uint64
	suite      bool
	sizes      string
	loads      string
	seeds      int
	firstSeed  uint64
	famJobs    string
	traceNodes int
	noFamily   bool
	cacheDir   string
}

func genFlags(fs *flag.FlagSet) *genOpts {
	g := &genOpts{}
	def := suite.DefaultFamily()
	fs.StringVar(&g.out, "generate", "", "write a generated trace (Lublin–Feitelson jobs, users' requested walltimes) to this SWF file and exit; needs --nodes")
	fs.IntVar(&g.jobs, "jobs", 10000, "with --generate: jobs in the trace")
	fs.Float64Var(&g.load, "load", 0.9, "with --generate: offered load")
	fs.Uint64Var(&g.seed, "seed", 1, "with --generate: random seed")
	fs.BoolVar(&g.suite, "suite", false, "replay the policy, fcfs-easy and sjf-easy over the generated family and --trace (if given) and print the ratios")
	fs.StringVar(&g.sizes, "family-sizes", joinInts(def.Sizes), "with --suite: machine sizes of the generated family (one-CPU nodes)")
	fs.StringVar(&g.loads, "family-loads", joinFloats(def.Loads), "with --suite: offered loads of the generated family")
	fs.IntVar(&g.seeds, "family-seeds", def.Seeds, "with --suite: seeds per size and load")
	fs.Uint64Var(&g.firstSeed, "family-first-seed", def.FirstSeed, "with --suite: the family's first seed (a different one gives a fresh family)")
	fs.StringVar(&g.famJobs, "family-jobs", joinInts(def.Jobs), "with --suite: jobs per generated trace; several lengths (2000,10000) replay the family once per length, names ending in -j and the length")
	fs.IntVar(&g.traceNodes, "trace-nodes", 0, "with --suite and --trace: the trace's machine size in one-CPU nodes")
	fs.BoolVar(&g.noFamily, "no-family", false, "with --suite: replay only --trace")
	fs.StringVar(&g.cacheDir, "suite-cache", "", "with --suite: keep each replay's result in this folder and reuse it (the baselines are then replayed once per build of hpcsim)")
	return g
}

func joinInts(xs []int) string {
	s := make([]string, len(xs))
	for i, x := range xs {
		s[i] = strconv.Itoa(x)
	}
	return strings.Join(s, ",")
}

func joinFloats(xs []float64) string {
	s := make([]string, len(xs))
	for i, x := range xs {
		s[i] = strconv.FormatFloat(x, 'f', -1, 64)
	}
	return strings.Join(s, ",")
}

// generate writes one generated trace (--generate).
func (g *genOpts) generate(nodes int, progress io.Writer) error {
	jobs, err := gen.Generate(gen.Params{Nodes: nodes, Jobs: g.jobs, Load: g.load, Seed: g.seed})
	if err != nil {
		return err
	}
	f, err := os.Create(g.out)
	if err != nil {
		return fmt.Errorf("--generate: %w", err)
	}
	comment := fmt.Sprintf("Information: hpcsim --generate --nodes %d --jobs %d --load %g --seed %d (Lublin–Feitelson jobs, Tsafrir–Etsion–Feitelson requests)", nodes, g.jobs, g.load, g.seed)
	if err := sim.WriteSWF(f, jobs, nodes, comment); err != nil {
		f.Close()
		return err
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("--generate: %w", err)
	}
	fmt.Fprintf(progress, "hpcsim: wrote %d jobs to %s\n", len(jobs), g.out)
	return nil
}

// family parses the --family-* flags.
func (g *genOpts) family() (suite.Family, error) {
	f := suite.Family{Seeds: g.seeds, FirstSeed: g.firstSeed}
	var err error
	if f.Sizes, err = positiveInts("--family-sizes", g.sizes, "node counts such as 128,512"); err != nil {
		return f, err
	}
	if f.Jobs, err = positiveInts("--family-jobs", g.famJobs, "trace lengths such as 2000 or 2000,10000"); err != nil {
		return f, err
	}
	for _, s := range strings.Split(g.loads, ",") {
		l, err := strconv.ParseFloat(strings.TrimSpace(s), 64)
		if err != nil || !(l > 0 && l <= 10) {
			return f, fmt.Errorf("--family-loads %q: want loads such as 0.6,0.95", g.loads)
		}
		f.Loads = append(f.Loads, l)
	}
	if f.Seeds < 1 {
		return f, fmt.Errorf("--family-seeds must be at least 1")
	}
	return f, nil
}

// positiveInts parses the comma-separated value of the flag called name:
// distinct numbers, each at least 1. want says what it holds, for the
// error.
func positiveInts(name, value, want string) ([]int, error) {
	var out []int
	for _, s := range strings.Split(value, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(s))
		if err != nil || n < 1 {
			return nil, fmt.Errorf("%s %q: want %s", name, value, want)
		}
		if slices.Contains(out, n) {
			return nil, fmt.Errorf("%s %q: %d is given twice", name, value, n)
		}
		out = append(out, n)
	}
	return out, nil
}

// runSuite replays the family and the trace (--suite) and prints the table.
func (g *genOpts) runSuite(out, progress io.Writer, cfg core.Config, trace, estimates string, workers int, asJSON, resume bool) error {
	var traces []suite.Trace
	if !g.noFamily {
		f, err := g.family()
		if err != nil {
			return err
		}
		if traces, err = f.Traces(); err != nil {
			return err
		}
	}
	if trace != "" {
		jobs, _, err := readTrace(trace)
		if err != nil {
			return err
		}
		if g.traceNodes < 1 {
			return fmt.Errorf("--suite --trace needs --trace-nodes (the trace's machine size)")
		}
		traces = append(traces, suite.Trace{Name: filepath.Base(trace), Nodes: g.traceNodes, Jobs: jobs})
	}
	if len(traces) == 0 {
		return fmt.Errorf("--suite: nothing to replay (--no-family without --trace)")
	}
	var build string
	if g.cacheDir != "" {
		var err error
		if build, err = executableHash(); err != nil {
			return fmt.Errorf("--suite-cache: %w", err)
		}
	}
	rep := suite.Run(traces, suite.Options{Policy: cfg, Estimates: estimates, ResumePreempted: resume, Workers: workers, CacheDir: g.cacheDir, Build: build,
		Progress: func(done, total int) { fmt.Fprintf(progress, "hpcsim: %d of %d replays done\n", done, total) }})
	if asJSON {
		return writeJSON(out, rep)
	}
	fmt.Fprintf(out, "policy %s (plans with %s), walltimes %s; baselines fcfs-easy and sjf-easy planned with the walltime\n", cfg.Policy, cfg.Estimate, estimates)
	fmt.Fprintln(out, "| trace | jobs | fcfs-easy bsld | sjf-easy bsld | policy bsld | ratio | sjf ratio | util fcfs-easy | util diff | max wait fcfs-easy s | wait ratio | sjf wait ratio |")
	fmt.Fprintln(out, "|---|---|---|---|---|---|---|---|---|---|---|---|")
	for _, r := range rep.Rows {
		fmt.Fprintf(out, "| %s | %d | %.2f | %.2f | %.2f | %.3f | %.3f | %.4f | %+.4f | %.0f | %.2f | %.2f |\n",
			r.Trace, r.Policy.Jobs, r.FCFSEasy.AvgBSLD, r.SJFEasy.AvgBSLD, r.Policy.AvgBSLD, r.BSLDRatio(), r.SJFRatio(),
			r.FCFSEasy.Utilization, r.UtilDiff(), r.FCFSEasy.MaxWait, r.WaitRatio(), r.SJFWaitRatio())
	}
	s := rep.Summary
	fmt.Fprintf(out, "| **geomean** (%d traces) | | | | | **%.3f** | %.3f | | mean %+.4f, min **%+.4f** | | **%.2f** (max %.2f) | %.2f |\n",
		len(rep.Rows), s.GeoBSLDRatio, s.GeoSJFRatio, s.MeanUtilDiff, s.MinUtilDiff, s.GeoWaitRatio, s.MaxWaitRatio, s.GeoSJFWaitRatio)
	if m := suite.DefaultGoals.Misses(s); len(m) > 0 {
		fmt.Fprintf(out, "goals missed: %s\n", strings.Join(m, "; "))
	} else {
		fmt.Fprintln(out, "goals met: geomean bsld ratio ≤ 0.5, utilization within 0.01 of fcfs-easy's and longest wait ≤ 1.5× on every trace")
	}
	return nil
}

// executableHash is the SHA-256 of the running hpcsim binary: the build
// the suite cache keys its results on (suite.Options.Build), so a rebuilt
// scheduler never reuses results cached by the one before.
func executableHash() (string, error) {
	path, err := os.Executable()
	if err != nil {
		return "", fmt.Errorf("finding the hpcsim executable: %w", err)
	}
	f, err := os.Open(path)
	if err != nil {
		return "", fmt.Errorf("hashing the hpcsim executable: %w", err)
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		return "", fmt.Errorf("hashing the hpcsim executable: %w", err)
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}
