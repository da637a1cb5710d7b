package accept

import (
	"strings"
	"testing"
)

func res(subject, model, workload string, v float64) Result {
	return Result{Subject: subject, Model: model, Workload: workload, Unit: "GFLOP/s", Value: v}
}

// TestJudge is the acceptance decision as a table: the results of a run
// and of its model's other devices -> pass or drain, with the reason.
func TestJudge(t *testing.T) {
	peers := []Result{res("node01/cpu", "Xeon", "dgemm", 100), res("node02/cpu", "Xeon", "dgemm", 102), res("node03/cpu", "EPYC", "dgemm", 300)}
	cases := []struct {
		name   string
		run    []Result
		peers  []Result
		ref    Reference
		margin float64
		want   []string // per subject in order: "" pass, else substrings of the reason joined by |
		note   string
	}{
		{"within margin of the median", []Result{res("cpu", "Xeon", "dgemm", 92)}, peers, nil, 10, []string{""}, ""},
		{"30% slow is drained", []Result{res("cpu", "Xeon", "dgemm", 70.7)}, peers, nil, 10,
			[]string{"acceptance: dgemm 70.7 GFLOP/s is 30.0% below the median 101.0 GFLOP/s of 2 other Xeon (margin 10%)"}, ""},
		{"wider margin accepts it", []Result{res("cpu", "Xeon", "dgemm", 70.7)}, peers, nil, 35, []string{""}, ""},
		{"other models are not peers", []Result{res("cpu", "EPYC", "dgemm", 250)}, peers, nil, 10, []string{"below the median 300.0 GFLOP/s of 1 other EPYC"}, ""},
		{"alone: reference", []Result{res("cpu", "Power9", "dgemm", 50)}, peers, Reference{"Power9": {"dgemm": 80}}, 10,
			[]string{"dgemm 50.0 GFLOP/s is 37.5% below the reference 80.0 GFLOP/s of Power9 (margin 10%)"}, ""},
		{"alone, no reference: accepted", []Result{res("cpu", "Power9", "dgemm", 50)}, peers, nil, 10, []string{""}, "no other Power9 and no reference: accepted"},
		{"a failed workload fails", []Result{{Subject: "cpu", Model: "Xeon", Workload: "sgemm", Error: "not validated: max error 1e-2"}, res("cpu", "Xeon", "dgemm", 101)}, peers, nil, 10,
			[]string{"acceptance: sgemm failed: not validated"}, ""},
		{"worst workload named, others counted", []Result{res("cpu", "Xeon", "dgemm", 80), {Subject: "cpu", Model: "Xeon", Workload: "stream-triad", Unit: "GB/s", Value: 10}}, []Result{res("n1/cpu", "Xeon", "dgemm", 100), {Subject: "n1/cpu", Model: "Xeon", Workload: "stream-triad", Unit: "GB/s", Value: 100}}, nil, 10,
			[]string{"stream-triad 10.0 GB/s is 90.0% below|(and 1 more workloads)"}, ""},
		{"GPUs of one node are each other's peers", []Result{res("0000:3b:00.0", "H200", "sgemm", 50000), res("0000:5e:00.0", "H200", "sgemm", 50500), res("0000:86:00.0", "H200", "sgemm", 35000)}, nil, nil, 10,
			[]string{"", "", "sgemm 35000.0 GFLOP/s is 30.3% below the median 50250.0 GFLOP/s of 2 other H200"}, ""},
		{"a peer's error is not a value", []Result{res("cpu", "Xeon", "dgemm", 50)}, []Result{{Subject: "n1/cpu", Model: "Xeon", Workload: "dgemm", Error: "x"}}, nil, 10, []string{""}, "no other Xeon"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			got := Judge(tc.run, tc.peers, tc.ref, tc.margin)
			if len(got) != len(tc.want) {
				t.Fatalf("%d verdicts, want %d: %+v", len(got), len(tc.want), got)
			}
			for i, w := range tc.want {
				if w == "" {
					if !got[i].Passed() {
						t.Errorf("%s: %q, want a pass", got[i].Subject, got[i].Reason)
					}
					continue
				}
				for _, part := range strings.Split(w, "|") {
					if !strings.Contains(got[i].Reason, part) {
						t.Errorf("%s: reason %q, want it to contain %q", got[i].Subject, got[i].Reason, part)
					}
				}
			}
			if tc.note != "" && !strings.Contains(got[0].Note, tc.note) {
				t.Errorf("note %q, want %q", got[0].Note, tc.note)
			}
		})
	}
}

// TestValidateMargin checks the margin's bounds.
func TestValidateMargin(t *testing.T) {
	for _, tc := range []struct {
		pct float64
		ok  bool
	}{{10, true}, {0.5, true}, {99, true}, {0, false}, {-5, false}, {100, false}, {150, false}} {
		if err := ValidateMargin(tc.pct); (err == nil) != tc.ok {
			t.Errorf("ValidateMargin(%v) = %v", tc.pct, err)
		}
	}
}

// TestMedian checks odd and even counts and that the input is kept.
func TestMedian(t *testing.T) {
	xs := []float64{3, 1, 2, 10}
	if m := Median(xs); m != 2.5 || xs[0] != 3 {
		t.Fatalf("median %v, xs %v", m, xs)
	}
	if m := Median([]float64{5, 1, 9}); m != 5 {
		t.Fatalf("median %v", m)
	}
	if Median(nil) != 0 {
		t.Fatal("median of none")
	}
}
