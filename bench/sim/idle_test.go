package sim

import (
	"math"
	"strings"
	"testing"

	"vhpc/scheduler/core"
)

// drainTrace: job 1 holds one of two cores for 100 s; job 2 (both
// cores, 50 s) arrives at 10 and drains the machine until 100; job 3
// (both cores, ShortRun s) arrives at 20 and waits behind job 2, then
// is reserved from 150. Job 3 is the one short job pending in job 2's
// drain from 20 to 100, and in its own drain from 100 to 150 it does not
// count.
const drainTrace = `; MaxNodes: 2
1 0 -1 100 1 -1 -1 -1 -1 -1 1 -1 -1 -1 0 -1 -1 -1
2 10 -1 50 2 -1 -1 -1 -1 -1 1 -1 -1 -1 0 -1 -1 -1
3 20 -1 600 2 -1 -1 -1 -1 -1 1 -1 -1 -1 0 -1 -1 -1
`

func TestIdleProfile(t *testing.T) {
	jobs, _, err := ReadSWF(strings.NewReader(drainTrace))
	if err != nil || len(jobs) != 3 {
		t.Fatalf("ReadSWF: %d jobs, %v", len(jobs), err)
	}
	tests := []struct {
		name   string
		policy string
	}{
		{"fcfs-easy", core.PolicyFCFSEasy},
		{"default", core.PolicyDefault},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			cfg := BaselineConfig(tc.policy)
			r := Run(jobs, Options{Nodes: 2, CPUsPerNode: 1, Estimates: EstRuntime, Config: cfg, IdleProfile: true})
			p := r.Idle
			if p == nil {
				t.Fatal("no idle profile")
			}
			// One core idle from 0 to 10 with nothing pending, and
			// from 10 to 100 reserved for job 2; none after.
			want := IdleProfile{FullMachine: 90, NothingPending: 10, FullDrains: 2,
				FullDrainSeconds: 90 + 50, FullDrainIdle: 90, ShortPending: 80.0 / 140}
			got := *p
			got.shortSeconds = 0
			if math.Abs(got.ShortPending-want.ShortPending) > 1e-9 {
				t.Fatalf("short pending %v, want %v", got.ShortPending, want.ShortPending)
			}
			got.ShortPending = want.ShortPending
			if got != want {
				t.Fatalf("profile %+v, want %+v", got, want)
			}
			// The idle core-seconds are what utilization misses.
			if idle := 2*r.Makespan - r.Utilization*2*r.Makespan; math.Abs(idle-p.Total()) > 1e-6 {
				t.Fatalf("idle %v, profile total %v", idle, p.Total())
			}
		})
	}
}

func TestIdleProfileOff(t *testing.T) {
	jobs, _, _ := ReadSWF(strings.NewReader(drainTrace))
	if r := Run(jobs, Options{Nodes: 2, CPUsPerNode: 1, Estimates: EstRuntime, Config: core.DefaultConfig()}); r.Idle != nil {
		t.Fatalf("idle profile without IdleProfile: %+v", r.Idle)
	}
}
