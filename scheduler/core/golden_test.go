package core

import (
	"bufio"
	"crypto/sha256"
	"encoding/json"
	"flag"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"vhpc/scheduler/model"
)

// updateGolden rewrites testdata/plans.golden from the current code. Only
// run it on a commit whose plans are the reference (the optimisations of
// issue 17 must leave every plan unchanged).
var updateGolden = flag.Bool("update-golden", false, "rewrite testdata/plans.golden")

// goldenCases is how many generated inputs TestGoldenPlans schedules.
const goldenCases = 600

// TestGoldenPlans schedules goldenCases generated inputs (small and
// medium clusters of mixed hardware, every policy, predictions, quotas,
// partitions, arrays, dependencies, preemption, image locality) and
// compares a hash of each plan (starts, placements, reservations,
// preemptions, reasons) with the hash recorded before the performance
// work of issue 17: an optimisation may make Schedule faster, never give
// another plan.
func TestGoldenPlans(t *testing.T) {
	path := filepath.Join("testdata", "plans.golden")
	var got []string
	for i := range goldenCases {
		in, cfg := goldenInput(uint64(i))
		got = append(got, fmt.Sprintf("%d %s", i, planHash(t, Schedule(in, cfg))))
	}
	if *updateGolden {
		if err := os.MkdirAll("testdata", 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, []byte(strings.Join(got, "\n")+"\n"), 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want := readGolden(t)
	if len(want) != len(got) {
		t.Fatalf("golden file has %d plans, generated %d", len(want), len(got))
	}
	bad := 0
	for i := range got {
		if got[i] != want[i] {
			bad++
			if bad <= 5 {
				in, cfg := goldenInput(uint64(i))
				t.Errorf("case %d: plan differs from the recorded one (%d nodes, %d jobs, %d allocs, policy %s)",
					i, len(in.Nodes), len(in.Jobs), len(in.Allocs), cfg.Policy)
			}
		}
	}
	if bad > 0 {
		t.Fatalf("%d of %d plans differ", bad, len(got))
	}
}

// readGolden reads testdata/plans.golden: one "case hash" line per input.
func readGolden(t *testing.T) []string {
	f, err := os.Open(filepath.Join("testdata", "plans.golden"))
	if err != nil {
		t.Fatalf("%v (record it with -update-golden on the reference commit)", err)
	}
	defer f.Close()
	var want []string
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		want = append(want, sc.Text())
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	return want
}

func planHash(t *testing.T, p model.Plan) string {
	b, err := json.Marshal(p)
	if err != nil {
		t.Fatal(err)
	}
	return fmt.Sprintf("%x", sha256.Sum256(b))
}

// goldenInput draws input number seed: the same seed always gives the
// same input (math/rand/v2's PCG, no map iteration).
func goldenInput(seed uint64) (Input, Config) {
	r := rand.New(rand.NewPCG(seed, 17))
	pick := func(n int) int { return r.IntN(n) }
	size := []int{3, 8, 20, 60, 200}[pick(5)]
	if seed%50 == 49 {
		size = 600
	}
	specs := []hwSpec{
		{numa: 2, phys: 8, smt: 2, gpus: 2, model: "H100", memMiB: 65536},
		{numa: 1, phys: 4, smt: 1, gpus: 0, memMiB: 16384},
		{numa: 2, phys: 32, smt: 2, gpus: 4, model: "H100", memMiB: 512 * 1024},
		{numa: 2, phys: 4, smt: 1, gpus: 1, model: "A100", memMiB: 32768},
		{numa: 1, phys: 1, smt: 1, gpus: 0, memMiB: 1 << 20},
	}
	mix := 1 + pick(3)
	parts := []string{""}
	if pick(4) == 0 {
		parts = []string{"a", "b"}
	}
	var nodes []*model.Node
	for i := range size {
		n := mkNode(fmt.Sprintf("n%04d", (i*7919)%size), specs[(i*mix/size+int(seed))%len(specs)])
		n.Partition = parts[i%len(parts)]
		switch pick(40) {
		case 0:
			n.State = model.NodeDown
		case 1:
			n.ReservedCores = []int{0}
		case 2:
			if len(n.GPUs) > 0 {
				n.GPUs[0].Drained = "test"
			}
		case 3:
			if len(n.GPUs) > 1 {
				n.GPUs[1].IOMMUGroup = n.GPUs[0].IOMMUGroup
				n.GPUs[0].IOMMUShared, n.GPUs[1].IOMMUShared = true, true
			}
		}
		nodes = append(nodes, n)
	}
	cfg := DefaultConfig()
	cfg.Policy = []string{PolicyFCFS, PolicyFCFSEasy, PolicySJFEasy, PolicyDefault, PolicyDefault, PolicyDefault}[pick(6)]
	cfg.Estimate = []string{EstimateRequest, EstimatePredicted}[pick(2)]
	cfg.ReservationDepth = pick(4)
	cfg.Backfill = []string{BackfillShortest, BackfillPacking, BackfillPriority}[pick(3)]
	cfg.SlowdownGuard = []float64{0, 0, 4, 300}[pick(4)]
	cfg.SlowdownReservations = pick(3)
	cfg.StarvationAge = []time.Duration{0, time.Hour, 72 * time.Hour}[pick(3)]
	cfg.Preemption = []string{PreemptOff, PreemptOff, PreemptRequeue}[pick(3)]
	if pick(5) == 0 {
		cfg.Quotas = map[string]Limits{"render": {GPUs: 8, Cores: 64, RunningJobs: 5}}
	}
	if parts[0] == "a" {
		cfg.Partitions = map[string]Partition{"a": {MaxWalltime: 10 * time.Hour, MaxNodes: 3}, "b": {Limits: Limits{RunningJobs: 20}}}
		cfg.DefaultPartition = "a"
	}
	gen := func(id model.JobID, submit time.Time) *model.Job {
		g := []int{0, 0, 1, 1, 2, 4, 8}[pick(7)]
		req := model.Request{Nodes: []int{1, 1, 1, 2, 3, 8}[pick(6)], TasksPerNode: 1 + pick(8), CPUsPerTask: 1 + pick(2),
			GPUs: g, GPUModel: []string{"", "", "H100", "A100"}[pick(4)], MemoryMiB: int64(pick(40000)),
			CrossNUMA: pick(3) == 0, ScratchMiB: int64(pick(3) * 1000)}
		if pick(4) == 0 {
			req.HugepagesMiB = req.MemoryMiB / 2
		}
		j := mkJob(id, req, time.Duration(1+pick(48))*30*time.Minute)
		j.SubmitTime = submit
		j.User = fmt.Sprintf("u%d", pick(6))
		j.Department = []string{"physics", "render", "bio"}[pick(3)]
		j.QOS = []string{"", "", "low", "high"}[pick(4)]
		if len(parts) > 1 && pick(2) == 0 {
			j.Partition = parts[pick(2)]
		}
		if pick(8) == 0 {
			j.Array = &model.Array{First: 0, Last: int64(pick(30)), Step: 1, Chunk: 1, Parallel: pick(4)}
		}
		if id > 3 && pick(10) == 0 {
			kind := []model.DependencyKind{model.AfterOK, model.AfterAny, model.AfterNotOK}[pick(3)]
			j.DependsOn = []model.Dependency{{Kind: kind, Jobs: []model.JobID{id - 1 - model.JobID(pick(3))}}}
		}
		if pick(3) == 0 {
			j.ImageDigest = fmt.Sprintf("sha256:%d", pick(2))
		}
		return j
	}
	past := t0.Add(-2 * time.Hour)
	in := Input{Now: past, Nodes: nodes}
	id := model.JobID(1)
	for range pick(size * 3) {
		in.Jobs = append(in.Jobs, gen(id, past.Add(-time.Duration(pick(100))*time.Hour)))
		id++
	}
	warm := Schedule(in, cfg)
	byID := map[model.JobID]*model.Job{}
	for _, j := range in.Jobs {
		byID[j.ID] = j
	}
	for _, s := range warm.Starts {
		j := byID[s.Job]
		as := allocsFor(s, j, past.Add(-time.Duration(pick(120))*time.Minute))
		if pick(15) == 0 {
			for _, a := range as {
				a.StopRequested = true
			}
		}
		in.Allocs = append(in.Allocs, as...)
		if j.Array != nil {
			j.NextTask = s.Task + 1
		} else {
			j.State = model.JobRunning
		}
	}
	in.Now = t0
	for range pick(size*5 + 10) {
		in.Jobs = append(in.Jobs, gen(id, t0.Add(-time.Duration(pick(200))*time.Hour)))
		id++
	}
	in.Usage = map[string]float64{"physics": float64(pick(1e6)), "bio": float64(pick(1e5))}
	in.History = map[string][]model.Run{}
	for u := range 4 {
		for range pick(4) {
			// Runs of a pending job's kind (predicted from them), of no
			// kind (an old snapshot's) or of a kind of their own (what
			// a new kind's accuracy is taken from).
			r := model.Run{Runtime: time.Duration(1+pick(600)) * time.Minute}
			switch pick(3) {
			case 0:
				if len(in.Jobs) > 0 {
					r.Kind = in.Jobs[pick(len(in.Jobs))].Kind()
				}
			case 1:
				r.Kind = model.JobKind{Walltime: time.Duration(1+pick(48)) * 30 * time.Minute, Nodes: 1}
			}
			in.History[fmt.Sprintf("u%d", u)] = append(in.History[fmt.Sprintf("u%d", u)], r)
		}
	}
	in.Ended = map[model.JobID]model.JobState{1: model.JobCompleted, 2: model.JobFailed}
	if pick(3) == 0 {
		in.ImageNodes = map[string][]string{"sha256:0": {nodes[0].Name, nodes[len(nodes)/2].Name}, "sha256:1": {nodes[len(nodes)-1].Name}}
	}
	return in, cfg
}
