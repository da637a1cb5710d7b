package fsm

import (
	"errors"
	"fmt"

	"vhpc/scheduler/state"
)

// Output limits. They are part of the state machine: every member and
// every replay must cut an allocation's output at the same byte, so they
// change only with a new entry type.
const (
	// MaxOutputPerAlloc is how many bytes of one allocation's output the
	// replicated state keeps; past it, one truncation marker is stored
	// and the rest is only counted (AllocOutput.Dropped).
	MaxOutputPerAlloc = 16 << 20
	// MaxOutputChunk is the most data one AppendOutput entry may carry.
	MaxOutputChunk = 256 << 10
)

// ErrOutputGap is wrapped by *GapError.
var ErrOutputGap = errors.New("output gap")

// GapError refuses an output chunk that starts beyond what the state holds
// of its allocation: bytes in between would be missing. Have is the offset
// the sender must resend from.
type GapError struct {
	Alloc  string
	Offset int64
	Have   int64
}

func (e *GapError) Error() string {
	return fmt.Sprintf("output of allocation %s: chunk at offset %d leaves a gap; the master holds %d bytes, resend from offset %d",
		e.Alloc, e.Offset, e.Have, e.Have)
}

// Unwrap makes errors.Is(err, ErrOutputGap) hold.
func (e *GapError) Unwrap() error { return ErrOutputGap }

// OutputResult is Apply's answer for AppendOutput: how far into the
// allocation's output the state has accounted (the sender's next offset)
// and whether the allocation hit MaxOutputPerAlloc.
type OutputResult struct {
	Have      int64 `json:"have"`
	Truncated bool  `json:"truncated,omitempty"`
}

// truncationMarker is stored once, after the last kept byte, when an
// allocation's output passes MaxOutputPerAlloc.
func truncationMarker() []byte {
	return fmt.Appendf(nil, "\n[output truncated at %d bytes]\n", MaxOutputPerAlloc)
}

// applyAppendOutput stores the part of e's data the state does not hold
// yet. A chunk beyond what is held is refused (*GapError); the held prefix
// of an overlapping chunk is dropped (agents resend from their own offset
// after reconnects and restarts). Once an allocation is truncated, chunks
// only move its count of dropped bytes forward, gaps included.
func applyAppendOutput(txn *state.Txn, e *AppendOutput) any {
	al := txn.Alloc(e.Alloc)
	if al == nil {
		return fmt.Errorf("output for allocation %s: %w", e.Alloc, ErrNotFound)
	}
	if al.Job != e.Job {
		return fmt.Errorf("output for allocation %s of job %d names job %d: %w", e.Alloc, al.Job, e.Job, ErrConflict)
	}
	if al.Attempt != e.Attempt {
		return fmt.Errorf("output for allocation %s names attempt %d; the allocation is attempt %d: %w", e.Alloc, e.Attempt, al.Attempt, ErrStaleAttempt)
	}
	if e.Offset < 0 || len(e.Data) > MaxOutputChunk {
		return fmt.Errorf("output for allocation %s: chunk of %d bytes at offset %d; want offset >= 0 and at most %d bytes: %w",
			e.Alloc, len(e.Data), e.Offset, MaxOutputChunk, ErrConflict)
	}
	o := &state.AllocOutput{Alloc: e.Alloc, Job: e.Job}
	if old := txn.AllocOutput(e.Alloc); old != nil {
		c := *old
		o = &c
	}
	have, end := o.Have(), e.Offset+int64(len(e.Data))
	switch {
	case o.Truncated:
		if end > have {
			o.Dropped += end - have
			txn.PutAllocOutput(o)
		}
		return OutputResult{Have: o.Have(), Truncated: true}
	case e.Offset > have:
		return &GapError{Alloc: string(e.Alloc), Offset: e.Offset, Have: have}
	case end <= have:
		return OutputResult{Have: have}
	}
	data := e.Data[have-e.Offset:]
	keep := min(int64(len(data)), MaxOutputPerAlloc-o.Held)
	txn.AppendOutput(e.Job, e.Alloc, e.Attempt, data[:keep])
	o.Held += keep
	if rest := int64(len(data)) - keep; rest > 0 {
		o.Dropped += rest
		o.Truncated = true
		txn.AppendOutput(e.Job, e.Alloc, e.Attempt, truncationMarker())
	}
	txn.PutAllocOutput(o)
	return OutputResult{Have: o.Have(), Truncated: o.Truncated}
}
