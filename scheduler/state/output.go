package state

import (
	"encoding/binary"
	"iter"

	iradix "github.com/hashicorp/go-immutable-radix/v2"

	"vhpc/scheduler/model"
)

// OutputChunk is one stored piece of a job's output: bytes of one
// allocation, placed at Offset in the job's output (the chunks of all its
// allocations in commit order). Stored chunks are never changed or
// removed, so readers may keep them; appending never copies older ones.
type OutputChunk struct {
	Job     model.JobID   `json:"job"`
	Alloc   model.AllocID `json:"alloc"`
	Attempt uint64        `json:"attempt"`
	Offset  int64         `json:"offset"`
	Data    []byte        `json:"data"`
}

// End is the job-output offset just past the chunk.
func (c *OutputChunk) End() int64 { return c.Offset + int64(len(c.Data)) }

// AllocOutput is how much of one allocation's output the store holds:
// Held bytes stored, Dropped bytes counted after the FSM's cap (Truncated).
// Have, their sum, is the offset in the allocation's output an agent
// continues from.
type AllocOutput struct {
	Alloc     model.AllocID `json:"alloc"`
	Job       model.JobID   `json:"job"`
	Held      int64         `json:"held"`
	Dropped   int64         `json:"dropped,omitempty"`
	Truncated bool          `json:"truncated,omitempty"`
}

// Have is how far into the allocation's output the store has accounted.
func (o *AllocOutput) Have() int64 { return o.Held + o.Dropped }

// outputKey orders a job's chunks by their offset in the job's output.
func outputKey(job model.JobID, offset int64) []byte {
	k := make([]byte, 16)
	binary.BigEndian.PutUint64(k, uint64(job))
	binary.BigEndian.PutUint64(k[8:], uint64(offset))
	return k
}

// lastChunk returns the job's last stored chunk in root, or nil.
func lastChunk(root *iradix.Node[*OutputChunk], job model.JobID) *OutputChunk {
	it := root.ReverseIterator()
	it.SeekReverseLowerBound(outputKey(job, -1)) // offset -1 is the largest key of the job
	k, c, ok := it.Previous()
	if !ok || binary.BigEndian.Uint64(k) != uint64(job) {
		return nil
	}
	return c
}

// JobOutput iterates a job's chunks that end after from, in offset order;
// the first may start before from. Finding from is O(log n).
func (s *Snapshot) JobOutput(job model.JobID, from int64) iter.Seq[*OutputChunk] {
	return func(yield func(*OutputChunk) bool) {
		start := outputKey(job, 0)
		if from > 0 {
			rit := s.output.Root().ReverseIterator()
			rit.SeekReverseLowerBound(outputKey(job, from))
			if k, _, ok := rit.Previous(); ok && binary.BigEndian.Uint64(k) == uint64(job) {
				start = k
			}
		}
		it := s.output.Root().Iterator()
		it.SeekLowerBound(start)
		for k, c, ok := it.Next(); ok && binary.BigEndian.Uint64(k) == uint64(job); k, c, ok = it.Next() {
			if c.End() <= from {
				continue
			}
			if !yield(c) {
				return
			}
		}
	}
}

// AllocOutput returns what the store holds of an allocation's output, or
// nil when nothing was pushed.
func (s *Snapshot) AllocOutput(id model.AllocID) *AllocOutput {
	o, _ := s.outputAllocs.Get([]byte(id))
	return o
}

// AllocOutput is Snapshot.AllocOutput as the transaction sees it.
func (t *Txn) AllocOutput(id model.AllocID) *AllocOutput {
	o, _ := t.outputAllocs.Get([]byte(id))
	return o
}

// PutAllocOutput stores an allocation's output counters (a copy the caller
// owns).
func (t *Txn) PutAllocOutput(o *AllocOutput) { t.outputAllocs.Insert([]byte(o.Alloc), o) }

// AppendOutput stores data as the next chunk of job's output. Empty data
// stores nothing.
func (t *Txn) AppendOutput(job model.JobID, alloc model.AllocID, attempt uint64, data []byte) {
	if len(data) == 0 {
		return
	}
	var off int64
	if last := lastChunk(t.output.Root(), job); last != nil {
		off = last.End()
	}
	c := &OutputChunk{Job: job, Alloc: alloc, Attempt: attempt, Offset: off, Data: data}
	t.output.Insert(outputKey(job, off), c)
}
