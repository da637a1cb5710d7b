package server

import (
	"errors"
	"strings"
	"testing"
	"time"

	"vhpc/api"
)

// TestNoticeSaysWhyNothingRuns: with no node registered, and after the
// in-process agent stopped, every pending reason and Nodes say so (with
// the agent's error) in front of the placement reason; a registered node
// clears the first notice.
func TestNoticeSaysWhyNothingRuns(t *testing.T) {
	ts := startServer(t, t.TempDir())
	ctx := ctxT(t)
	big := strings.Replace(helloSpec, "cpusPerTask: 2", "cpusPerTask: 64", 1)
	if _, err := ts.jobs.Submit(ctx, &api.SubmitRequest{ClientToken: "big", Spec: []byte(big)}); err != nil {
		t.Fatal(err)
	}
	steps := []struct {
		name   string
		do     func()
		reason []string // the pending reason contains each
		absent string   // and not this ("" : no such check)
		notice string   // Nodes' notice contains it ("" : is empty)
	}{
		{name: "no node", do: func() {},
			reason: []string{"no node has registered with the master: start hpc-agent", "; can never be placed: needs 1 node(s)"},
			notice: "no node has registered"},
		{name: "a node registered", do: func() { registerNode(t, ts, "n1", 2) },
			reason: []string{"can never be placed: needs 1 node(s)"}, absent: "no node has registered"},
		{name: "the in-process agent stopped", do: func() { ts.SetLocalAgentErr(errors.New("libvirt: cannot connect")) },
			reason: []string{"the agent of this hpcd stopped (jobs still run on the 1 other ready node(s)): libvirt: cannot connect; can never be placed"},
			notice: "libvirt: cannot connect"},
	}
	for _, st := range steps {
		st.do()
		tick := time.NewTicker(20 * time.Millisecond)
		for {
			j, err := ts.jobs.Get(ctx, &api.GetJobRequest{Id: 1})
			if err != nil {
				t.Fatal(err)
			}
			ok := st.absent == "" || !strings.Contains(j.GetReason(), st.absent)
			for _, want := range st.reason {
				ok = ok && strings.Contains(j.GetReason(), want)
			}
			if ok {
				break
			}
			select {
			case <-ctx.Done():
				t.Fatalf("%s: reason %q, want it to contain %q", st.name, j.GetReason(), st.reason)
			case <-tick.C:
			}
		}
		tick.Stop()
		nodes, err := ts.jobs.Nodes(ctx, &api.NodesRequest{})
		if err != nil {
			t.Fatal(err)
		}
		if got := nodes.GetNotice(); (st.notice == "") != (got == "") || !strings.Contains(got, st.notice) {
			t.Errorf("%s: Nodes notice %q, want %q", st.name, got, st.notice)
		}
	}
}
