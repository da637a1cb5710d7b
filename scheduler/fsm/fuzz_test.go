package fsm

import (
	"bytes"
	"testing"
	"time"

	"github.com/hashicorp/raft"

	"vhpc/scheduler/model"
)

// FuzzApply feeds arbitrary log entries (the decoder, then every entry
// type's Apply) to an FSM holding a node, three jobs and a running
// allocation. Apply must never panic; an entry it refuses (an error)
// leaves the state exactly as it was; and the log so far, replayed on a
// fresh FSM, and a snapshot restored into one, give the same state byte
// for byte (Apply is deterministic, and nothing it stores is lost by
// Persist/Restore). Seeds: a valid entry of every type and a few broken
// frames; `make fuzz` runs it long.
func FuzzApply(f *testing.F) {
	node := testNode("n1", 4)
	node.GPUs = []model.GPU{{PCIAddress: "0000:17:00.0", Model: "H100", NUMA: 0}}
	for _, e := range []struct {
		typ     EntryType
		payload any
	}{
		{EntrySubmitJobs, &SubmitJobs{Time: t0, Jobs: []model.Job{testJob("x", 1), testJob("a", 1)}}},
		{EntryCancelJob, &CancelJob{Time: t0, ID: 1, Reason: "x"}},
		{EntryRegisterNode, &RegisterNode{Time: t0, Node: node}},
		{EntryApplyPlan, &ApplyPlan{Time: t0, Starts: []model.Start{{Job: 2, Placements: []model.Placement{{Node: "n1", Cores: []int{2}, NUMA: []int{0}, MemoryMiB: 512, Scratch: 1024}}}}}},
		{EntryUpdateAlloc, &UpdateAlloc{Time: t0, ID: "1.0.0.1", Attempt: 1, State: model.AllocCompleted, Outputs: &model.Outputs{Digest: "sha256:" + string(bytes.Repeat([]byte("a"), 64)), Missing: []string{"out"}}}},
		{EntrySetNodeState, &SetNodeState{Time: t0, Name: "n1", State: model.NodeDown, Reason: "x"}},
		{EntrySetMember, &SetMember{ID: "m1", GRPCAddr: "127.0.0.1:1", RaftAddr: "127.0.0.1:2"}},
		{EntryGPUHealth, &GPUHealth{Time: t0, Node: "n1", PCI: "0000:17:00.0", Reason: "xid 79"}},
		{EntryPutImage, &PutImage{Time: t0, Image: model.Image{Department: "physics", Name: "sim", Tag: "1", Digest: "sha256:" + string(bytes.Repeat([]byte("b"), 64))}, Token: "t"}},
		{EntryRemoveImage, &RemoveImage{Time: t0, Ref: "physics/sim:1", Token: "r"}},
		{EntryAppendOutput, &AppendOutput{Job: 1, Alloc: "1.0.0.1", Attempt: 1, Offset: 0, Data: []byte("hello\n")}},
		{EntryExpireArtifacts, &ExpireArtifacts{Time: t0, Jobs: []model.JobID{1, 2, 99}}},
		{EntryPutUser, &PutUser{Time: t0, User: model.User{Name: "ada", Departments: []string{"physics"}}}},
		{EntryStartAcceptance, &StartAcceptance{Time: t0, Node: "n1", Size: "check"}},
		{EntryAcceptanceResults, &AcceptanceResults{Time: t0, Node: "n1", RunID: 1, Failed: "x"}},
	} {
		data, err := Encode(e.typ, e.payload)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(data)
	}
	for _, s := range []string{"", "\x01", "\x01\x02{}", "\x01\x01", "\x01\x01null", "\x01\x01{\"jobs\":[{}]}", "\xff\x01{}", "\x05\x01{\"id\":\"1.0.0.1\",\"attempt\":18446744073709551615}"} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, entry []byte) {
		h := fuzzBase(t)
		before := dumpJSON(t, h.f)
		out := h.applyRaw(entry)
		if err, ok := out.(error); ok {
			if after := dumpJSON(t, h.f); !bytes.Equal(before, after) {
				t.Fatalf("refused entry (%v) changed the state:\n%s\n%s", err, before, after)
			}
		}
		h.replayAndRestore()
	})
}

// fuzzBase is the state FuzzApply's entries apply to: node n1 (4 cores,
// one GPU), jobs 1-3, job 1 running on n1 as allocation 1.0.0.1.
func fuzzBase(t *testing.T) *harness {
	h := newHarness(t)
	n := testNode("n1", 4)
	n.GPUs = []model.GPU{{PCIAddress: "0000:17:00.0", Model: "H100", NUMA: 0}}
	h.apply(EntryRegisterNode, &RegisterNode{Time: t0, Node: n})
	h.submit(testJob("a", 2), testJob("b", 2), testJob("c", 1))
	h.start(1, "n1", 0, 1)
	h.report("1.0.0.1", 1, model.AllocRunning, 0)
	h.apply(EntryPutUser, &PutUser{Time: t0, User: model.User{Name: "ada", Departments: []string{"physics"}}})
	return h
}

// applyRaw applies data as the next log entry, as Raft would.
func (h *harness) applyRaw(data []byte) any {
	h.log = append(h.log, bytes.Clone(data))
	h.idx++
	return h.f.Apply(&raft.Log{Index: h.idx, Type: raft.LogCommand, Data: data, AppendedAt: t0.Add(time.Duration(h.idx))})
}
