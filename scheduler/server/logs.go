package server

import (
	"encoding/json"
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

// logStore appends agents' output chunks to per-job files, dropping what it
// already has of an allocation: agents resend from their own offset after
// a reconnect or a restart. How much of each allocation a job file holds is
// kept beside it (<job>.offsets), so a restarted master does not append
// the same output twice.
type logStore struct {
	dir  string
	mu   sync.Mutex
	seen map[uint64]map[string]int64 // job -> alloc id -> bytes appended
}

func (l *logStore) path(job uint64) string {
	return filepath.Join(l.dir, strconv.FormatUint(job, 10)+".log")
}

func (l *logStore) offsetsPath(job uint64) string {
	return filepath.Join(l.dir, strconv.FormatUint(job, 10)+".offsets")
}

// offsets returns the per-allocation byte counts of a job, loading them
// from disk the first time. l.mu is held.
func (l *logStore) offsets(job uint64) map[string]int64 {
	if m, ok := l.seen[job]; ok {
		return m
	}
	m := map[string]int64{}
	if b, err := os.ReadFile(l.offsetsPath(job)); err == nil {
		_ = json.Unmarshal(b, &m) // unreadable: start over; at worst output repeats
	}
	l.seen[job] = m
	return m
}

func (l *logStore) append(c *api.LogChunk) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	seen := l.offsets(c.GetJob())
	have := seen[c.GetAllocId()]
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
	seen[c.GetAllocId()] = have + int64(len(data))
	b, err := json.Marshal(seen)
	if err != nil {
		return fmt.Errorf("encode log offsets: %w", err)
	}
	tmp := l.offsetsPath(c.GetJob()) + ".tmp"
	if err := os.WriteFile(tmp, b, 0o640); err != nil {
		return fmt.Errorf("write log offsets: %w", err)
	}
	if err := os.Rename(tmp, l.offsetsPath(c.GetJob())); err != nil {
		return fmt.Errorf("write log offsets: %w", err)
	}
	return nil
}

// PushLogs implements NodeService.PushLogs (contract in api/vhpc.proto).
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
		al := s.fsm.Store().Snapshot().Alloc(model.AllocID(c.GetAllocId()))
		if al == nil {
			return status.Errorf(codes.NotFound, "allocation %q does not exist", c.GetAllocId())
		}
		if uint64(al.Job) != c.GetJob() {
			return status.Errorf(codes.InvalidArgument, "allocation %s belongs to job %d, not %d", al.ID, al.Job, c.GetJob())
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

// Logs implements JobService.Logs (contract in api/vhpc.proto).
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
