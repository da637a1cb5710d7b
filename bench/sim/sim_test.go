package sim

import (
	"strings"
	"testing"

	"vhpc/scheduler/core"
)

const tiny = `; MaxNodes: 4
1 0 -1 100 4 -1 -1 -1 -1 -1 1 -1 -1 -1 0 -1 -1 -1
2 10 -1 50 2 -1 -1 -1 -1 -1 1 -1 -1 -1 0 -1 -1 -1
3 20 -1 10 2 -1 -1 -1 -1 -1 1 -1 -1 -1 0 -1 -1 -1
4 30 -1 5 0 -1 -1 -1 -1 -1 1 -1 -1 -1 0 -1 -1 -1
`

func TestReplayTinyTrace(t *testing.T) {
	jobs, dropped, err := ReadSWF(strings.NewReader(tiny))
	if err != nil || len(jobs) != 3 || dropped != 1 {
		t.Fatalf("ReadSWF: %d jobs, %d dropped, %v", len(jobs), dropped, err)
	}
	tests := []struct {
		name    string
		policy  string
		maxWait float64
	}{
		{"fcfs waits for the full-machine job", core.PolicyFCFS, 90},
		{"easy waits the same here (nothing to backfill)", core.PolicyFCFSEasy, 90},
		{"default", core.PolicyDefault, 90},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			cfg := core.DefaultConfig()
			cfg.Policy = tc.policy
			r := Run(jobs, Options{Nodes: 4, CPUsPerNode: 1, Estimates: EstRuntime, Config: cfg})
			if r.Jobs != 3 || r.MaxWait != tc.maxWait || r.AvgBSLD < 1 || r.Utilization <= 0 || r.Utilization > 1 {
				t.Fatalf("result %+v", r)
			}
		})
	}
}

func TestRequestMapping(t *testing.T) {
	tests := []struct {
		name                  string
		procs                 int64
		cpus, gpus            int
		nodes, perNode, gpusN int
	}{
		{"one cpu per node", 16, 1, 0, 16, 1, 0},
		{"packs onto 8-cpu nodes", 13, 8, 0, 2, 7, 0},
		{"gpus in proportion", 4, 8, 8, 1, 4, 4},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r := request(tc.procs, tc.cpus, tc.gpus)
			if r.Nodes != tc.nodes || r.TasksPerNode != tc.perNode || r.GPUs != tc.gpusN {
				t.Fatalf("request %+v", r)
			}
		})
	}
}

// TestExecutableNumberNamesTheJob: the SWF executable number (field 14) is
// read, written back, and names the replayed job, so a job's kind for
// runtime predictions includes its application; a trace without one
// leaves the name empty (its job numbers are unique and would make every
// job a kind of its own).
func TestExecutableNumberNamesTheJob(t *testing.T) {
	const trace = `1 0 -1 100 2 -1 -1 2 200 -1 1 3 1 7 0 -1 -1 -1
2 10 -1 50 2 -1 -1 2 200 -1 1 3 1 -1 0 -1 -1 -1
`
	jobs, _, err := ReadSWF(strings.NewReader(trace))
	if err != nil || len(jobs) != 2 || jobs[0].App != 7 || jobs[1].App != -1 {
		t.Fatalf("ReadSWF: %+v, %v", jobs, err)
	}
	var b strings.Builder
	if err := WriteSWF(&b, jobs, 4, "round trip"); err != nil {
		t.Fatal(err)
	}
	again, _, err := ReadSWF(strings.NewReader(b.String()))
	if err != nil || len(again) != 2 || again[0] != jobs[0] || again[1] != jobs[1] {
		t.Fatalf("round trip %+v, want %+v (%v)", again, jobs, err)
	}
	for i, want := range []string{"app7", ""} {
		if got := newSimJob(jobs[i], request(jobs[i].Procs, 1, 0), 200, i).job.Name; got != want {
			t.Errorf("job %d named %q, want %q", i+1, got, want)
		}
	}
}

// TestReplayWakesWhenAPredictionRunsOut: job 3's kind ran an hour twice,
// so it is predicted to end at 7,600 s, and the full-machine job 4 is
// reserved then; job 5 (5 hours) does not fit before it. Job 3 runs to
// its 10-hour limit. A live server re-plans every second: at 7,600 s job
// 3's expected end moves to its deadline (40,000 s), and job 5 fits before
// job 4's reservation. The replay has no event there (the next is job 3's
// end), so it must wake at the plan's Recheck to start job 5 then, not
// at 43,600 s behind job 4.
func TestReplayWakesWhenAPredictionRunsOut(t *testing.T) {
	const trace = `1 0 -1 3600 2 -1 -1 2 36000 -1 1 1 1 7 0 -1 -1 -1
2 10 -1 3600 2 -1 -1 2 36000 -1 1 1 1 7 0 -1 -1 -1
3 4000 -1 36000 2 -1 -1 2 36000 -1 1 1 1 7 0 -1 -1 -1
4 4100 -1 3600 4 -1 -1 4 3600 -1 1 2 2 8 0 -1 -1 -1
5 4200 -1 18000 2 -1 -1 2 18000 -1 1 3 3 9 0 -1 -1 -1
`
	jobs, _, err := ReadSWF(strings.NewReader(trace))
	if err != nil || len(jobs) != 5 {
		t.Fatalf("ReadSWF: %d jobs, %v", len(jobs), err)
	}
	r := Run(jobs, Options{Nodes: 4, CPUsPerNode: 1, Estimates: EstRequest, Config: core.DefaultConfig()})
	starts := map[int64]int64{}
	for _, s := range r.Starts {
		starts[s.ID] = s.At
	}
	want := map[int64]int64{3: 4000, 4: 40000, 5: 7600}
	for id, at := range want {
		if starts[id] != at {
			t.Errorf("job %d started at %d s, want %d s (starts %v)", id, starts[id], at, starts)
		}
	}
}
