package server

import (
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"vhpc/api"
	"vhpc/scheduler/model"
)

// Job output is kept on the member that receives it, one file per job in
// DataDir/logs; it is not replicated through Raft (it can be large), so
// agents push to the leader and users read from the leader.

// logStore appends agents' output chunks to per-job files, dropping chunks
// it has already seen for an allocation (agents resend after reconnects).
type logStore struct {
	dir  string
	mu   sync.Mutex
	seen map[string]int64 // alloc id -> bytes appended
}

func (l *logStore) path(job uint64) string {
	return filepath.Join(l.dir, strconv.FormatUint(job, 10)+".log")
}

func (l *logStore) append(c *api.LogChunk) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	have := l.seen[c.GetAllocId()]
	data := c.GetData()
	if skip := have - c.GetOffset(); skip > 0 {
		if skip >= int64(len(data)) {
			return nil
		}
		data = data[skip:]
	}
	if err := os.MkdirAll(l.dir, 0o750); err != nil {
		return fmt.Errorf("log dir: %w", err)
	}
	f, err := os.OpenFile(l.path(c.GetJob()), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o640)
	if err != nil {
		return fmt.Errorf("open job log: %w", err)
	}
	defer f.Close()
	if _, err := f.Write(data); err != nil {
		return fmt.Errorf("append job log: %w", err)
	}
	l.seen[c.GetAllocId()] = have + int64(len(data))
	return nil
}

func (ns *nodeService) PushLogs(stream grpc.ClientStreamingServer[api.LogChunk, api.PushLogsResponse]) error {
	s := ns.s
	for {
		c, err := stream.Recv()
		if err == io.EOF {
			return stream.SendAndClose(&api.PushLogsResponse{})
		}
		if err != nil {
			return err
		}
		if len(c.GetData()) > 1<<20 {
			return status.Errorf(codes.InvalidArgument, "log chunk of %d bytes; send at most 1 MiB per chunk", len(c.GetData()))
		}
		if s.fsm.Store().Snapshot().Alloc(model.AllocID(c.GetAllocId())) == nil {
			return status.Errorf(codes.NotFound, "allocation %q does not exist", c.GetAllocId())
		}
		if err := s.logs.append(c); err != nil {
			return status.Error(codes.Internal, err.Error())
		}
		s.logsChanged()
	}
}

// logsChanged wakes log followers.
func (s *Server) logsChanged() {
	s.logMu.Lock()
	close(s.logCh)
	s.logCh = make(chan struct{})
	s.logMu.Unlock()
}

func (s *Server) logsSignal() <-chan struct{} {
	s.logMu.Lock()
	defer s.logMu.Unlock()
	return s.logCh
}

func (js *jobService) Logs(req *api.LogsRequest, stream grpc.ServerStreamingServer[api.LogChunk]) error {
	s := js.s
	id := model.JobID(req.GetId())
	if _, err := s.readSnapshot(stream.Context(), false); err != nil {
		return err
	}
	offset := max(req.GetOffset(), 0)
	buf := make([]byte, 64<<10)
	for {
		wake := s.logsSignal()
		changed := s.fsm.Changed()
		j := s.fsm.Store().Snapshot().Job(id)
		if j == nil {
			return status.Errorf(codes.NotFound, "job %d does not exist", id)
		}
		ended := j.State.Terminal()
		f, err := os.Open(s.logs.path(uint64(id)))
		if err == nil {
			for {
				n, rerr := f.ReadAt(buf, offset)
				if n > 0 {
					if err := stream.Send(&api.LogChunk{Job: uint64(id), Offset: offset, Data: append([]byte(nil), buf[:n]...)}); err != nil {
						f.Close()
						return err
					}
					offset += int64(n)
				}
				if rerr != nil {
					break
				}
			}
			f.Close()
		} else if !os.IsNotExist(err) {
			return status.Errorf(codes.Internal, "read job log: %v", err)
		}
		if !req.GetFollow() || ended {
			return nil
		}
		select {
		case <-stream.Context().Done():
			return stream.Context().Err()
		case <-s.stop:
			return nil
		case <-wake:
		case <-changed:
		case <-time.After(5 * time.Second):
		}
	}
}
