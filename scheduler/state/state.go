// Package state is the in-memory store behind the FSM: jobs, nodes,
// allocations and client tokens, kept in immutable radix trees so that a
// snapshot is a few pointer copies and readers never block the writer.
//
// Only scheduler/fsm mutates a Store (through Txn, from FSM.Apply). Readers
// (gRPC handlers, the scheduling loop, FSM.Snapshot) take a Snapshot and may
// hold it as long as they like. Objects handed out are shared with the store
// and must be treated as read-only; Txn methods store copies.
package state

import (
	"encoding/binary"
	"iter"
	"sync"
	"time"

	iradix "github.com/hashicorp/go-immutable-radix/v2"

	"vhpc/scheduler/model"
)

// Snapshot is an immutable view of the whole store at one log index.
type Snapshot struct {
	jobs   *iradix.Tree[*model.Job]
	active *iradix.Tree[struct{}] // ids of non-terminal jobs
	nodes  *iradix.Tree[*model.Node]
	allocs *iradix.Tree[*model.Alloc]
	live   *iradix.Tree[struct{}] // ids of non-terminal allocations
	tokens *iradix.Tree[model.JobID]
	// images is the catalog by "department/name:tag"; imageTokens maps
	// the client tokens of image entries to the key they named.
	images      *iradix.Tree[*model.Image]
	imageTokens *iradix.Tree[string]
	// output holds jobs' output chunks by (job, offset in the job's
	// output); outputAllocs what each allocation has pushed (output.go).
	output       *iradix.Tree[*OutputChunk]
	outputAllocs *iradix.Tree[*AllocOutput]
	nextJob      model.JobID
	usage        map[string]float64 // decayed usage by department as of usageAt; never mutated in place
	usageAt      time.Time
	members      map[string]Member      // by Raft server id; never mutated in place
	history      map[string][]model.Run // per user, last runs, oldest first; never mutated in place
	users        map[string]*model.User // by name (users.go); never mutated in place
	index        uint64
}

// Member is what the state records about one cluster member: where its
// gRPC API listens, so followers can forward requests to the leader.
type Member struct {
	ID       string `json:"id"`
	GRPCAddr string `json:"grpcAddr"`
	RaftAddr string `json:"raftAddr"`
}

// Store holds the current snapshot; Txn replaces it atomically.
type Store struct {
	mu  sync.RWMutex
	cur *Snapshot
}

// New returns an empty store whose first job id will be 1.
func New() *Store {
	return &Store{cur: emptySnapshot()}
}

func emptySnapshot() *Snapshot {
	return &Snapshot{
		jobs:         iradix.New[*model.Job](),
		active:       iradix.New[struct{}](),
		nodes:        iradix.New[*model.Node](),
		allocs:       iradix.New[*model.Alloc](),
		live:         iradix.New[struct{}](),
		tokens:       iradix.New[model.JobID](),
		images:       iradix.New[*model.Image](),
		imageTokens:  iradix.New[string](),
		output:       iradix.New[*OutputChunk](),
		outputAllocs: iradix.New[*AllocOutput](),
		nextJob:      1,
		usage:        map[string]float64{},
		members:      map[string]Member{},
		history:      map[string][]model.Run{},
		users:        map[string]*model.User{},
	}
}

// Snapshot returns the current immutable view. It is O(1).
func (s *Store) Snapshot() *Snapshot {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return s.cur
}

// Replace swaps in a whole snapshot (FSM.Restore).
func (s *Store) Replace(snap *Snapshot) {
	s.mu.Lock()
	s.cur = snap
	s.mu.Unlock()
}

func jobKey(id model.JobID) []byte {
	var b [8]byte
	binary.BigEndian.PutUint64(b[:], uint64(id))
	return b[:]
}

// Index is the Raft log index this snapshot reflects.
func (s *Snapshot) Index() uint64 { return s.index }

// NextJobID is the id the next submitted job will get.
func (s *Snapshot) NextJobID() model.JobID { return s.nextJob }

// Job returns the job with id, or nil.
func (s *Snapshot) Job(id model.JobID) *model.Job {
	j, _ := s.jobs.Get(jobKey(id))
	return j
}

// JobByToken returns the job a client token created, if any.
func (s *Snapshot) JobByToken(token string) (model.JobID, bool) {
	return s.tokens.Get([]byte(token))
}

// Jobs iterates all jobs in id order.
func (s *Snapshot) Jobs() iter.Seq[*model.Job] {
	return func(yield func(*model.Job) bool) {
		it := s.jobs.Root().Iterator()
		for _, j, ok := it.Next(); ok; _, j, ok = it.Next() {
			if !yield(j) {
				return
			}
		}
	}
}

// JobsDescending iterates all jobs from the newest id down.
func (s *Snapshot) JobsDescending() iter.Seq[*model.Job] {
	return func(yield func(*model.Job) bool) {
		it := s.jobs.Root().ReverseIterator()
		for _, j, ok := it.Previous(); ok; _, j, ok = it.Previous() {
			if !yield(j) {
				return
			}
		}
	}
}

// JobsBefore iterates jobs with an id below before, from the newest down
// (paging through JobsDescending without rereading the pages before).
func (s *Snapshot) JobsBefore(before model.JobID) iter.Seq[*model.Job] {
	return func(yield func(*model.Job) bool) {
		if before <= 1 {
			return
		}
		it := s.jobs.Root().ReverseIterator()
		it.SeekReverseLowerBound(jobKey(before - 1))
		for _, j, ok := it.Previous(); ok; _, j, ok = it.Previous() {
			if !yield(j) {
				return
			}
		}
	}
}

// ActiveJobs iterates non-terminal jobs in id order; its cost does not
// grow with the number of finished jobs.
func (s *Snapshot) ActiveJobs() iter.Seq[*model.Job] {
	return func(yield func(*model.Job) bool) {
		it := s.active.Root().Iterator()
		for k, _, ok := it.Next(); ok; k, _, ok = it.Next() {
			j, _ := s.jobs.Get(k)
			if j != nil && !yield(j) {
				return
			}
		}
	}
}

// JobCount is the number of jobs ever stored.
func (s *Snapshot) JobCount() int { return s.jobs.Len() }

// Node returns the node named name, or nil.
func (s *Snapshot) Node(name string) *model.Node {
	n, _ := s.nodes.Get([]byte(name))
	return n
}

// Nodes iterates nodes in name order.
func (s *Snapshot) Nodes() iter.Seq[*model.Node] {
	return iterValues(s.nodes)
}

// Alloc returns the allocation with id, or nil.
func (s *Snapshot) Alloc(id model.AllocID) *model.Alloc {
	a, _ := s.allocs.Get([]byte(id))
	return a
}

// Allocs iterates all allocations in id order.
func (s *Snapshot) Allocs() iter.Seq[*model.Alloc] {
	return iterValues(s.allocs)
}

// LiveAllocs iterates non-terminal allocations (those holding resources)
// in id order; its cost does not grow with history.
func (s *Snapshot) LiveAllocs() iter.Seq[*model.Alloc] {
	return func(yield func(*model.Alloc) bool) {
		it := s.live.Root().Iterator()
		for k, _, ok := it.Next(); ok; k, _, ok = it.Next() {
			a, _ := s.allocs.Get(k)
			if a != nil && !yield(a) {
				return
			}
		}
	}
}

// JobAllocs iterates the allocations of one job (every task and attempt).
func (s *Snapshot) JobAllocs(id model.JobID) iter.Seq[*model.Alloc] {
	return func(yield func(*model.Alloc) bool) {
		it := s.allocs.Root().Iterator()
		it.SeekPrefix([]byte(AllocPrefix(id)))
		for _, a, ok := it.Next(); ok; _, a, ok = it.Next() {
			if !yield(a) {
				return
			}
		}
	}
}

// Member returns a member's recorded addresses.
func (s *Snapshot) Member(id string) (Member, bool) {
	m, ok := s.members[id]
	return m, ok
}

// History returns each user's last completed runs (oldest first), for the
// scheduler's predicted estimates. The map must not be modified.
func (s *Snapshot) History() map[string][]model.Run { return s.history }

// Members returns every recorded member; the map must not be modified.
func (s *Snapshot) Members() map[string]Member { return s.members }

// Usage returns the decayed resource usage per department (the scheduler
// core's Charge units) as of the returned time. The map must not be modified.
func (s *Snapshot) Usage() (map[string]float64, time.Time) { return s.usage, s.usageAt }

func iterValues[T any](t *iradix.Tree[T]) iter.Seq[T] {
	return func(yield func(T) bool) {
		it := t.Root().Iterator()
		for _, v, ok := it.Next(); ok; _, v, ok = it.Next() {
			if !yield(v) {
				return
			}
		}
	}
}
