package main

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	"vhpc/api"
	"vhpc/hpcbench"
	"vhpc/scheduler/model"
	"vhpc/scheduler/server/servertest"
	"vhpc/wire"
)

// TestNodeAcceptCommand runs `hpcd operator node-accept` against a real
// master: bad flags and an unknown node are refused with what is wrong;
// a run is requested, and --wait prints the verdict once the node's agent
// (played by the test) reports: exit 0 for a pass, an error naming the
// reason for a drain.
func TestNodeAcceptCommand(t *testing.T) {
	m := servertest.Start(t, nil)
	conn, err := grpc.NewClient(m.GRPCAddr(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	nodes := api.NewNodeServiceClient(conn)
	for _, name := range []string{"node05", "node06", "node07"} {
		n := &model.Node{Name: name, Hypervisor: "tcg", ScratchMiB: 1024, NUMA: []model.NUMANode{{MemoryMiB: 4096}}, Cores: []model.Core{{ID: 0}}}
		if _, err := nodes.Register(context.Background(), &api.RegisterRequest{Node: wire.NodeToProto(n)}); err != nil {
			t.Fatal(err)
		}
	}
	// report plays the agent of node: it waits for the run, then reports dgemm.
	report := func(node string, dgemm float64) {
		for ctx := context.Background(); ; time.Sleep(10 * time.Millisecond) {
			ns, err := api.NewJobServiceClient(conn).Nodes(ctx, &api.NodesRequest{})
			if err != nil {
				t.Error(err)
				return
			}
			for _, n := range ns.GetNodes() {
				if run := n.GetAcceptanceRun(); n.GetName() == node && run != nil {
					_, err := nodes.ReportAcceptance(ctx, &api.AcceptanceReport{Node: node, RunId: run.GetId(), Results: []*api.AcceptanceResult{
						{Subject: "cpu", Model: "Xeon", Workload: "dgemm", Unit: "GFLOP/s", Value: dgemm}}})
					if err != nil {
						t.Error(err)
					}
					return
				}
			}
		}
	}
	run := func(out *announcingBuffer, args ...string) (string, error) {
		cmd := operatorCmd()
		cmd.SetOut(out)
		cmd.SetErr(out)
		cmd.SetArgs(append(append([]string{"node-accept"}, args...), "--addr", m.GRPCAddr(), "--poll", "20ms", "--timeout", "20s"))
		err := cmd.ExecuteContext(context.Background())
		return out.String(), err
	}
	cases := []struct {
		name    string
		args    []string
		agent   func()
		wantOut string
		wantErr string
		usage   bool
	}{
		{"no node", nil, nil, "", "accepts 1 arg(s)", false},
		{"unknown workload", []string{"node05", "--workloads", "dgemm,fft"}, nil, "", `unknown workload "fft"`, true},
		{"bad size", []string{"node05", "--size", "100"}, nil, "", `--size "100"`, true},
		{"unknown node", []string{"node99"}, nil, "", `node "node99"`, false},
		{"no wait", []string{"node05", "--wait=false"}, nil, "node05: acceptance run 1 requested (draining: acceptance run 1 pending)", "", false},
		{"passes", []string{"node06"}, func() { report("node06", 100) }, "node06 passed acceptance run 1: ready", "", false},
		{"node05 passes", []string{"node05"}, func() { report("node05", 102) }, "node05 passed acceptance run 1", "", false},
		{"drained", []string{"node07"}, func() { report("node07", 70) }, "cpu     Xeon   dgemm     70.0 GFLOP/s",
			"node07 failed acceptance run 1 (drained): acceptance: dgemm 70.0 GFLOP/s is 30.7% below the median 101.0 GFLOP/s of 2 other Xeon (margin 10%)", false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			out := newAnnouncingBuffer("requested")
			if tc.agent != nil {
				// The agent reports once the command's request is in: a
				// report of a run already pending (node05's from "no
				// wait") would otherwise pass it before the command asks,
				// and the command would then wait for a run of its own.
				go func() {
					select {
					case <-out.seen:
						tc.agent()
					case <-time.After(20 * time.Second):
					}
				}()
			}
			outText, err := run(out, tc.args...)
			if tc.wantErr == "" && err != nil || tc.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tc.wantErr)) {
				t.Fatalf("error %v, want %q\n%s", err, tc.wantErr, outText)
			}
			var ue usageError
			if tc.usage != errors.As(err, &ue) {
				t.Errorf("usage error %v, want %v: %v", !tc.usage, tc.usage, err)
			}
			if !strings.Contains(outText, tc.wantOut) {
				t.Errorf("output:\n%s\nwant %q", outText, tc.wantOut)
			}
		})
	}
}

// announcingBuffer is a command's output that closes seen once it holds
// want, so that a test can act after the command got that far.
type announcingBuffer struct {
	mu   sync.Mutex
	buf  bytes.Buffer
	want string
	seen chan struct{}
	once sync.Once
}

func newAnnouncingBuffer(want string) *announcingBuffer {
	return &announcingBuffer{want: want, seen: make(chan struct{})}
}

func (b *announcingBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	n, err := b.buf.Write(p)
	if strings.Contains(b.buf.String(), b.want) {
		b.once.Do(func() { close(b.seen) })
	}
	return n, err
}

func (b *announcingBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// TestAcceptanceFlags: --acceptance-margin is validated (0 is the
// default) and --acceptance-reference reads hpcbench reports.
func TestAcceptanceFlags(t *testing.T) {
	dir := t.TempDir()
	good := filepath.Join(dir, "h200.json")
	rep := &hpcbench.Report{Schema: hpcbench.Schema, Device: hpcbench.Device{Kind: "gpu", Name: "NVIDIA H200"},
		Workloads: []hpcbench.Result{{Name: "dgemm", Value: 60000, Validated: true}, {Name: "sgemm", Value: 1, Error: "x"}}}
	var b bytes.Buffer
	if err := hpcbench.WriteJSON(&b, rep); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(good, b.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
	bad := filepath.Join(dir, "bad.json")
	if err := os.WriteFile(bad, []byte(`{"schema":"other"}`), 0o644); err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		name    string
		margin  float64
		ref     string
		want    float64
		wantErr string
	}{
		{"default", 0, "", 10, ""},
		{"given", 25, "", 25, ""},
		{"negative", -5, "", 0, "--acceptance-margin"},
		{"100 or more", 150, "", 0, "less than 100"},
		{"reference", 10, good, 10, ""},
		{"missing reference", 10, filepath.Join(dir, "none.json"), 0, "--acceptance-reference"},
		{"not a report", 10, bad, 0, "schema"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			c := common{dataDir: t.TempDir(), logLevel: "info", acceptanceMargin: tc.margin, acceptanceRef: tc.ref}
			cfg, err := c.config("s1", nil)
			if tc.wantErr != "" {
				var ue usageError
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) || !errors.As(err, &ue) {
					t.Fatalf("error %v, want a usage error with %q", err, tc.wantErr)
				}
				return
			}
			if err != nil || cfg.AcceptanceMarginPercent != tc.want {
				t.Fatalf("margin %v, %v", cfg.AcceptanceMarginPercent, err)
			}
			if tc.ref != "" && (cfg.AcceptanceReference["H200"]["dgemm"] != 60000 || cfg.AcceptanceReference["H200"]["sgemm"] != 0) {
				t.Fatalf("reference %v", cfg.AcceptanceReference)
			}
		})
	}
}
