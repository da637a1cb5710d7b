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
	// Runs is each user's last completed runs, oldest first (version 6).
	Runs map[string][]model.Run `json:"runs,omitempty"`
	// History is each user's last runtimes, oldest first, without their
	// kinds (versions 1 to 5; read as runs of no kind, never written).
	History map[string][]time.Duration `json:"history,omitempty"`
	// Images is the image catalog in key order and ImageTokens the client
	// tokens of image entries (token -> catalog key), sorted by token
	// (version 2; a version 1 dump has neither).
	Images      []*model.Image `json:"images,omitempty"`
	ImageTokens []ImageToken   `json:"imageTokens,omitempty"`
	// Output is every job's stored output chunks by job, then offset, and
	// OutputAllocs each allocation's output counters by allocation id
	// (version 3; older dumps have neither: no output).
	Output       []*OutputChunk `json:"output,omitempty"`
	OutputAllocs []*AllocOutput `json:"outputAllocs,omitempty"`
	// Users are the users with their departments, by name (version 4;
	// older dumps have none).
	Users []*model.User `json:"users,omitempty"`
}

// ImageToken is one remembered client token of an image entry.
type ImageToken struct {
	Token string `json:"token"`
	Ref   string `json:"ref"`
}

// DumpVersion is the current snapshot format: 2 added the image catalog,
// 3 jobs' output, 4 users, 5 node acceptance (Node.AcceptanceRun,
// Acceptance, AcceptanceDrain and GPU.Rejected), 6 the kinds of the
// runtime history (Runs replaces History).
const DumpVersion = 6

// Readable reports whether FromDump reads format version v: 1 (a version
// 2 dump without images), 2 (a version 3 dump without output), 3 (a
// version 4 dump without users), 4 (a version 5 dump whose nodes have no
// acceptance runs), 5 (a version 6 dump whose runs have no kinds) or 6.
// FSM.Restore and the snapshot restore RPC check it before anything is
// replaced.
func Readable(v int) bool { return v >= 1 && v <= DumpVersion }

// Dump lists everything in the snapshot. It shares the stored objects, which
// are immutable, so it is safe to encode from another goroutine.
func (s *Snapshot) Dump() *Dump {
	d := &Dump{Version: DumpVersion, Index: s.index, NextJob: s.nextJob, Usage: maps.Clone(s.usage), UsageAt: s.usageAt, Runs: maps.Clone(s.history)}
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
	for im := range s.Images() {
		d.Images = append(d.Images, im)
	}
	it := s.imageTokens.Root().Iterator()
	for k, ref, ok := it.Next(); ok; k, ref, ok = it.Next() {
		d.ImageTokens = append(d.ImageTokens, ImageToken{Token: string(k), Ref: ref})
	}
	d.Output = slices.Collect(iterValues(s.output))
	d.OutputAllocs = slices.Collect(iterValues(s.outputAllocs))
	d.Users = slices.Collect(s.Users())
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
	for _, im := range d.Images {
		t.PutImage(im)
	}
	for _, tok := range d.ImageTokens {
		t.AddImageToken(tok.Token, tok.Ref)
	}
	for _, c := range d.Output {
		t.output.Insert(outputKey(c.Job, c.Offset), c)
	}
	for _, o := range d.OutputAllocs {
		t.PutAllocOutput(o)
	}
	for _, u := range d.Users {
		t.PutUser(u)
	}
	if d.Runs != nil {
		t.history = maps.Clone(d.Runs)
	} else if d.History != nil {
		h := make(map[string][]model.Run, len(d.History))
		for user, runtimes := range d.History {
			for _, r := range runtimes {
				h[user] = append(h[user], model.Run{Runtime: r})
			}
		}
		t.history = h
	}
	t.next = max(d.NextJob, 1)
	if d.Usage != nil {
		t.SetUsage(d.Usage, d.UsageAt)
	}
	t.Commit(d.Index)
	return s.Snapshot()
}
