package server

import (
	"context"
	"fmt"
	"time"

	"vhpc/scheduler/fsm"
	"vhpc/scheduler/model"
)

// maxSubmitBatch bounds how many submissions share one log entry.
const maxSubmitBatch = 1024

type pendingSubmit struct {
	job  model.Job
	done chan submitOutcome
}

type submitOutcome struct {
	res fsm.SubmitResult
	err error
}

// enqueue hands one validated job to the batcher and waits for its commit.
func (s *Server) enqueue(ctx context.Context, j model.Job) (fsm.SubmitResult, error) {
	p := &pendingSubmit{job: j, done: make(chan submitOutcome, 1)}
	select {
	case s.submits <- p:
	case <-ctx.Done():
		return fsm.SubmitResult{}, ctx.Err()
	case <-s.stop:
		return fsm.SubmitResult{}, fmt.Errorf("server is shutting down")
	}
	select {
	case o := <-p.done:
		return o.res, o.err
	case <-ctx.Done():
		// The entry may still commit; the client retries with the same
		// token and gets that job back.
		return fsm.SubmitResult{}, ctx.Err()
	}
}

// submitLoop batches concurrent submissions into one SubmitJobs entry: it
// takes whatever is waiting (up to maxSubmitBatch), proposes it, and keeps
// collecting the next batch while Raft commits the previous one.
func (s *Server) submitLoop() {
	inflight := make(chan struct{}, 4)
	for {
		var batch []*pendingSubmit
		select {
		case p := <-s.submits:
			batch = append(batch, p)
		case <-s.stop:
			return
		}
	drain:
		for len(batch) < maxSubmitBatch {
			select {
			case p := <-s.submits:
				batch = append(batch, p)
			default:
				break drain
			}
		}
		inflight <- struct{}{}
		go func() {
			defer func() { <-inflight }()
			s.commitBatch(batch)
		}()
	}
}

func (s *Server) commitBatch(batch []*pendingSubmit) {
	e := fsm.SubmitJobs{Time: s.cfg.Now().UTC(), Jobs: make([]model.Job, len(batch))}
	for i, p := range batch {
		e.Jobs[i] = p.job
	}
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	out, err := s.apply(ctx, fsm.EntrySubmitJobs, &e)
	res, _ := out.([]fsm.SubmitResult)
	if err == nil && len(res) != len(batch) {
		err = fmt.Errorf("commit returned %d results for %d jobs", len(res), len(batch))
	}
	for i, p := range batch {
		if err != nil {
			p.done <- submitOutcome{err: err}
			continue
		}
		p.done <- submitOutcome{res: res[i]}
	}
	s.metrics.batch.Observe(float64(len(batch)))
}
