package gen

import (
	"bytes"
	"math"
	"slices"
	"testing"

	"vhpc/bench/sim"
)

func TestGenerate(t *testing.T) {
	tests := []struct {
		name  string
		nodes int
		load  float64
	}{
		{"128 nodes at 0.6", 128, 0.6},
		{"1024 nodes at 0.9", 1024, 0.9},
		{"4096 nodes at 1.05", 4096, 1.05},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			p := Params{Nodes: tc.nodes, Jobs: 5000, Load: tc.load, Seed: 3}
			jobs, err := Generate(p)
			if err != nil {
				t.Fatal(err)
			}
			again, _ := Generate(p)
			if !slices.Equal(jobs, again) {
				t.Fatal("same params and seed gave different traces")
			}
			var area float64
			serial, killed, over := 0, 0, 0
			for i, j := range jobs {
				if j.Procs < 1 || j.Procs > int64(tc.nodes) || j.Run < 1 || j.ReqTime < j.Run {
					t.Fatalf("job %d: %+v", i, j)
				}
				if i > 0 && j.Submit < jobs[i-1].Submit {
					t.Fatalf("job %d submitted before job %d", i, i-1)
				}
				if _, ok := slices.BinarySearch(roundValues, j.ReqTime); !ok {
					t.Fatalf("job %d: request %d is not a round value", i, j.ReqTime)
				}
				area += float64(j.Procs * j.Run)
				if j.Procs == 1 {
					serial++
				}
				if j.Run == j.ReqTime {
					killed++
				}
				if j.ReqTime >= 2*j.Run {
					over++
				}
			}
			span := float64(jobs[len(jobs)-1].Submit - jobs[0].Submit)
			load := area / (float64(tc.nodes) * span)
			if math.Abs(load-tc.load)/tc.load > 0.15 {
				t.Errorf("offered load %.3f, want about %.2f", load, tc.load)
			}
			n := float64(len(jobs))
			if f := float64(serial) / n; f < 0.2 || f > 0.45 {
				t.Errorf("serial share %.2f, want about 0.3", f)
			}
			if f := float64(killed) / n; f < 0.03 || f > 0.2 {
				t.Errorf("killed share %.2f, want a few percent", f)
			}
			if f := float64(over) / n; f < 0.5 {
				t.Errorf("requests at least twice the run time: %.2f, want most", f)
			}
		})
	}
}

func TestGenerateRejects(t *testing.T) {
	for _, p := range []Params{{Nodes: 0, Jobs: 1, Load: 1}, {Nodes: 1, Jobs: 0, Load: 1}, {Nodes: 1, Jobs: 1, Load: 0}} {
		if _, err := Generate(p); err == nil {
			t.Errorf("%+v: no error", p)
		}
	}
}

func TestSWFRoundTrip(t *testing.T) {
	jobs, err := Generate(Params{Nodes: 64, Jobs: 200, Load: 0.8, Seed: 1})
	if err != nil {
		t.Fatal(err)
	}
	var b bytes.Buffer
	if err := sim.WriteSWF(&b, jobs, 64, "test"); err != nil {
		t.Fatal(err)
	}
	back, dropped, err := sim.ReadSWF(&b)
	if err != nil || dropped != 0 || !slices.Equal(back, jobs) {
		t.Fatalf("round trip: %d jobs, %d dropped, %v", len(back), dropped, err)
	}
}
