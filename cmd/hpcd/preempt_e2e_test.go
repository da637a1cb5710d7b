package main

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"vhpc/api"
)

// TestE2EPreemption: with --preemption requeue, a high-QOS job that needs
// the cores a low-QOS guest holds stops that guest, runs, and the low job
// is requeued (a new attempt, no retry used) and runs again afterwards.
func TestE2EPreemption(t *testing.T) {
	if testing.Short() {
		t.Skip("boots real guests; skipped with -short")
	}
	c := startDev(t, "--preemption", "requeue")
	nodes, err := c.jobs.Nodes(context.Background(), &api.NodesRequest{})
	if err != nil {
		t.Fatal(err)
	}
	n := nodes.GetNodes()[0]
	free := len(n.GetCores()) - len(n.GetReservedCores())
	dir := t.TempDir()
	write := func(name, qos, script string) {
		spec := fmt.Sprintf("name: %s\nqos: %s\nwalltime: 10m\nresources:\n  cpusPerTask: %d\nscript: |\n%s", name, qos, free, script)
		if err := os.WriteFile(filepath.Join(dir, name+".yaml"), []byte(spec), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write("background", "low", "  echo attempt started\n  sleep 600\n")
	write("urgent", "high", "  echo urgent done\n")
	submit := func(name string) uint64 {
		code, out, errOut := c.hpcsub(dir, "--parsable", name+".yaml")
		var id uint64
		if code != 0 || json.Unmarshal([]byte(strings.TrimSpace(out)), &id) != nil {
			t.Fatalf("submit %s: exit %d %q %s", name, code, out, errOut)
		}
		return id
	}

	low := submit("background")
	// "running" is reported when the guest starts the script: wait for its
	// first line, so that the preemption cannot come before it.
	c.waitFor(t, "the low-QOS job to print", func() bool {
		_, logs, _ := c.hpcsub(dir, "logs", fmt.Sprint(low))
		return strings.Contains(logs, "attempt started")
	})
	high := submit("urgent")
	c.waitFor(t, "the high-QOS job to complete", func() bool { return c.job(high).GetState() == "completed" })

	j := c.job(low)
	first := j.GetAllocations()[0]
	if first.GetState() != "preempted" || !strings.Contains(first.GetReason(), fmt.Sprintf("preempted by job %d (QOS high over low)", high)) {
		t.Errorf("the low job's first allocation: %s (%s), want preempted by job %d", first.GetState(), first.GetReason(), high)
	}
	if _, out, _ := c.hpcsub(dir, "show", fmt.Sprint(low)); !strings.Contains(out, "preempted") || !strings.Contains(out, fmt.Sprintf("preempted by job %d", high)) {
		t.Errorf("hpcsub show of the preempted job does not say so:\n%s", out)
	}
	c.waitFor(t, "the preempted job to run again", func() bool {
		j := c.job(low)
		return j.GetState() == "running" && j.GetAttempt() == 2
	})
	deadline := time.Now().Add(2 * time.Minute)
	for {
		_, logs, _ := c.hpcsub(dir, "logs", fmt.Sprint(low))
		if strings.Count(logs, "attempt started") == 2 {
			break
		}
		if time.Now().After(deadline) {
			_, show, _ := c.hpcsub(dir, "show", fmt.Sprint(low))
			agentLogs, _ := filepath.Glob(filepath.Join(c.data, "agent", "logs", "*"))
			var files strings.Builder
			for _, f := range agentLogs {
				b, _ := os.ReadFile(f)
				fmt.Fprintf(&files, "--- %s\n%s\n", f, b)
			}
			t.Fatalf("the low job's output should show both attempts starting: %q\n%s\n%s", logs, show, files.String())
		}
		time.Sleep(200 * time.Millisecond)
	}
	if code, _, errOut := c.hpcsub(dir, "cancel", fmt.Sprint(low)); code != 0 {
		t.Fatalf("cancel: %d %s", code, errOut)
	}
	c.waitFor(t, "the low job's guest to be destroyed", func() bool {
		for _, a := range c.job(low).GetAllocations() {
			if a.GetAttempt() == 2 && a.GetState() == "cancelled" {
				return true
			}
		}
		return false
	})
}
