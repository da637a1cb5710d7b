package server

import (
	"context"
	"errors"
	"time"

	"vhpc/jobdata"
	"vhpc/scheduler/fsm"
	"vhpc/scheduler/model"
	"vhpc/scheduler/state"
	"vhpc/security/regtoken"
)

// retentionBatch bounds the jobs one ExpireArtifacts entry marks.
const retentionBatch = 256

// retentionLoop deletes the stored file sets of jobs that ended more than
// Config.Retention ago, every Config.RetentionInterval, while this member
// leads.
func (s *Server) retentionLoop(ctx context.Context) {
	if s.cfg.ImageRegistry == "" {
		return // no store, nothing stored
	}
	tick := time.NewTicker(s.cfg.RetentionInterval)
	defer tick.Stop()
	for {
		if n, err := s.expireOnce(ctx); err != nil {
			s.log.Warn("artifact retention: will retry", "expired_jobs", n, "err", err)
		} else if n > 0 {
			s.log.Info("artifact retention: deleted the file sets of finished jobs", "jobs", n, "retention", s.cfg.Retention)
		}
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
	}
}

// expireOnce deletes the file sets of the jobs due, keeping any set that a
// job not yet due still names (two jobs may share inputs, or produce the
// same outputs), and records them as expired. It returns how many jobs it
// marked.
func (s *Server) expireOnce(ctx context.Context) (int, error) {
	snap := s.fsm.Store().Snapshot()
	due, kept := dueArtifacts(snap, s.cfg.Now().Add(-s.cfg.Retention))
	if len(due) == 0 {
		return 0, nil
	}
	var marked []model.JobID
	var errs []error
	for _, j := range due {
		err := s.deleteSets(ctx, j, fsm.ArtifactsOf(snap, j), kept)
		if err != nil {
			errs = append(errs, err)
			continue // stays due: tried again next round
		}
		marked = append(marked, j.ID)
	}
	for len(marked) > 0 {
		n := min(len(marked), retentionBatch)
		if _, err := s.apply(ctx, fsm.EntryExpireArtifacts, &fsm.ExpireArtifacts{Time: s.cfg.Now().UTC(), Jobs: marked[:n]}); err != nil {
			return 0, errors.Join(append(errs, err)...)
		}
		marked = marked[n:]
	}
	return len(due) - len(errs), errors.Join(errs...)
}

// dueArtifacts splits the jobs that keep file sets into those that ended
// before cutoff (due) and the sets the others still name (kept; a
// department's inputs may be shared by several jobs).
func dueArtifacts(snap *state.Snapshot, cutoff time.Time) (due []*model.Job, kept map[fsm.StoredSet]bool) {
	kept = map[fsm.StoredSet]bool{}
	for j := range snap.Jobs() {
		if !j.ArtifactsExpired.IsZero() {
			continue
		}
		sets := fsm.ArtifactsOf(snap, j)
		if len(sets) == 0 {
			continue
		}
		if j.State.Terminal() && !j.EndTime.IsZero() && j.EndTime.Before(cutoff) {
			due = append(due, j)
			continue
		}
		for set := range sets {
			kept[storedIn(j, set)] = true
		}
	}
	return due, kept
}

// deleteSets removes the job's file sets from their repositories (the
// department's, the job's own), except those in kept.
func (s *Server) deleteSets(ctx context.Context, j *model.Job, sets map[fsm.StoredSet]int64, kept map[fsm.StoredSet]bool) error {
	dctx, cancel := context.WithTimeout(ctx, inspectTimeout)
	defer cancel()
	for set := range sets {
		at := storedIn(j, set)
		if kept[at] {
			continue
		}
		if err := jobdata.Delete(dctx, s.cfg.ImageRegistry, at.Repository, at.Digest, s.RegistryOptions(at.Repository, regtoken.ActionDelete)); err != nil {
			return err
		}
	}
	return nil
}

// storedIn resolves set of job j: an empty repository is the department's.
func storedIn(j *model.Job, set fsm.StoredSet) fsm.StoredSet {
	if set.Repository == "" {
		set.Repository = jobdata.RepositoryName(j.Department)
	}
	return set
}
