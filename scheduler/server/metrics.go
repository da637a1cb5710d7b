package server

import (
	"github.com/prometheus/client_golang/prometheus"

	"vhpc/scheduler/model"
)

// metrics are hpcd's Prometheus series, registered on the injected registry.
type metrics struct {
	submit   prometheus.Histogram
	commit   prometheus.Histogram
	batch    prometheus.Histogram
	schedule prometheus.Histogram
}

func newMetrics(reg *prometheus.Registry, s *Server) *metrics {
	m := &metrics{
		submit: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "hpc_submit_latency_seconds", Help: "Time from receiving a Submit to its acknowledgement (after the quorum commit).",
			Buckets: prometheus.ExponentialBuckets(0.0005, 2, 16),
		}),
		commit: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "hpc_raft_commit_seconds", Help: "Time from proposing a Raft log entry to its application on this member.",
			Buckets: prometheus.ExponentialBuckets(0.0005, 2, 16),
		}),
		batch: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "hpc_submit_batch_jobs", Help: "Jobs per SubmitJobs log entry.",
			Buckets: prometheus.ExponentialBuckets(1, 2, 11),
		}),
		schedule: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "hpc_schedule_cycle_seconds", Help: "Wall time of one leader scheduling cycle inside the scheduler core.",
			Buckets: prometheus.ExponentialBuckets(0.0001, 2, 16),
		}),
	}
	reg.MustRegister(m.submit, m.commit, m.batch, m.schedule, &stateCollector{s: s})
	return m
}

// stateCollector reports gauges computed from the state at scrape time, so
// they can never drift from the store.
type stateCollector struct{ s *Server }

var (
	jobsDesc  = prometheus.NewDesc("hpc_jobs", "Jobs by state (non-terminal jobs, plus terminal jobs still stored).", []string{"state"}, nil)
	nodesDesc = prometheus.NewDesc("hpc_nodes", "Registered nodes by state.", []string{"state"}, nil)
	leadDesc  = prometheus.NewDesc("hpc_raft_leader", "1 when this member is the Raft leader.", nil, nil)
	indexDesc = prometheus.NewDesc("hpc_raft_applied_index", "Last Raft log index applied to the state.", nil, nil)
)

// Describe implements prometheus.Collector.
func (c *stateCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- jobsDesc
	ch <- nodesDesc
	ch <- leadDesc
	ch <- indexDesc
}

// Collect implements prometheus.Collector.
func (c *stateCollector) Collect(ch chan<- prometheus.Metric) {
	snap := c.s.fsm.Store().Snapshot()
	counts := map[model.JobState]int{}
	for _, st := range []model.JobState{model.JobPending, model.JobScheduled, model.JobRunning, model.JobCompleted, model.JobFailed, model.JobCancelled, model.JobTimedOut} {
		counts[st] = 0
	}
	for j := range snap.Jobs() {
		counts[j.State]++
	}
	for st, n := range counts {
		ch <- prometheus.MustNewConstMetric(jobsDesc, prometheus.GaugeValue, float64(n), string(st))
	}
	nodes := map[model.NodeState]int{model.NodeReady: 0, model.NodeDraining: 0, model.NodeDown: 0}
	for n := range snap.Nodes() {
		nodes[n.State]++
	}
	for st, n := range nodes {
		ch <- prometheus.MustNewConstMetric(nodesDesc, prometheus.GaugeValue, float64(n), string(st))
	}
	lead := 0.0
	if c.s.raft != nil && c.s.isLeader() {
		lead = 1
	}
	ch <- prometheus.MustNewConstMetric(leadDesc, prometheus.GaugeValue, lead)
	ch <- prometheus.MustNewConstMetric(indexDesc, prometheus.GaugeValue, float64(snap.Index()))
}
