package main

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"vhpc/cuda"
	"vhpc/hpcbench"
	"vhpc/jobspec"
)

// TestExampleJobParses checks examples/hpcbench.yaml is a valid job that
// asks for one GPU and runs hpcbench --json.
func TestExampleJobParses(t *testing.T) {
	data, err := os.ReadFile("../../examples/hpcbench.yaml")
	if err != nil {
		t.Fatal(err)
	}
	spec, err := jobspec.Load("hpcbench.yaml", data)
	if err != nil {
		t.Fatalf("Load:\n%v", err)
	}
	if spec.Resources.GPUs != 1 || !strings.Contains(spec.Script, "hpcbench --json") {
		t.Fatalf("spec: gpus %d, script %q", spec.Resources.GPUs, spec.Script)
	}
}

// TestCommands runs the CLI the way users do, on CPU and small sizes.
func TestCommands(t *testing.T) {
	dir := t.TempDir()
	report := filepath.Join(dir, "r.json")
	svg := filepath.Join(dir, "roofline.svg")
	cases := []struct {
		name  string
		args  []string
		check func(t *testing.T, out string, err error)
	}{
		{"list", []string{"--list"}, func(t *testing.T, out string, err error) {
			if err != nil || !strings.Contains(out, "tcgemm") || !strings.Contains(out, "measures") {
				t.Fatalf("%v\n%s", err, out)
			}
		}},
		{"cpu table", []string{"--cpu", "--size", "small", "--min-time", "1ms", "--workloads", "sgemm,stream-copy"}, func(t *testing.T, out string, err error) {
			if err != nil || !strings.Contains(out, "sgemm") || !strings.Contains(out, "gonum") {
				t.Fatalf("%v\n%s", err, out)
			}
		}},
		{"cpu json", []string{"--cpu", "--json", "--size", "small", "--min-time", "1ms"}, func(t *testing.T, out string, err error) {
			if err != nil {
				t.Fatal(err)
			}
			rep, err := hpcbench.ReadJSON(strings.NewReader(out))
			if err != nil || len(rep.Workloads) != len(hpcbench.Catalog()) {
				t.Fatalf("%v\n%s", err, out)
			}
			for _, r := range rep.Workloads {
				if !r.Validated {
					t.Errorf("%s not validated", r.Name)
				}
			}
			if err := os.WriteFile(report, []byte(out), 0o644); err != nil {
				t.Fatal(err)
			}
		}},
		{"plot", []string{"--plot", svg, report}, func(t *testing.T, out string, err error) {
			b, rerr := os.ReadFile(svg)
			if err != nil || rerr != nil || !strings.Contains(string(b), "stream-triad") {
				t.Fatalf("%v %v", err, rerr)
			}
		}},
		{"bad size", []string{"--cpu", "--size", "100"}, func(t *testing.T, out string, err error) {
			if err == nil {
				t.Fatal("want an error")
			}
		}},
		{"gpu without driver", []string{"--size", "small"}, func(t *testing.T, out string, err error) {
			if err == nil {
				t.Skip("this host has a GPU")
			}
			if !errors.Is(err, cuda.ErrNoDriver) && !errors.Is(err, cuda.ErrNoNVRTC) {
				t.Fatalf("%v", err)
			}
		}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			var out, errOut bytes.Buffer
			err := run(context.Background(), tc.args, &out, &errOut)
			tc.check(t, out.String(), err)
		})
	}
}
