package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"vhpc/bench/sim"
	"vhpc/bench/suite"
)

const tinyTrace = `; MaxNodes: 4
1 0 -1 100 4 -1 -1 -1 -1 -1 1 -1 -1 -1 0 -1 -1 -1
2 10 -1 50 2 -1 -1 -1 -1 -1 1 -1 -1 -1 0 -1 -1 -1
3 20 -1 10 2 -1 -1 -1 -1 -1 1 -1 -1 -1 0 -1 -1 -1
4 25 -1 5 1 -1 -1 -1 -1 -1 1 -1 -1 -1 0 -1 -1 -1
`

func writeTrace(t *testing.T) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "tiny.swf")
	if err := os.WriteFile(p, []byte(tinyTrace), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestRunFlags(t *testing.T) {
	trace := writeTrace(t)
	tests := []struct {
		name    string
		args    []string
		wantErr string
		want    []string
		// wantProgress ends the progress output (comparisons only).
		wantProgress string
	}{
		{"one replay", []string{"--trace", trace, "--nodes", "4"}, "",
			[]string{"policy default, estimates request: 4 jobs", "avg bounded slowdown", "utilization"}, ""},
		{"copies with a baseline", []string{"--trace", trace, "--nodes", "4", "--copies", "2", "--baseline", "fcfs-easy", "--parallel", "1"}, "",
			[]string{"copy  0: default", "copy  2: default", "| fcfs-easy", "fcfs-easy (baseline): bsld mean", "paired over 3 copies", "util no lower in"},
			"hpcsim: 6 of 6 replays done\n"},
		{"copies alone", []string{"--trace", trace, "--nodes", "4", "--copies", "1"}, "",
			[]string{"copy  1: default", "default: bsld mean"}, "hpcsim: 2 of 2 replays done\n"},
		{"slowdown guard off", []string{"--trace", trace, "--nodes", "4", "--slowdown-guard", "0", "--slowdown-reservations", "0"}, "",
			[]string{"policy default, estimates request: 4 jobs"}, ""},
		{"slowdown guard below 1", []string{"--trace", trace, "--nodes", "4", "--slowdown-guard", "0.5"}, "slowdown guard 0.5: want 0 (off)", nil, ""},
		{"negative slowdown reservations", []string{"--trace", trace, "--nodes", "4", "--slowdown-reservations", "-2"}, "slowdown reservations -2: want 0..", nil, ""},
		{"missing nodes", []string{"--trace", trace}, "--nodes are required", nil, ""},
		{"bad baseline", []string{"--trace", trace, "--nodes", "4", "--baseline", "sjf"}, `--baseline: policy "sjf": want one of fcfs, fcfs-easy, sjf-easy, default`, nil, ""},
		{"bad policy", []string{"--trace", trace, "--nodes", "4", "--policy", "lifo"}, `policy "lifo"`, nil, ""},
		{"bad backfill", []string{"--trace", trace, "--nodes", "4", "--backfill", "random"}, `backfill "random"`, nil, ""},
		{"sjf-easy", []string{"--trace", trace, "--nodes", "4", "--policy", "sjf-easy"}, "", []string{"policy sjf-easy, estimates request: 4 jobs"}, ""},
		{"suite on the trace only", []string{"--suite", "--no-family", "--trace", trace, "--trace-nodes", "4", "--parallel", "1"}, "",
			[]string{"| tiny.swf | 4 |", "**geomean** (1 traces)"}, "hpcsim: 3 of 3 replays done\n"},
		{"suite on a small family", []string{"--suite", "--family-sizes", "16", "--family-loads", "0.7", "--family-jobs", "60", "--parallel", "2"}, "",
			[]string{"| n16-l0.70-s1 | 60 |", "**geomean** (1 traces)"}, "hpcsim: 3 of 3 replays done\n"},
		{"suite keeping preempted runs", []string{"--suite", "--family-sizes", "16", "--family-loads", "0.7", "--family-jobs", "60", "--parallel", "2", "--resume-preempted"}, "",
			[]string{"| n16-l0.70-s1 | 60 |", "**geomean** (1 traces)"}, "hpcsim: 3 of 3 replays done\n"},
		{"one replay with its idle profile", []string{"--trace", trace, "--nodes", "4", "--idle-profile"}, "",
			[]string{"idle core-seconds: ", "while reserved for the full machine", "full-machine drains: "}, ""},
		{"idle profile of a comparison", []string{"--trace", trace, "--nodes", "4", "--baseline", "fcfs-easy", "--idle-profile"}, "--idle-profile describes one replay", nil, ""},
		{"idle profile of a suite", []string{"--suite", "--idle-profile"}, "--idle-profile does not apply to --suite", nil, ""},
		{"preempted runs of a comparison", []string{"--trace", trace, "--nodes", "4", "--copies", "1", "--preemptions", filepath.Join(t.TempDir(), "p.tsv")}, "--preemptions describes one replay", nil, ""},
		{"starts of a comparison", []string{"--trace", trace, "--nodes", "4", "--copies", "1", "--starts", filepath.Join(t.TempDir(), "s.txt")}, "--starts describes one replay", nil, ""},
		{"preempted runs of a suite", []string{"--suite", "--preemptions", "p.tsv"}, "--preemptions does not apply to --suite", nil, ""},
		{"one replay keeping preempted runs", []string{"--trace", trace, "--nodes", "4", "--resume-preempted"}, "",
			[]string{"policy default, estimates request: 4 jobs"}, ""},
		{"suite trace without its size", []string{"--suite", "--no-family", "--trace", trace}, "needs --trace-nodes", nil, ""},
		{"suite at two lengths", []string{"--suite", "--family-sizes", "16", "--family-loads", "0.7", "--family-jobs", "40,60", "--parallel", "2"}, "",
			[]string{"| n16-l0.70-s1-j40 | 40 |", "| n16-l0.70-s1-j60 | 60 |", "**geomean** (2 traces)"}, "hpcsim: 6 of 6 replays done\n"},
		{"suite with a bad size", []string{"--suite", "--family-sizes", "x"}, "--family-sizes", nil, ""},
		{"suite with a zero length", []string{"--suite", "--family-jobs", "2000,0"}, `--family-jobs "2000,0": want trace lengths`, nil, ""},
		{"suite with a length twice", []string{"--suite", "--family-jobs", "2000,10000,2000"}, `--family-jobs "2000,10000,2000": 2000 is given twice`, nil, ""},
		{"suite with a bad length", []string{"--suite", "--family-jobs", "many"}, `--family-jobs "many"`, nil, ""},
		{"suite without seeds", []string{"--suite", "--family-seeds", "0"}, "--family-seeds must be at least 1", nil, ""},
		{"suite with perfect walltimes", []string{"--suite", "--family-sizes", "16", "--family-loads", "0.7", "--family-jobs", "60", "--parallel", "2", "--estimates", "runtime"}, "",
			[]string{"walltimes runtime;", "| n16-l0.70-s1 | 60 |"}, "hpcsim: 3 of 3 replays done\n"},
		{"suite with predicted walltimes", []string{"--suite", "--estimates", "predicted"}, "--suite --estimates predicted: the baselines would be planned with predictions", nil, ""},
		{"suite with unknown walltimes", []string{"--suite", "--estimates", "guess"}, `--estimates "guess": want runtime, request or predicted`, nil, ""},
		{"suite with replay flags", []string{"--suite", "--copies", "2", "--nodes", "4"}, "--copies, --nodes do not apply to --suite", nil, ""},
		{"replay with a suite flag", []string{"--trace", trace, "--nodes", "4", "--family-sizes", "16"}, "--family-sizes does not apply to a replay of --trace", nil, ""},
		{"generate with a policy flag", []string{"--generate", filepath.Join(t.TempDir(), "g.swf"), "--nodes", "4", "--policy", "fcfs"}, "--policy does not apply to --generate", nil, ""},
		{"generate and suite", []string{"--generate", filepath.Join(t.TempDir(), "g.swf"), "--suite"}, "--generate and --suite: choose one", nil, ""},
		{"negative copies", []string{"--trace", trace, "--nodes", "4", "--copies", "-1"}, "--copies must be at least 0", nil, ""},
		{"jitter fraction above 1", []string{"--trace", trace, "--nodes", "4", "--copies", "1", "--jitter-frac", "2"}, "--jitter-frac within [0, 1]", nil, ""},
		{"zero parallel", []string{"--trace", trace, "--nodes", "4", "--copies", "1", "--parallel", "0"}, "--parallel 0: want at least 1", nil, ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var out, progress bytes.Buffer
			err := run(tc.args, &out, &progress)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("error %v, want one containing %q", err, tc.wantErr)
				}
				if out.Len() != 0 {
					t.Fatalf("printed %q before failing", out.String())
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			for _, w := range tc.want {
				if !strings.Contains(out.String(), w) {
					t.Fatalf("output lacks %q:\n%s", w, out.String())
				}
			}
			if tc.wantProgress != "" && !strings.HasSuffix(progress.String(), tc.wantProgress) {
				t.Fatalf("progress %q, want it to end with %q", progress.String(), tc.wantProgress)
			}
		})
	}
}

// TestPreemptionsFile: --preemptions writes a header and one line per
// preempted gang of the replay, as many as it reports.
func TestPreemptionsFile(t *testing.T) {
	dir := t.TempDir()
	trace, file := filepath.Join(dir, "g.swf"), filepath.Join(dir, "p.tsv")
	gen := []string{"--generate", trace, "--nodes", "64", "--jobs", "600", "--load", "1.05", "--seed", "3"}
	if err := run(gen, io.Discard, io.Discard); err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	if err := run([]string{"--trace", trace, "--nodes", "64", "--starvation-age", "12h", "--preemptions", file}, &out, io.Discard); err != nil {
		t.Fatal(err)
	}
	var gangs int
	for _, l := range strings.Split(out.String(), "\n") {
		if strings.HasPrefix(l, "preempted: ") {
			if _, err := fmt.Sscanf(l, "preempted: %d gangs", &gangs); err != nil {
				t.Fatal(err)
			}
		}
	}
	b, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSuffix(string(b), "\n"), "\n")
	if lines[0] != "job\tcores\tstart\tstop\tran\trun\twalltime\tpredicted\tby\tby_waited" {
		t.Fatalf("header %q", lines[0])
	}
	if gangs == 0 || len(lines)-1 != gangs {
		t.Fatalf("%d lines for %d preempted gangs:\n%s", len(lines)-1, gangs, b)
	}
	for _, l := range lines[1:] {
		var f [10]int64
		if _, err := fmt.Sscanf(l, "%d\t%d\t%d\t%d\t%d\t%d\t%d\t%d\t%d\t%d", &f[0], &f[1], &f[2], &f[3], &f[4], &f[5], &f[6], &f[7], &f[8], &f[9]); err != nil {
			t.Fatalf("line %q: %v", l, err)
		}
		if f[4] != f[3]-f[2] || f[7] <= 0 {
			t.Fatalf("line %q: ran is not stop - start, or no prediction", l)
		}
	}
}

func TestRunCompareJSON(t *testing.T) {
	var out bytes.Buffer
	args := []string{"--trace", writeTrace(t), "--nodes", "4", "--copies", "2", "--baseline", "fcfs", "--json"}
	if err := run(args, &out, io.Discard); err != nil {
		t.Fatal(err)
	}
	var c sim.Comparison
	if err := json.Unmarshal(out.Bytes(), &c); err != nil {
		t.Fatalf("output is not a comparison: %v\n%s", err, out.String())
	}
	if len(c.Replicates) != 3 || c.Paired == nil || c.Replicates[2].Baseline == nil || c.Replicates[2].Baseline.Policy != "fcfs" {
		t.Fatalf("comparison %+v", c)
	}
}

// TestSuiteEstimates checks that --suite replays with the walltimes
// --estimates names: perfect walltimes change fcfs-easy's plan of the
// same generated trace.
func TestSuiteEstimates(t *testing.T) {
	report := func(est string) suite.Report {
		t.Helper()
		var out bytes.Buffer
		args := []string{"--suite", "--family-sizes", "16", "--family-loads", "0.9", "--family-jobs", "80", "--parallel", "2", "--json", "--estimates", est}
		if err := run(args, &out, io.Discard); err != nil {
			t.Fatal(err)
		}
		var r suite.Report
		if err := json.Unmarshal(out.Bytes(), &r); err != nil || len(r.Rows) != 1 {
			t.Fatalf("output is not a one-row report (%v):\n%s", err, out.String())
		}
		return r
	}
	req, perfect := report("request").Rows[0], report("runtime").Rows[0]
	if req.FCFSEasy.AvgBSLD == perfect.FCFSEasy.AvgBSLD && req.FCFSEasy.MaxWait == perfect.FCFSEasy.MaxWait {
		t.Fatalf("fcfs-easy gives the same result with requested and perfect walltimes: %+v", req.FCFSEasy)
	}
}

func TestGenerate(t *testing.T) {
	p := filepath.Join(t.TempDir(), "gen.swf")
	var out, progress bytes.Buffer
	if err := run([]string{"--generate", p, "--nodes", "32", "--jobs", "50", "--load", "0.8", "--seed", "2"}, &out, &progress); err != nil {
		t.Fatal(err)
	}
	f, err := os.Open(p)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	jobs, dropped, err := sim.ReadSWF(f)
	if err != nil || dropped != 0 || len(jobs) != 50 || jobs[0].ReqTime < jobs[0].Run {
		t.Fatalf("generated trace: %d jobs, %d dropped, %v", len(jobs), dropped, err)
	}
	if err := run([]string{"--generate", p, "--nodes", "0"}, &out, &progress); err == nil {
		t.Fatal("--generate without nodes: no error")
	}
}
