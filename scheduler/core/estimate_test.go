package core

import (
	"testing"
	"time"

	"vhpc/scheduler/model"
)

// TestPredictByKind: the runtime a job is planned with under
// EstimatePredicted, from alice's history of two kinds of job (a 2-node
// 4-hour "sim" that runs 2 to 3 hours, a 1-node 1-hour "post" that runs
// about 5 minutes) and a run older than both of no kind at all (as read
// from a snapshot before kinds).
func TestPredictByKind(t *testing.T) {
	sim := mkJob(1, model.Request{Nodes: 2}, 4*time.Hour)
	sim.Name = "sim"
	post := mkJob(2, model.Request{}, time.Hour)
	post.Name = "post"
	run := func(j *model.Job, d time.Duration) model.Run { return model.Run{Kind: j.Kind(), Runtime: d} }
	history := []model.Run{{Runtime: 7 * time.Hour}, run(sim, 3*time.Hour), run(post, 4*time.Minute), run(sim, 2*time.Hour), run(post, 6*time.Minute), run(post, 5*time.Minute)}

	renamed := mkJob(3, model.Request{Nodes: 2}, 4*time.Hour)
	renamed.Name = "sim2"
	longer := mkJob(4, model.Request{}, 2*time.Hour)
	longer.Name = "post"
	other := mkJob(5, model.Request{Nodes: 2}, 4*time.Hour)
	other.Name, other.User = "sim", "bob"
	tests := []struct {
		name      string
		job       *model.Job
		predictBy string
		history   []model.Run
		keep, acc int
		want      time.Duration
	}{
		{"a resubmitted sim: the mean of its kind's last two runs", sim, PredictKind, history, 2, 4, 150 * time.Minute},
		{"a resubmitted post: its kind's last two, not the sims in between", post, PredictKind, history, 2, 4, 5*time.Minute + 30*time.Second},
		{"the predictor left empty is by kind", sim, "", history, 2, 4, 150 * time.Minute},
		{"all kept runs of the kind with a history length of 0", post, PredictKind, history, 0, 4, 5 * time.Minute},
		{"one run of the kind is enough", sim, PredictKind, history[:3], 2, 4, 3 * time.Hour},
		// Accuracies, newest first: 5/60, 6/60, 120/240, 4/60; mean 0.1875.
		{"another name is another kind: its walltime times the user's accuracy", renamed, PredictKind, history, 2, 4, 45 * time.Minute},
		{"another walltime is another kind", longer, PredictKind, history, 2, 4, 22*time.Minute + 30*time.Second},
		{"the accuracy of the last run only", renamed, PredictKind, history, 2, 1, 20 * time.Minute},
		{"runs of no kind (an old snapshot) say nothing of the accuracy: the walltime", renamed, PredictKind, history[:1], 2, 4, 4 * time.Hour},
		{"by user: the last two runs whatever their kind", sim, PredictUser, history, 2, 4, 5*time.Minute + 30*time.Second},
		{"a prediction is capped by the walltime", renamed, PredictUser, history[:1], 2, 4, 4 * time.Hour},
		{"no history: the walltime", other, PredictKind, history, 2, 4, 4 * time.Hour},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			cfg := DefaultConfig()
			cfg.PredictBy, cfg.HistoryLen, cfg.AccuracyLen = tc.predictBy, tc.keep, tc.acc
			in := Input{Now: t0, History: map[string][]model.Run{"alice": tc.history}}
			if got := newSched(&in, &cfg).estimate(tc.job); (got - tc.want).Abs() > time.Millisecond {
				t.Errorf("estimate %s, want %s", got, tc.want)
			}
			// hpcsim's Estimate, without a cycle, is the same.
			if got := Estimate(in.History, tc.job, cfg); (got - tc.want).Abs() > time.Millisecond {
				t.Errorf("Estimate %s, want %s", got, tc.want)
			}
		})
	}
}

// TestConsistentByKind: a prediction is trusted (StarvationGrace) when
// the newest two runs it is made from are within 2x of each other, so a
// user alternating two steady kinds of job is consistent for both, where
// the user's last two runs of any kind are not.
func TestConsistentByKind(t *testing.T) {
	long := mkJob(1, model.Request{}, 4*time.Hour)
	short := mkJob(2, model.Request{}, time.Hour)
	var h []model.Run
	for range 3 {
		h = append(h, model.Run{Kind: long.Kind(), Runtime: 3 * time.Hour}, model.Run{Kind: short.Kind(), Runtime: 5 * time.Minute})
	}
	for _, tc := range []struct {
		predictBy string
		want      bool
	}{{PredictKind, true}, {PredictUser, false}} {
		cfg := DefaultConfig()
		cfg.PredictBy = tc.predictBy
		in := Input{Now: t0, History: map[string][]model.Run{"alice": h}}
		s := newSched(&in, &cfg)
		for _, j := range []*model.Job{long, short} {
			if got := s.consistent(j); got != tc.want {
				t.Errorf("%s: job %d consistent %v, want %v", tc.predictBy, j.ID, got, tc.want)
			}
		}
	}
}
