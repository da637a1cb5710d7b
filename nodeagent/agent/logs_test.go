package agent

import (
	"context"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"testing"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"vhpc/api"
)

// outputMaster is a NodeService that keeps one allocation's output the
// way the FSM does: overlaps are dropped, a chunk beyond what it holds is
// refused with a PushLogsResponse detail, and past cap it only counts.
type outputMaster struct {
	api.UnimplementedNodeServiceServer
	mu      sync.Mutex
	held    []byte
	cap     int
	dropped int64
	offsets []int64 // offset of every chunk received
}

func (m *outputMaster) PushLogs(stream grpc.ClientStreamingServer[api.LogChunk, api.PushLogsResponse]) error {
	for {
		c, err := stream.Recv()
		if err == io.EOF {
			m.mu.Lock()
			defer m.mu.Unlock()
			return stream.SendAndClose(m.resp())
		}
		if err != nil {
			return err
		}
		m.mu.Lock()
		m.offsets = append(m.offsets, c.GetOffset())
		have, end := m.resp().GetHave(), c.GetOffset()+int64(len(c.GetData()))
		switch {
		case m.dropped > 0 || (m.cap > 0 && len(m.held) >= m.cap):
			m.dropped += max(end-have, 0)
		case c.GetOffset() > have:
			m.mu.Unlock()
			st, _ := status.New(codes.FailedPrecondition, "gap").WithDetails(&api.PushLogsResponse{Have: have})
			return st.Err()
		case end > have:
			m.held = append(m.held, c.GetData()[have-c.GetOffset():]...)
			if m.cap > 0 && len(m.held) > m.cap {
				m.dropped += int64(len(m.held) - m.cap)
				m.held = m.held[:m.cap]
			}
		}
		m.mu.Unlock()
	}
}

// resp is the master's answer; m.mu is held.
func (m *outputMaster) resp() *api.PushLogsResponse {
	return &api.PushLogsResponse{Have: int64(len(m.held)) + m.dropped, Truncated: m.dropped > 0}
}

// TestPushLogsResendsFromTheMastersOffset: after the master lost output
// (it answers a gap with what it holds) the agent resends from there, and
// after the master's cap it sends only how far the file reaches.
func TestPushLogsResendsFromTheMastersOffset(t *testing.T) {
	m := &outputMaster{}
	cl := serveNodes(t, m)
	a := &Agent{cfg: Config{Client: cl}, log: slog.New(slog.NewTextHandler(io.Discard, nil))}
	path := filepath.Join(t.TempDir(), "out.log")
	p := &logPusher{a: a, al: &api.Allocation{Id: "1.0.0.1", Job: 1, Attempt: 1}, allocID: "1.0.0.1", path: path, buf: make([]byte, 4)}

	steps := []struct {
		name    string
		write   string // appended to the guest's output file
		before  func() // what happens at the master first
		held    string
		offsets []int64 // chunks the master receives in this flush
		wantOff int64
	}{
		{"first output, in 4-byte chunks", "abcdef", nil, "abcdef", []int64{0, 4}, 6},
		{"the master lost output: a gap, then a resend from its have", "gh", func() { m.held = m.held[:2] }, "abcdefgh", []int64{6, 2, 6}, 8},
		{"nothing new sends nothing", "", nil, "abcdefgh", nil, 8},
		{"past the master's cap only the size is sent", "ijklmn", func() { m.cap = 10 }, "abcdefghij", []int64{8, 14}, 14},
	}
	for _, st := range steps {
		f, err := os.OpenFile(path, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := f.WriteString(st.write); err != nil {
			t.Fatal(err)
		}
		f.Close()
		m.mu.Lock()
		if st.before != nil {
			st.before()
		}
		m.offsets = nil
		m.mu.Unlock()
		if err := p.flush(context.Background()); err != nil {
			t.Fatalf("%s: flush: %v", st.name, err)
		}
		m.mu.Lock()
		held, offsets := string(m.held), m.offsets
		m.mu.Unlock()
		if held != st.held || !slices.Equal(offsets, st.offsets) || p.offset != st.wantOff {
			t.Fatalf("%s: master holds %q after chunks at %v, agent at %d; want %q, %v, %d", st.name, held, offsets, p.offset, st.held, st.offsets, st.wantOff)
		}
	}
	if m.dropped != 4 || !p.truncated {
		t.Errorf("dropped %d, truncated %v; want 4 bytes counted past the cap", m.dropped, p.truncated)
	}
}
