package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"vhpc/scheduler/core"
)

func TestSchedulerConfig(t *testing.T) {
	cases := []struct {
		name    string
		file    string
		flags   common
		wantErr string
		check   func(t *testing.T, c core.Config)
	}{
		{name: "defaults", check: func(t *testing.T, c core.Config) {
			if c.Policy != core.PolicyDefault || c.Estimate != core.EstimatePredicted {
				t.Errorf("policy %s estimates %s", c.Policy, c.Estimate)
			}
		}},
		{name: "file", file: "policy: fcfs-easy\nreservations: 2\nshares: {physics: 2}\nquotas:\n  physics: {gpus: 16}\npartitions:\n  gpu: {maxWalltime: 48h, maxNodes: 8, limits: {gpus: 64}}\n",
			check: func(t *testing.T, c core.Config) {
				if c.Policy != core.PolicyFCFSEasy || c.ReservationDepth != 2 || c.Shares["physics"] != 2 || c.Quotas["physics"].GPUs != 16 {
					t.Errorf("config %+v", c)
				}
				if p := c.Partitions["gpu"]; p.MaxWalltime != 48*time.Hour || p.MaxNodes != 8 || p.Limits.GPUs != 64 {
					t.Errorf("partition %+v", p)
				}
			}},
		{name: "flags override the file", file: "policy: fcfs\n", flags: common{policy: "default", shares: "chem=3"},
			check: func(t *testing.T, c core.Config) {
				if c.Policy != core.PolicyDefault || c.Shares["chem"] != 3 {
					t.Errorf("config %+v", c)
				}
			}},
		{name: "preemption from the file", file: "preemption: requeue\nstopGrace: 30s\n", check: func(t *testing.T, c core.Config) {
			if c.Preemption != core.PreemptRequeue || c.StopGrace != 30*time.Second {
				t.Errorf("preemption %q grace %s", c.Preemption, c.StopGrace)
			}
		}},
		{name: "preemption off unless asked", check: func(t *testing.T, c core.Config) {
			if c.Preemption != core.PreemptOff {
				t.Errorf("preemption %q", c.Preemption)
			}
		}},
		{name: "preemption flag", flags: common{preemption: "requeue"}, check: func(t *testing.T, c core.Config) {
			if c.Preemption != core.PreemptRequeue {
				t.Errorf("preemption %q", c.Preemption)
			}
		}},
		{name: "backfill order from the file", file: "backfill: priority\nsmallJobArea: 600\n", check: func(t *testing.T, c core.Config) {
			if c.Backfill != core.BackfillPriority || c.SmallJobArea != 600 {
				t.Errorf("backfill %q small %v", c.Backfill, c.SmallJobArea)
			}
		}},
		{name: "EASY++ by default: shortest backfill behind one reservation, no slowdown guard", check: func(t *testing.T, c core.Config) {
			if c.Backfill != core.BackfillShortest || c.SmallJobArea != 0 || c.ReservationDepth != 1 || c.SlowdownGuard != 0 {
				t.Errorf("backfill %q small %v reservations %d slowdown guard %v", c.Backfill, c.SmallJobArea, c.ReservationDepth, c.SlowdownGuard)
			}
		}},
		{name: "slowdown guard from the file", file: "slowdownGuard: 1000\n", check: func(t *testing.T, c core.Config) {
			if c.SlowdownGuard != 1000 {
				t.Errorf("slowdown guard %v", c.SlowdownGuard)
			}
		}},
		{name: "slowdown guard off", file: "slowdownGuard: 0\n", check: func(t *testing.T, c core.Config) {
			if c.SlowdownGuard != 0 {
				t.Errorf("slowdown guard %v", c.SlowdownGuard)
			}
		}},
		{name: "bad slowdown guard", file: "slowdownGuard: 0.5\n", wantErr: "slowdown guard 0.5: want 0 (off) or an expansion factor 1..1e9"},
		{name: "bad backfill", file: "backfill: random\n", wantErr: `backfill "random": want one of packing, priority, shortest`},
		{name: "the previous default from the file", file: "estimates: request\nreservations: 2\nbackfill: packing\nslowdownGuard: 600\nhistory: 3\n", check: func(t *testing.T, c core.Config) {
			if c.Estimate != core.EstimateRequest || c.ReservationDepth != 2 || c.Backfill != core.BackfillPacking || c.SlowdownGuard != 600 || c.HistoryLen != 3 {
				t.Errorf("config %+v", c)
			}
		}},
		{name: "predictions by kind by default", check: func(t *testing.T, c core.Config) {
			if c.PredictBy != core.PredictKind {
				t.Errorf("predict by %q", c.PredictBy)
			}
		}},
		{name: "predictions by user from the file", file: "predictBy: user\n", check: func(t *testing.T, c core.Config) {
			if c.PredictBy != core.PredictUser {
				t.Errorf("predict by %q", c.PredictBy)
			}
		}},
		{name: "bad predictor", file: "predictBy: oracle\n", wantErr: `predictor "oracle": want one of kind, user`},
		{name: "accuracy runs from the file", file: "accuracyRuns: 8\n", check: func(t *testing.T, c core.Config) {
			if c.AccuracyLen != 8 {
				t.Errorf("accuracy runs %d", c.AccuracyLen)
			}
		}},
		{name: "bad accuracy runs", file: "accuracyRuns: 65\n", wantErr: "accuracy length 65: want 0..64"},
		{name: "speculative backfill off from the file", file: "speculativeBackfill: false\n", check: func(t *testing.T, c core.Config) {
			if c.SpeculativeBackfill {
				t.Error("speculative backfill still on")
			}
		}},
		{name: "speculative backfill on by default, unused with requests", file: "estimates: request\n", check: func(t *testing.T, c core.Config) {
			if !c.SpeculativeBackfill || c.Estimate != core.EstimateRequest {
				t.Errorf("speculative %v, estimates %q", c.SpeculativeBackfill, c.Estimate)
			}
		}},
		{name: "speculative slack from the file", file: "speculativeSlack: 0\n", check: func(t *testing.T, c core.Config) {
			if c.SpeculativeSlack != 0 {
				t.Errorf("speculative slack %v", c.SpeculativeSlack)
			}
		}},
		{name: "bad speculative slack", file: "speculativeSlack: -0.5\n", wantErr: "speculative slack -0.5: want 0..100"},
		{name: "starvation threshold from the file", file: "starvationAge: 96h\nstarvationBacklog: 1.5\nstarvationFloor: 12h\n", check: func(t *testing.T, c core.Config) {
			if c.StarvationAge != 96*time.Hour || c.StarvationBacklog != 1.5 || c.StarvationFloor != 12*time.Hour {
				t.Errorf("starvation age %s, backlog %v, floor %s", c.StarvationAge, c.StarvationBacklog, c.StarvationFloor)
			}
		}},
		{name: "bad starvation floor", file: "starvationFloor: soon\n", wantErr: `starvationFloor: "soon" is not a duration`},
		{name: "bad starvation backlog", file: "starvationBacklog: -1\n", wantErr: "starvation backlog -1"},
		{name: "bad history", file: "history: -1\n", wantErr: "history length -1: want 0..1000"},
		{name: "bad reservations", file: "reservations: 5000\n", wantErr: "reservations 5000: want 0..1000"},
		{name: "bad small job area", file: "smallJobArea: -5\n", wantErr: "small job area -5"},
		{name: "drain packing from the file", file: "drainPacking: 0\ndrainSmallArea: 7200\n", check: func(t *testing.T, c core.Config) {
			if c.DrainPacking != 0 || c.DrainSmallArea != 7200 {
				t.Errorf("drain packing %v, small area %v", c.DrainPacking, c.DrainSmallArea)
			}
		}},
		{name: "drain packing on by default", file: "", check: func(t *testing.T, c core.Config) {
			if c.DrainPacking != 0.5 || c.DrainSmallArea != 36000 {
				t.Errorf("drain packing %v, small area %v", c.DrainPacking, c.DrainSmallArea)
			}
		}},
		{name: "bad drain packing", file: "drainPacking: 2\n", wantErr: "drain packing 2: want 0..1"},
		{name: "drain yield from the file", file: "drainYield: 30m\n", check: func(t *testing.T, c core.Config) {
			if c.DrainYield != 30*time.Minute {
				t.Errorf("drain yield %s", c.DrainYield)
			}
		}},
		{name: "drain yield, every starving job first and a speculative slack of 1 by default", file: "", check: func(t *testing.T, c core.Config) {
			if c.DrainYield != 10*time.Minute || c.StarvationSlots != 0 || c.SpeculativeSlack != 1 {
				t.Errorf("drain yield %s, starvation slots %d, speculative slack %v", c.DrainYield, c.StarvationSlots, c.SpeculativeSlack)
			}
		}},
		{name: "bad drain yield", file: "drainYield: 48h\n", wantErr: "drain yield 48h0m0s: want 0 (off) to 24h"},
		{name: "drain yield not a duration", file: "drainYield: short\n", wantErr: `drainYield: "short" is not a duration`},
		{name: "bad preemption", file: "preemption: suspend\n", wantErr: `preemption "suspend": want one of off, requeue`},
		{name: "bad stop grace", file: "stopGrace: 2h\n", wantErr: "stopGrace 2h0m0s: want 1s..1h"},
		{name: "empty file", file: "", check: func(t *testing.T, c core.Config) {}},
		{name: "misspelt field", file: "polcy: fcfs\n", wantErr: "polcy"},
		{name: "bad policy", file: "policy: lottery\n", wantErr: "lottery"},
		{name: "bad duration", file: "partitions:\n  gpu: {maxWalltime: forever}\n", wantErr: "maxWalltime"},
		{name: "negative quota", file: "quotas:\n  x: {cores: -1}\n", wantErr: "negative"},
		{name: "bad share flag", flags: common{shares: "x=0"}, wantErr: "x=0"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			f := c.flags
			if c.file != "" || c.name == "empty file" {
				f.schedFile = filepath.Join(t.TempDir(), "sched.yaml")
				if err := os.WriteFile(f.schedFile, []byte(c.file), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			cfg, err := f.schedulerConfig()
			if c.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), c.wantErr) {
					t.Fatalf("err %v, want one mentioning %q", err, c.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			c.check(t, cfg)
		})
	}
}
