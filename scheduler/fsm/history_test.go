package fsm

import (
	"slices"
	"strings"
	"testing"
	"time"

	"vhpc/scheduler/model"
)

// TestRuntimeHistoryKindsAndOldDumps: a snapshot of format 5 keeps its
// users' runtimes (as runs of no kind), a completed job adds a run of its
// own kind after them, and the kinds survive a snapshot and restore.
func TestRuntimeHistoryKindsAndOldDumps(t *testing.T) {
	h := newHarness(t)
	old := `{"version":5,"index":3,"nextJob":1,"jobs":null,"allocs":null,"nodes":null,"usage":null,"history":{"ada":[600000000000,1200000000000]}}`
	if err := h.f.Restore(nopCloser{strings.NewReader(old)}); err != nil {
		t.Fatal(err)
	}
	want := []model.Run{{Runtime: 10 * time.Minute}, {Runtime: 20 * time.Minute}}
	if got := h.f.Store().Snapshot().History()["ada"]; !slices.Equal(got, want) {
		t.Fatalf("history after a version 5 restore %v, want %v", got, want)
	}

	h.apply(EntryRegisterNode, &RegisterNode{Time: t0, Node: testNode("n1", 4)})
	j := testJob("t", 2)
	j.Name, j.Walltime = "sim", 2*time.Hour
	h.submit(j)
	if r := h.start(1, "n1", 0, 1); r.Applied != 1 {
		t.Fatalf("plan not applied: %+v", r)
	}
	h.report("1.0.0.1", 1, model.AllocRunning, 0)
	h.report("1.0.0.1", 1, model.AllocCompleted, 0)
	got := h.f.Store().Snapshot().History()["ada"]
	if len(got) != 3 || !slices.Equal(got[:2], want) || got[2].Kind != h.job(1).Kind() || got[2].Kind.Name != "sim" || got[2].Kind.Walltime != 2*time.Hour {
		t.Fatalf("history after a completed job %+v, want the old two runs and one of kind %+v", got, h.job(1).Kind())
	}
	if r := h.snapshotRestored().f.Store().Snapshot().History()["ada"]; !slices.Equal(r, got) {
		t.Fatalf("history after a snapshot and restore %+v, want %+v", r, got)
	}
}
