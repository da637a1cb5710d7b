package state

import (
	"testing"

	"vhpc/scheduler/model"
)

func TestSnapshotsAreIsolatedFromLaterWrites(t *testing.T) {
	s := New()
	txn := s.Txn()
	id := txn.AddJob(&model.Job{Name: "a", Token: "tok", State: model.JobPending})
	txn.Commit(1)
	before := s.Snapshot()

	txn = s.Txn()
	j := txn.Job(id).Copy()
	j.State = model.JobCompleted
	txn.PutJob(j)
	txn.AddJob(&model.Job{Name: "b", State: model.JobPending})
	if got := s.Snapshot().Job(id).State; got != model.JobPending {
		t.Fatalf("uncommitted change visible: %s", got)
	}
	txn.Commit(2)

	if got := before.Job(id).State; got != model.JobPending {
		t.Errorf("old snapshot changed to %s", got)
	}
	if before.JobCount() != 1 || s.Snapshot().JobCount() != 2 {
		t.Errorf("job counts old=%d new=%d, want 1 and 2", before.JobCount(), s.Snapshot().JobCount())
	}
	var active []model.JobID
	for j := range s.Snapshot().ActiveJobs() {
		active = append(active, j.ID)
	}
	if len(active) != 1 || active[0] != 2 {
		t.Errorf("active jobs %v, want [2] (job 1 completed)", active)
	}
	if got, ok := s.Snapshot().JobByToken("tok"); !ok || got != id {
		t.Errorf("token lookup = %d,%v", got, ok)
	}
}

func TestAllocIndexes(t *testing.T) {
	s := New()
	txn := s.Txn()
	for _, a := range []*model.Alloc{
		{ID: AllocIDFor(1, 0, 0, 1), Job: 1, State: model.AllocRunning},
		{ID: AllocIDFor(10, 0, 0, 1), Job: 10, State: model.AllocRunning},
		{ID: AllocIDFor(1, 0, 0, 2), Job: 1, State: model.AllocCompleted},
	} {
		txn.PutAlloc(a)
	}
	txn.Commit(1)
	snap := s.Snapshot()
	var ofJob1, live []model.AllocID
	for a := range snap.JobAllocs(1) {
		ofJob1 = append(ofJob1, a.ID)
	}
	for a := range snap.LiveAllocs() {
		live = append(live, a.ID)
	}
	if len(ofJob1) != 2 {
		t.Errorf("allocs of job 1 = %v; job 10's must not match the prefix", ofJob1)
	}
	if len(live) != 2 {
		t.Errorf("live allocs = %v, want the two running ones", live)
	}
}
