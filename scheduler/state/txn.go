package state

import (
	"fmt"
	"maps"
	"time"

	iradix "github.com/hashicorp/go-immutable-radix/v2"

	"vhpc/scheduler/model"
)

// Txn batches changes to a Store; nothing is visible to readers until
// Commit. Only FSM.Apply opens transactions, one at a time.
type Txn struct {
	store        *Store
	base         *Snapshot
	jobs         *iradix.Txn[*model.Job]
	active       *iradix.Txn[struct{}]
	nodes        *iradix.Txn[*model.Node]
	allocs       *iradix.Txn[*model.Alloc]
	live         *iradix.Txn[struct{}]
	tokens       *iradix.Txn[model.JobID]
	images       *iradix.Txn[*model.Image]
	imageTokens  *iradix.Txn[string]
	output       *iradix.Txn[*OutputChunk]
	outputAllocs *iradix.Txn[*AllocOutput]
	next         model.JobID
	usage        map[string]float64
	usageAt      time.Time
	members      map[string]Member
	history      map[string][]model.Run
	users        map[string]*model.User
}

// Txn starts a transaction over the current snapshot.
func (s *Store) Txn() *Txn {
	b := s.Snapshot()
	return &Txn{
		store: s, base: b,
		jobs: b.jobs.Txn(), active: b.active.Txn(), nodes: b.nodes.Txn(),
		allocs: b.allocs.Txn(), live: b.live.Txn(), tokens: b.tokens.Txn(),
		images: b.images.Txn(), imageTokens: b.imageTokens.Txn(),
		output: b.output.Txn(), outputAllocs: b.outputAllocs.Txn(),
		next: b.nextJob, usage: b.usage, usageAt: b.usageAt, members: b.members, history: b.history, users: b.users,
	}
}

// Read returns a snapshot of the transaction's current (uncommitted) state,
// for checks that must see earlier changes of the same transaction.
func (t *Txn) Read() *Snapshot {
	return &Snapshot{
		jobs: t.jobs.CommitOnly(), active: t.active.CommitOnly(), nodes: t.nodes.CommitOnly(),
		allocs: t.allocs.CommitOnly(), live: t.live.CommitOnly(), tokens: t.tokens.CommitOnly(),
		images: t.images.CommitOnly(), imageTokens: t.imageTokens.CommitOnly(),
		output: t.output.CommitOnly(), outputAllocs: t.outputAllocs.CommitOnly(),
		nextJob: t.next, usage: t.usage, usageAt: t.usageAt, members: t.members, history: t.history, users: t.users, index: t.base.index,
	}
}

// Job returns the job as the transaction sees it.
func (t *Txn) Job(id model.JobID) *model.Job {
	j, _ := t.jobs.Get(jobKey(id))
	return j
}

// Alloc returns the allocation as the transaction sees it.
func (t *Txn) Alloc(id model.AllocID) *model.Alloc {
	a, _ := t.allocs.Get([]byte(id))
	return a
}

// Node returns the node as the transaction sees it.
func (t *Txn) Node(name string) *model.Node {
	n, _ := t.nodes.Get([]byte(name))
	return n
}

// JobByToken looks a client token up, including tokens added in this txn.
func (t *Txn) JobByToken(token string) (model.JobID, bool) {
	return t.tokens.Get([]byte(token))
}

// AddJob assigns the next id to a copy of j, stores it and remembers its
// token. It returns the new id.
func (t *Txn) AddJob(j *model.Job) model.JobID {
	c := j.Copy()
	c.ID = t.next
	t.next++
	t.PutJob(c)
	if c.Token != "" {
		t.tokens.Insert([]byte(c.Token), c.ID)
	}
	return c.ID
}

// PutJob stores j (the caller passes a copy it owns) and keeps the
// active-job index in step with its state.
func (t *Txn) PutJob(j *model.Job) {
	k := jobKey(j.ID)
	t.jobs.Insert(k, j)
	if j.State.Terminal() {
		t.active.Delete(k)
	} else {
		t.active.Insert(k, struct{}{})
	}
}

// PutNode stores n (a copy the caller owns).
func (t *Txn) PutNode(n *model.Node) { t.nodes.Insert([]byte(n.Name), n) }

// PutAlloc stores a (a copy the caller owns).
// It keeps the live-allocation index in step with a's state.
func (t *Txn) PutAlloc(a *model.Alloc) {
	k := []byte(a.ID)
	t.allocs.Insert(k, a)
	if a.State.Terminal() {
		t.live.Delete(k)
	} else {
		t.live.Insert(k, struct{}{})
	}
}

// UsageAt is the decayed usage per department as of UsageTime. The map
// must not be modified; SetUsage replaces it.
func (t *Txn) UsageAt() (map[string]float64, time.Time) { return t.usage, t.usageAt }

// SetUsage replaces the decayed usage per department, valid as of at.
func (t *Txn) SetUsage(u map[string]float64, at time.Time) {
	t.usage = maps.Clone(u)
	t.usageAt = at
}

// RecordRuntime appends a completed run to its user's history, keeping
// the last model.RunsKept (model.WithRun).
func (t *Txn) RecordRuntime(user string, run model.Run) {
	h := maps.Clone(t.history)
	h[user] = model.WithRun(h[user], run, model.RunsKept)
	t.history = h
}

// SetMember records (or, with remove, forgets) a member's addresses.
func (t *Txn) SetMember(m Member, remove bool) {
	c := maps.Clone(t.members)
	if remove {
		delete(c, m.ID)
	} else {
		c[m.ID] = m
	}
	t.members = c
}

// Commit publishes the transaction at log index idx.
func (t *Txn) Commit(idx uint64) {
	snap := t.Read()
	snap.index = idx
	t.store.mu.Lock()
	t.store.cur = snap
	t.store.mu.Unlock()
}

// AllocPrefix is the id prefix shared by every allocation of a job, so a
// job's allocations are contiguous in id order.
func AllocPrefix(job model.JobID) string { return fmt.Sprintf("%d.", uint64(job)) }

// AllocIDFor names the allocation of one rank of one task and attempt:
// "<job>.<task>.<rank>.<attempt>", e.g. "12.0.0.1".
func AllocIDFor(job model.JobID, task int64, rank int, attempt uint64) model.AllocID {
	return model.AllocID(fmt.Sprintf("%s%d.%d.%d", AllocPrefix(job), task, rank, attempt))
}
