package state

import (
	"maps"
	"slices"
	"time"

	"vhpc/scheduler/model"
)

// Dump is the serializable form of a snapshot, written by FSM snapshots and
// read back by FSM.Restore. Field names are part of the snapshot format.
type Dump struct {
	Version int                `json:"version"`
	Index   uint64             `json:"index"`
	NextJob model.JobID        `json:"nextJob"`
	Jobs    []*model.Job       `json:"jobs"`
	Nodes   []*model.Node      `json:"nodes"`
	Allocs  []*model.Alloc     `json:"allocs"`
	Usage   map[string]float64 `json:"usage"`
	UsageAt time.Time          `json:"usageAt,omitzero"`
	Members []Member           `json:"members,omitempty"`
	// History is each user's last runtimes (oldest first).
	History map[string][]time.Duration `json:"history,omitempty"`
}

// DumpVersion is the current snapshot format.
const DumpVersion = 1

// Dump lists everything in the snapshot. It shares the stored objects, which
// are immutable, so it is safe to encode from another goroutine.
func (s *Snapshot) Dump() *Dump {
	d := &Dump{Version: DumpVersion, Index: s.index, NextJob: s.nextJob, Usage: maps.Clone(s.usage), UsageAt: s.usageAt, History: maps.Clone(s.history)}
	for j := range s.Jobs() {
		d.Jobs = append(d.Jobs, j)
	}
	for n := range s.Nodes() {
		d.Nodes = append(d.Nodes, n)
	}
	for a := range s.Allocs() {
		d.Allocs = append(d.Allocs, a)
	}
	for _, id := range slices.Sorted(maps.Keys(s.members)) {
		d.Members = append(d.Members, s.members[id])
	}
	return d
}

// FromDump rebuilds a snapshot, including the token and active-job indexes.
func FromDump(d *Dump) *Snapshot {
	s := New()
	t := s.Txn()
	for _, j := range d.Jobs {
		t.PutJob(j)
		if j.Token != "" {
			t.tokens.Insert([]byte(j.Token), j.ID)
		}
	}
	for _, n := range d.Nodes {
		t.PutNode(n)
	}
	for _, a := range d.Allocs {
		t.PutAlloc(a)
	}
	for _, m := range d.Members {
		t.SetMember(m, false)
	}
	if d.History != nil {
		t.history = maps.Clone(d.History)
	}
	t.next = max(d.NextJob, 1)
	if d.Usage != nil {
		t.SetUsage(d.Usage, d.UsageAt)
	}
	t.Commit(d.Index)
	return s.Snapshot()
}
