package main

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"vhpc/api"
	"vhpc/scheduler/server"
	"vhpc/scheduler/server/servertest"
)

// startMaster runs a real one-member hpcd in the test process.
func startMaster(t *testing.T) *server.Server { return servertest.Start(t, nil) }

func hpcsub(t *testing.T, args ...string) (int, string, string) {
	t.Helper()
	var out, errOut bytes.Buffer
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	code := run(ctx, args, &out, &errOut)
	return code, out.String(), errOut.String()
}

func TestSubmitQueueShowCancel(t *testing.T) {
	s := startMaster(t)
	addr := "--addr=127.0.0.1:1," + s.GRPCAddr() // the first address is dead: failover
	code, out, errOut := hpcsub(t, addr, "../../examples/hello.yaml")
	if code != 0 || out != "Submitted job 1\n" {
		t.Fatalf("submit: code %d out %q err %q", code, out, errOut)
	}
	code, out, _ = hpcsub(t, addr, "--parsable", "../../examples/hello.yaml")
	if code != 0 || out != "2\n" {
		t.Fatalf("--parsable: code %d out %q", code, out)
	}
	code, out, _ = hpcsub(t, addr, "queue")
	if code != 0 || !strings.Contains(out, "ID") || !strings.Contains(out, "REASON") || strings.Count(out, "hello") != 2 {
		t.Fatalf("queue: code %d\n%s", code, out)
	}
	code, out, _ = hpcsub(t, addr, "show", "1")
	if code != 0 || !strings.Contains(out, "State:") || !strings.Contains(out, "Reason:") {
		t.Fatalf("show: code %d\n%s", code, out)
	}
	code, out, _ = hpcsub(t, addr, "show", "1", "--json")
	var shown struct{ Name, State string }
	if err := json.Unmarshal([]byte(out), &shown); code != 0 || err != nil || shown.Name != "hello" || shown.State != "pending" {
		t.Fatalf("show --json: code %d, %v\n%s", code, err, out)
	}
	code, out, _ = hpcsub(t, addr, "cancel", "1")
	if code != 0 || out != "job 1: cancelled\n" {
		t.Fatalf("cancel: code %d out %q", code, out)
	}
	if code, _, errOut = hpcsub(t, addr, "show", "99"); code != 1 || !strings.Contains(errOut, "does not exist") {
		t.Fatalf("show of a missing job: code %d err %q", code, errOut)
	}
}

func TestExitCodesForBadInput(t *testing.T) {
	s := startMaster(t)
	addr := "--addr=" + s.GRPCAddr()
	bad, _ := filepath.Glob("../../examples/bad/*.yaml")
	if len(bad) == 0 {
		t.Fatal("no bad examples")
	}
	cases := [][]string{
		{"no-such-file.yaml"},
		{"show", "abc"},
		{"cancel"},
		{"--no-such-flag", "x.yaml"},
		{"queue", "extra"},
		{},
	}
	for _, f := range bad {
		cases = append(cases, []string{f})
	}
	for _, c := range cases {
		t.Run(strings.Join(c, " "), func(t *testing.T) {
			code, out, errOut := hpcsub(t, append([]string{addr}, c...)...)
			if code != 2 {
				t.Errorf("exit %d, want 2; out %q err %q", code, out, errOut)
			}
			if strings.TrimSpace(errOut) == "" {
				t.Error("no message on stderr")
			}
		})
	}
	if code, out, _ := hpcsub(t, addr, "queue", "--all"); code != 0 || strings.Count(out, "\n") != 1 {
		t.Fatalf("bad input enqueued something: %q", out)
	}
}

func TestDryRunPrintsCanonicalSpecAndEstimate(t *testing.T) {
	s := startMaster(t)
	code, out, errOut := hpcsub(t, "--addr="+s.GRPCAddr(), "--dry-run", "../../examples/hello.yaml")
	if code != 0 || !strings.Contains(out, "scratch: 1GiB") || !strings.Contains(out, "# estimate:") {
		t.Fatalf("dry run: code %d\n%s\n%s", code, out, errOut)
	}
	// Without a master the spec is still validated and printed.
	code, out, _ = hpcsub(t, "--addr=127.0.0.1:1", "--dry-run", "../../examples/hello.yaml")
	if code != 0 || !strings.Contains(out, "name: hello") || !strings.Contains(out, "unknown (no master answered") {
		t.Fatalf("dry run without master: code %d\n%s", code, out)
	}
	code, out, _ = hpcsub(t, "--addr="+s.GRPCAddr(), "queue", "--all", "--json")
	if code != 0 || strings.Contains(out, "hello") {
		t.Fatalf("dry run enqueued a job: %s", out)
	}
}

func TestSchemaCommand(t *testing.T) {
	code, out, _ := hpcsub(t, "schema")
	if code != 0 || !strings.Contains(out, `"$schema"`) || !strings.Contains(out, "tasksPerNode") {
		t.Fatalf("schema: code %d\n%.200s", code, out)
	}
}

func TestMain(m *testing.M) {
	os.Unsetenv("HPC_ADDR")
	os.Exit(m.Run())
}

// TestSaysWhyNothingWorks: with no master at any address hpcsub fails at
// once with advice instead of gRPC text; with a master but no node,
// `hpcsub nodes` says that no node has registered.
func TestSaysWhyNothingWorks(t *testing.T) {
	code, out, errOut := hpcsub(t, "--addr=127.0.0.1:1", "queue")
	if code != 1 || out != "" || !strings.Contains(errOut, "no master at 127.0.0.1:1: is hpcd running? start one with `hpcd dev`, or set --addr/HPC_ADDR") || strings.Contains(errOut, "rpc error") {
		t.Errorf("queue without a master: code %d out %q err %q", code, out, errOut)
	}
	s := startMaster(t)
	code, out, errOut = hpcsub(t, "--addr="+s.GRPCAddr(), "nodes")
	if code != 0 || !strings.Contains(out, "NODE") || !strings.Contains(out, "no node has registered with the master") {
		t.Errorf("nodes without a node: code %d out %q err %q", code, out, errOut)
	}
}

// TestShowSaysWhichDigestAndWhetherTheTagMoved: show prints the tag and
// the digest the job was queued with, says when the tag has moved or was
// removed since, and names the node that had to pull the image.
func TestShowSaysWhichDigestAndWhetherTheTagMoved(t *testing.T) {
	queued, other := "sha256:"+strings.Repeat("a", 64), "sha256:"+strings.Repeat("b", 64)
	job := &api.Job{Id: 3, Name: "py", Image: "public/python:1", ImageRef: "public/python:1", ImageDigest: queued,
		Allocations: []*api.Allocation{{Id: "3.0.0.1", Node: "n1", ImagePulled: true}, {Id: "3.0.1.1", Node: "n2"}}}
	cases := []struct {
		name, now string
		want, not []string
	}{
		{"tag unchanged", queued, []string{"public/python:1 @ " + queued, "Image of 3.0.0.1: n1 pulled it"}, []string{"moved", "removed", "3.0.1.1: n2 pulled"}},
		{"tag moved", other, []string{"the tag has moved to " + other + " since; this job runs the digest it was queued with"}, nil},
		{"tag removed", "", []string{"the tag has been removed from the catalog since"}, nil},
		{"catalog not reachable", "?", []string{"public/python:1 @ " + queued}, []string{"moved", "removed"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			var b strings.Builder
			printJob(&b, job, c.now)
			for _, w := range c.want {
				if !strings.Contains(b.String(), w) {
					t.Errorf("show lacks %q:\n%s", w, b.String())
				}
			}
			for _, w := range c.not {
				if strings.Contains(b.String(), w) {
					t.Errorf("show says %q:\n%s", w, b.String())
				}
			}
		})
	}
}

// TestShowListsTheGuestsOfANetworkedJob: a two-node job's show lists each
// guest of the latest attempt with its hostname and job address.
func TestShowListsTheGuestsOfANetworkedJob(t *testing.T) {
	job := &api.Job{Id: 4, Name: "ring", Resources: &api.Resources{Nodes: 2}, SpecJson: `{"mpi":"openmpi"}`,
		Allocations: []*api.Allocation{
			{Id: "4.0.0.1", Node: "m1", Rank: 0, Attempt: 1, State: "failed"},
			{Id: "4.0.0.2", Node: "m2", Rank: 0, Attempt: 2, State: "running", BootSeconds: 11.5},
			{Id: "4.0.1.2", Node: "m1", Rank: 1, Attempt: 2, State: "running"},
		}}
	var b strings.Builder
	printJob(&b, job, "?")
	for _, want := range []string{"Guests (attempt 2, job network 10.77.0.0/16):", "0     node0     10.77.0.1  m2    running  11.5 s", "1     node1     10.77.0.2  m1    running  -"} {
		if !strings.Contains(b.String(), want) {
			t.Errorf("show lacks %q:\n%s", want, b.String())
		}
	}
	var one strings.Builder
	printJob(&one, &api.Job{Id: 5, Resources: &api.Resources{Nodes: 1}, SpecJson: `{"mpi":"none"}`, Allocations: job.Allocations[:1]}, "?")
	if strings.Contains(one.String(), "Guests") {
		t.Errorf("a one-node job without MPI lists guests:\n%s", one.String())
	}
}
