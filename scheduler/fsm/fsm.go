// Package fsm is vhpc's raft.FSM: it turns committed log entries into
// changes of the state store. Apply is deterministic: no clocks (times come
// from the entry), no I/O, no map iteration into results. The server package
// is the only writer of log entries (through raft.Apply) and reads state
// through Store().Snapshot().
package fsm

import (
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"sync"

	"github.com/hashicorp/raft"

	"vhpc/scheduler/state"
)

// FSM applies log entries to a state.Store.
type FSM struct {
	store *state.Store
	log   *slog.Logger

	mu      sync.Mutex
	changed chan struct{}
}

var (
	_ raft.FSM         = (*FSM)(nil)
	_ raft.BatchingFSM = (*FSM)(nil)
)

// New returns an FSM over an empty store.
func New(log *slog.Logger) *FSM {
	return &FSM{store: state.New(), log: log, changed: make(chan struct{})}
}

// Store is the state the FSM maintains; callers only read its snapshots.
func (f *FSM) Store() *state.Store { return f.store }

// Changed returns a channel that is closed at the next state change. Take
// the channel before reading a snapshot, then wait on it, and no change is
// missed.
func (f *FSM) Changed() <-chan struct{} {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.changed
}

func (f *FSM) notify() {
	f.mu.Lock()
	close(f.changed)
	f.changed = make(chan struct{})
	f.mu.Unlock()
}

// Apply applies one committed entry. It returns the entry's result value, or
// an error value for an entry that changed nothing.
func (f *FSM) Apply(l *raft.Log) any {
	return f.ApplyBatch([]*raft.Log{l})[0]
}

// ApplyBatch applies consecutive committed entries in one store transaction.
func (f *FSM) ApplyBatch(logs []*raft.Log) []any {
	txn := f.store.Txn()
	out := make([]any, len(logs))
	var last uint64
	for i, l := range logs {
		last = l.Index
		if l.Type != raft.LogCommand {
			continue
		}
		out[i] = f.applyOne(txn, l.Data)
		if err, ok := out[i].(error); ok {
			f.log.Warn("log entry changed nothing", "index", l.Index, "err", err)
		}
	}
	txn.Commit(last)
	f.notify()
	return out
}

func (f *FSM) applyOne(txn *state.Txn, data []byte) any {
	typ, payload, err := decode(data)
	if err != nil {
		return err
	}
	switch typ {
	case EntrySubmitJobs:
		return with(typ, payload, func(e *SubmitJobs) any { return applySubmit(txn, e) })
	case EntryCancelJob:
		return with(typ, payload, func(e *CancelJob) any { return applyCancel(txn, e) })
	case EntryRegisterNode:
		return with(typ, payload, func(e *RegisterNode) any { return applyRegister(txn, e) })
	case EntryApplyPlan:
		return with(typ, payload, func(e *ApplyPlan) any { return applyPlan(txn, e) })
	case EntryUpdateAlloc:
		return with(typ, payload, func(e *UpdateAlloc) any { return applyAllocUpdate(txn, e) })
	case EntrySetNodeState:
		return with(typ, payload, func(e *SetNodeState) any { return applyNodeState(txn, e) })
	case EntryGPUHealth:
		return with(typ, payload, func(e *GPUHealth) any { return applyGPUHealth(txn, e) })
	case EntryPutImage:
		return with(typ, payload, func(e *PutImage) any { return applyPutImage(txn, e) })
	case EntryRemoveImage:
		return with(typ, payload, func(e *RemoveImage) any { return applyRemoveImage(txn, e) })
	case EntryAppendOutput:
		return with(typ, payload, func(e *AppendOutput) any { return applyAppendOutput(txn, e) })
	case EntryExpireArtifacts:
		return with(typ, payload, func(e *ExpireArtifacts) any { return applyExpireArtifacts(txn, e) })
	case EntryPutUser:
		return with(typ, payload, func(e *PutUser) any { return applyPutUser(txn, e) })
	case EntryStartAcceptance:
		return with(typ, payload, func(e *StartAcceptance) any { return applyStartAcceptance(txn, e) })
	case EntryAcceptanceResults:
		return with(typ, payload, func(e *AcceptanceResults) any { return applyAcceptanceResults(txn, e) })
	case EntrySetMember:
		return with(typ, payload, func(e *SetMember) any {
			txn.SetMember(state.Member{ID: e.ID, GRPCAddr: e.GRPCAddr, RaftAddr: e.RaftAddr}, e.Remove)
			return nil
		})
	}
	return fmt.Errorf("unknown log entry type %d: this member is older than the leader", uint8(typ))
}

// with decodes an entry's payload as T and applies it.
func with[T any](typ EntryType, payload []byte, apply func(*T) any) any {
	var e T
	if err := json.Unmarshal(payload, &e); err != nil {
		return fmt.Errorf("decode %s: %w", typ, err)
	}
	return apply(&e)
}

// Snapshot captures the current state in O(1); Persist does the encoding.
func (f *FSM) Snapshot() (raft.FSMSnapshot, error) {
	return &fsmSnapshot{snap: f.store.Snapshot()}, nil
}

// Restore replaces the state with a snapshot written by Persist.
func (f *FSM) Restore(rc io.ReadCloser) error {
	defer rc.Close()
	var d state.Dump
	if err := json.NewDecoder(rc).Decode(&d); err != nil {
		return fmt.Errorf("restore snapshot: %w", err)
	}
	if !state.Readable(d.Version) {
		return fmt.Errorf("restore snapshot: format version %d, this build reads 1..%d", d.Version, state.DumpVersion)
	}
	f.store.Replace(state.FromDump(&d))
	f.notify()
	return nil
}

type fsmSnapshot struct{ snap *state.Snapshot }

// Persist encodes the snapshot to Raft's sink (off the apply path).
func (s *fsmSnapshot) Persist(sink raft.SnapshotSink) error {
	if err := json.NewEncoder(sink).Encode(s.snap.Dump()); err != nil {
		_ = sink.Cancel()
		return fmt.Errorf("persist snapshot: %w", err)
	}
	return sink.Close()
}

// Release frees nothing: the snapshot is an immutable view.
func (s *fsmSnapshot) Release() {}
