package jobdata

import (
	"context"
	"errors"
	"fmt"

	"vhpc/imagestore"
	"vhpc/scheduler/model"
)

// Store moves one task's files between a registry and its work directory;
// it is the node runner's JobData (the agent wraps it to learn the
// registry from the master and to retry while it is unavailable).
type Store struct {
	// Registry is the registry URL.
	Registry string
	Options  imagestore.Options
}

// FetchInputs lays out the file set digest of repository repoName under
// workDir (Pull).
func (s Store) FetchInputs(ctx context.Context, repoName, digest, workDir string) error {
	_, err := Pull(ctx, s.Registry, repoName, digest, workDir, s.Options)
	return err
}

// PushOutputs uploads the stages' sources that exist under workDir as one
// file set to repository repoName (the job's OutputRepositoryName), in path order up to limit bytes (0: no limit; negative:
// nothing, the department's quota is full). Sources that do
// not exist are listed in Missing. Over the limit, the rest is left out
// and the error says so, alongside the Outputs of what was stored.
func (s Store) PushOutputs(ctx context.Context, repoName, workDir string, stages []Stage, limit int64) (*model.Outputs, error) {
	c, err := Collect(workDir, stages, CollectOptions{AllowMissing: true})
	if err != nil {
		return nil, err
	}
	defer c.Close()
	out := &model.Outputs{Missing: c.Missing}
	var over error
	if limit != 0 {
		total := c.Bytes()
		if dropped := c.Limit(max(limit, 0)); len(dropped) > 0 {
			over = fmt.Errorf("the outputs hold %d bytes, more than the %d this task may store (the cluster's --max-output-bytes, or what is left of the department's data quota); kept the first %d files (%d bytes), left out %d files from %s on",
				total, max(limit, 0), len(c.Files), c.Bytes(), len(dropped), dropped[0].Path)
		}
	}
	if len(c.Files) == 0 {
		return out, over
	}
	p, err := Push(ctx, s.Registry, repoName, c, s.Options)
	if err != nil {
		return out, errors.Join(over, fmt.Errorf("upload: %w", err))
	}
	out.Digest, out.Bytes, out.Files, out.Repository = p.Digest, p.Bytes, p.Files, repoName
	if l := s.Options.Logger; l != nil {
		l.Info("outputs uploaded", "set", p.Digest, "files", p.Files, "bytes", p.Bytes, "sent_bytes", p.SentBytes)
	}
	return out, over
}
