package sim_test

import (
	"testing"

	"vhpc/bench/gen"
	"vhpc/bench/sim"
	"vhpc/scheduler/core"
)

// BenchmarkReplay10kJobs4096Nodes is issue 17's replay target: a generated
// trace of 10,000 jobs (bench/gen with hpcsim --generate's defaults: load
// 0.9, seed 1) replayed on 4,096 one-CPU nodes under the default policy,
// estimates from the requests (hpcsim's defaults). One iteration is one whole replay:
//
//	go test ./bench/sim -run '^$' -bench Replay10kJobs4096Nodes -benchtime 1x
func BenchmarkReplay10kJobs4096Nodes(b *testing.B) { benchReplay(b, 4096, 10000, false) }

// BenchmarkReplay10kJobs4096NodesRebuild is the same replay through
// core.Schedule at every event (sim.Options.Rebuild), the path before the
// replay kept a core.Planner: the side-by-side baseline.
func BenchmarkReplay10kJobs4096NodesRebuild(b *testing.B) { benchReplay(b, 4096, 10000, true) }

// BenchmarkReplay2kJobs4096Nodes is the same machine with the suite's
// 2,000-job traces: a quicker check of the same path.
func BenchmarkReplay2kJobs4096Nodes(b *testing.B) { benchReplay(b, 4096, 2000, false) }

// BenchmarkReplay2kJobs4096NodesRebuild is its rebuild-path baseline.
func BenchmarkReplay2kJobs4096NodesRebuild(b *testing.B) { benchReplay(b, 4096, 2000, true) }

func benchReplay(b *testing.B, nodes, jobs int, rebuild bool) {
	trace, err := gen.Generate(gen.Params{Nodes: nodes, Jobs: jobs, Load: 0.9, Seed: 1})
	if err != nil {
		b.Fatal(err)
	}
	var res sim.Result
	for b.Loop() {
		res = sim.Run(trace, sim.Options{Nodes: nodes, CPUsPerNode: 1, Estimates: sim.EstRequest, Config: core.DefaultConfig(), Rebuild: rebuild})
	}
	if res.Jobs != jobs {
		b.Fatalf("%d of %d jobs ran", res.Jobs, jobs)
	}
	b.ReportMetric(float64(res.Cycles), "cycles")
	b.ReportMetric(float64(res.CoreMean.Microseconds()), "µs/cycle")
}
