package fsm

import (
	"bytes"
	"errors"
	"io"
	"strings"
	"testing"

	"vhpc/scheduler/model"
	"vhpc/scheduler/state"
)

// outputHarness is an FSM with two running jobs on one node: allocations
// 1.0.0.1 (job 1) and 2.0.0.1 (job 2).
func outputHarness(t *testing.T) *harness {
	t.Helper()
	h := newHarness(t)
	h.apply(EntryRegisterNode, &RegisterNode{Time: t0, Node: testNode("n1", 4)})
	h.submit(testJob("a", 1), testJob("b", 1))
	if r := h.start(1, "n1", 0); r.Applied != 1 {
		t.Fatalf("plan for job 1: %+v", r)
	}
	if r := h.start(2, "n1", 1); r.Applied != 1 {
		t.Fatalf("plan for job 2: %+v", r)
	}
	return h
}

func (h *harness) output(job model.JobID, from int64) string {
	var b strings.Builder
	for c := range h.f.Store().Snapshot().JobOutput(job, from) {
		b.Write(c.Data[max(from-c.Offset, 0):])
	}
	return b.String()
}

func chunk(job model.JobID, alloc string, off int64, data string) *AppendOutput {
	return &AppendOutput{Job: job, Alloc: model.AllocID(alloc), Attempt: 1, Offset: off, Data: []byte(data)}
}

func TestAppendOutput(t *testing.T) {
	steps := []struct {
		name    string
		chunk   *AppendOutput
		want    OutputResult
		gapHave int64 // > -1: want a *GapError with this Have
		errIs   error // want an error wrapping this
		job1    string
	}{
		{"first chunk", chunk(1, "1.0.0.1", 0, "line 1\n"), OutputResult{Have: 7}, -1, nil, "line 1\n"},
		{"the same chunk again changes nothing", chunk(1, "1.0.0.1", 0, "line 1\n"), OutputResult{Have: 7}, -1, nil, "line 1\n"},
		{"overlap: only the new tail is kept", chunk(1, "1.0.0.1", 0, "line 1\nline 2\n"), OutputResult{Have: 14}, -1, nil, "line 1\nline 2\n"},
		{"gap refused with the expected offset", chunk(1, "1.0.0.1", 20, "line 4\n"), OutputResult{}, 14, ErrOutputGap, "line 1\nline 2\n"},
		{"another job's output is its own", chunk(2, "2.0.0.1", 0, "other\n"), OutputResult{Have: 6}, -1, nil, "line 1\nline 2\n"},
		{"resend from have", chunk(1, "1.0.0.1", 14, "line 3\n"), OutputResult{Have: 21}, -1, nil, "line 1\nline 2\nline 3\n"},
		{"unknown allocation", chunk(1, "1.0.0.9", 0, "x"), OutputResult{}, -1, ErrNotFound, "line 1\nline 2\nline 3\n"},
		{"allocation of another job", chunk(2, "1.0.0.1", 21, "x"), OutputResult{}, -1, ErrConflict, "line 1\nline 2\nline 3\n"},
		{"another attempt", &AppendOutput{Job: 1, Alloc: "1.0.0.1", Attempt: 2, Offset: 21, Data: []byte("x")}, OutputResult{}, -1, ErrStaleAttempt, "line 1\nline 2\nline 3\n"},
		{"negative offset", chunk(1, "1.0.0.1", -1, "x"), OutputResult{}, -1, ErrConflict, "line 1\nline 2\nline 3\n"},
		{"chunk over the entry cap", chunk(1, "1.0.0.1", 21, strings.Repeat("x", MaxOutputChunk+1)), OutputResult{}, -1, ErrConflict, "line 1\nline 2\nline 3\n"},
	}
	h := outputHarness(t)
	for _, st := range steps {
		out := h.apply(EntryAppendOutput, st.chunk)
		var gap *GapError
		switch {
		case st.gapHave >= 0:
			if !errors.As(out.(error), &gap) || gap.Have != st.gapHave || !errors.Is(gap, ErrOutputGap) {
				t.Fatalf("%s: %v, want a gap error with have %d", st.name, out, st.gapHave)
			}
		case st.errIs != nil:
			if err, ok := out.(error); !ok || !errors.Is(err, st.errIs) {
				t.Fatalf("%s: %v, want %v", st.name, out, st.errIs)
			}
		default:
			if out != st.want {
				t.Fatalf("%s: %v, want %+v", st.name, out, st.want)
			}
		}
		if got := h.output(1, 0); got != st.job1 {
			t.Fatalf("%s: job 1 output %q, want %q", st.name, got, st.job1)
		}
	}
	if got := h.output(2, 0); got != "other\n" {
		t.Errorf("job 2 output %q", got)
	}
	// Reads from an offset start inside a chunk.
	for from, want := range map[int64]string{0: "line 1\nline 2\nline 3\n", 3: "e 1\nline 2\nline 3\n", 14: "line 3\n", 18: " 3\n", 21: "", 99: ""} {
		if got := h.output(1, from); got != want {
			t.Errorf("job 1 output from %d = %q, want %q", from, got, want)
		}
	}
	if n := outputSize(h.f.Store().Snapshot(), 1); n != 21 {
		t.Errorf("job 1 output size %d, want 21", n)
	}
}

// TestOutputCap: past MaxOutputPerAlloc one marker is stored and the rest
// is only counted; later chunks (data or not) move the count forward.
func TestOutputCap(t *testing.T) {
	h := outputHarness(t)
	block := bytes.Repeat([]byte("y"), MaxOutputChunk)
	h.apply(EntryAppendOutput, &AppendOutput{Job: 1, Alloc: "1.0.0.1", Attempt: 1, Offset: 0, Data: block[:100]})
	off := int64(100) // so that a full chunk straddles the cap
	for off+MaxOutputChunk <= MaxOutputPerAlloc {
		if out := h.apply(EntryAppendOutput, &AppendOutput{Job: 1, Alloc: "1.0.0.1", Attempt: 1, Offset: off, Data: block}); out != (OutputResult{Have: off + MaxOutputChunk}) {
			t.Fatalf("chunk at %d: %v", off, out)
		}
		off += MaxOutputChunk
	}
	steps := []struct {
		name    string
		off     int64
		data    []byte
		want    OutputResult
		dropped int64
	}{
		{"the chunk that crosses the cap", off, block, OutputResult{Have: off + MaxOutputChunk, Truncated: true}, off + MaxOutputChunk - MaxOutputPerAlloc},
		{"data past the cap is counted", off + MaxOutputChunk, []byte("more"), OutputResult{Have: off + MaxOutputChunk + 4, Truncated: true}, off + MaxOutputChunk + 4 - MaxOutputPerAlloc},
		{"an empty chunk reports how far the output reaches", MaxOutputPerAlloc + 1000, nil, OutputResult{Have: MaxOutputPerAlloc + 1000, Truncated: true}, 1000},
		{"a resent old chunk changes nothing", 0, []byte("y"), OutputResult{Have: MaxOutputPerAlloc + 1000, Truncated: true}, 1000},
	}
	marker := string(truncationMarker())
	for _, st := range steps {
		if out := h.apply(EntryAppendOutput, &AppendOutput{Job: 1, Alloc: "1.0.0.1", Attempt: 1, Offset: st.off, Data: st.data}); out != st.want {
			t.Fatalf("%s: %v, want %+v", st.name, out, st.want)
		}
		snap := h.f.Store().Snapshot()
		o := snap.AllocOutput("1.0.0.1")
		if o.Held != MaxOutputPerAlloc || o.Dropped != st.dropped || !o.Truncated {
			t.Fatalf("%s: counters %+v, want held %d, dropped %d", st.name, o, MaxOutputPerAlloc, st.dropped)
		}
		if n := outputSize(snap, 1); n != MaxOutputPerAlloc+int64(len(marker)) {
			t.Fatalf("%s: job output is %d bytes, want the cap plus one marker (%d)", st.name, n, MaxOutputPerAlloc+len(marker))
		}
		if tail := h.output(1, MaxOutputPerAlloc-2); tail != "yy"+marker {
			t.Fatalf("%s: output ends %q", st.name, tail)
		}
	}
	if !strings.Contains(marker, "[output truncated at 16777216 bytes]") {
		t.Errorf("marker %q", marker)
	}
}

// TestOutputSnapshotReplayAndOldDumps: output survives snapshot/restore
// and replay byte for byte; a version 2 dump (before output) restores with
// no output, and output appended after it starts at offset 0.
func TestOutputSnapshotReplayAndOldDumps(t *testing.T) {
	h := outputHarness(t)
	h.apply(EntryAppendOutput, chunk(1, "1.0.0.1", 0, "one\n"))
	h.apply(EntryAppendOutput, chunk(2, "2.0.0.1", 0, "two\n"))
	h.apply(EntryAppendOutput, chunk(1, "1.0.0.1", 2, "e\nthree\n"))

	restored := h.replayAndRestore()
	if got := restored.output(1, 0); got != "one\nthree\n" {
		t.Fatalf("restored job 1 output %q", got)
	}
	if out := restored.apply(EntryAppendOutput, chunk(1, "1.0.0.1", 20, "x")); !errors.Is(out.(error), ErrOutputGap) {
		t.Fatalf("restored state forgot how much it holds: %v", out)
	}

	old := newHarness(t)
	v2 := `{"version":2,"index":9,"nextJob":2,"jobs":[{"id":1,"state":"running","attempt":1}],"nodes":[],` +
		`"allocs":[{"id":"1.0.0.1","job":1,"attempt":1,"state":"running"}]}`
	if err := old.f.Restore(io.NopCloser(strings.NewReader(v2))); err != nil {
		t.Fatalf("version 2 dump: %v", err)
	}
	if n := outputSize(old.f.Store().Snapshot(), 1); n != 0 {
		t.Fatalf("version 2 dump restored %d bytes of output", n)
	}
	if out := old.apply(EntryAppendOutput, chunk(1, "1.0.0.1", 0, "after\n")); out != (OutputResult{Have: 6}) {
		t.Fatalf("append after a version 2 restore: %v", out)
	}
	if got := old.output(1, 0); got != "after\n" {
		t.Fatalf("output after a version 2 restore %q", got)
	}
}

// outputSize is the length of a job's stored output: the end of its last chunk.
func outputSize(snap *state.Snapshot, job model.JobID) int64 {
	var end int64
	for c := range snap.JobOutput(job, 0) {
		end = c.End()
	}
	return end
}
