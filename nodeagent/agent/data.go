package agent

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"vhpc/api"
	"vhpc/client"
	"vhpc/imagestore"
	"vhpc/jobdata"
	"vhpc/nodeagent/runner"
	"vhpc/scheduler/model"
)

// askStore asks the master for the cluster's store (JobService.DataStore):
// the registry URL that images and job files live in. An unreachable
// master wraps errMasterUnreachable; a master without one says how to
// start it with one.
func askStore(ctx context.Context, c *client.Client) (string, error) {
	if c == nil {
		return "", errors.New("no client to ask the master for its registry")
	}
	var info *api.DataStoreInfo
	err := c.Do(ctx, func(ctx context.Context, conn *grpc.ClientConn) error {
		var err error
		info, err = client.Jobs(conn).DataStore(ctx, &api.DataStoreRequest{})
		return err
	})
	switch {
	case status.Code(err) == codes.FailedPrecondition:
		return "", fmt.Errorf("the master knows no registry: %s", status.Convert(err).Message())
	case err != nil:
		return "", fmt.Errorf("%w: %w", errMasterUnreachable, err)
	}
	return info.GetRegistry(), nil
}

// MasterJobData is the runner's JobData over the store the master names:
// it asks once (JobService.DataStore), then pulls and pushes file sets
// with package jobdata. A store that is briefly unavailable is retried a
// few times before the task fails. RunLocal gives every agent one.
type MasterJobData struct {
	Client *client.Client
	Logger *slog.Logger
	// Retries bounds the tries while the store is unavailable (0: 5,
	// backing off 1, 2, 4, 8 s).
	Retries int
	// DatasetDir holds the node's dataset cache (AcquireDataset), at
	// most DatasetLimitBytes (0: DefaultDatasetCacheBytes).
	DatasetDir        string
	DatasetLimitBytes int64

	mu       sync.Mutex
	registry string
	datasets *jobdata.Cache
}

// DefaultDatasetCacheBytes bounds a node's dataset cache when nothing else
// is said.
const DefaultDatasetCacheBytes = 256 << 30

// AcquireDataset implements DatasetCache: it pins the dataset digest of
// department in the node's cache (pulling it once) and returns its
// directory.
func (d *MasterJobData) AcquireDataset(ctx context.Context, department, digest string) (string, func(), error) {
	c, err := d.datasetCache()
	if err != nil {
		return "", nil, err
	}
	var dir string
	var release func()
	err = d.retry(ctx, "dataset "+digest, func(s jobdata.Store) error {
		var err error
		dir, release, err = c.Acquire(ctx, s.Registry, jobdata.RepositoryName(department), digest)
		return err
	})
	return dir, release, err
}

func (d *MasterJobData) datasetCache() (*jobdata.Cache, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.datasets != nil {
		return d.datasets, nil
	}
	if d.DatasetDir == "" {
		return nil, errors.New("this agent has no dataset cache directory")
	}
	limit := d.DatasetLimitBytes
	if limit <= 0 {
		limit = DefaultDatasetCacheBytes
	}
	c, err := jobdata.OpenCache(d.DatasetDir, limit, imagestore.Options{Logger: d.log()})
	if err != nil {
		return nil, err
	}
	d.datasets = c
	return c, nil
}

var _ runner.JobData = (*MasterJobData)(nil)

func (d *MasterJobData) store(ctx context.Context) (string, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.registry != "" {
		return d.registry, nil
	}
	reg, err := askStore(ctx, d.Client)
	if err != nil {
		return "", fmt.Errorf("job data: %w", err)
	}
	d.registry = reg
	return reg, nil
}

func (d *MasterJobData) log() *slog.Logger {
	if d.Logger != nil {
		return d.Logger
	}
	return slog.Default()
}

// retry runs fn against the store until it succeeds, fails for good, or
// has been tried Retries times while the store was unavailable.
func (d *MasterJobData) retry(ctx context.Context, what string, fn func(jobdata.Store) error) error {
	tries := d.Retries
	if tries <= 0 {
		tries = 5
	}
	wait := time.Second
	for i := 1; ; i++ {
		reg, err := d.store(ctx)
		if err == nil {
			err = fn(jobdata.Store{Registry: reg, Options: imagestore.Options{Logger: d.Logger}})
		}
		if err == nil || i >= tries || ctx.Err() != nil || !(imagestore.Unavailable(err) || errors.Is(err, errMasterUnreachable)) {
			return err
		}
		d.log().Warn("job data store unavailable; retrying", "what", what, "err", err, "retry_in", wait)
		select {
		case <-ctx.Done():
			return err
		case <-time.After(wait):
		}
		wait *= 2
	}
}

// FetchInputs implements runner.JobData (jobdata.Store.FetchInputs).
func (d *MasterJobData) FetchInputs(ctx context.Context, repoName, digest, workDir string) error {
	return d.retry(ctx, "inputs "+digest, func(s jobdata.Store) error {
		return s.FetchInputs(ctx, repoName, digest, workDir)
	})
}

// PushOutputs implements runner.JobData (jobdata.Store.PushOutputs).
func (d *MasterJobData) PushOutputs(ctx context.Context, repoName, workDir string, stages []runner.Stage, limit int64) (*model.Outputs, error) {
	var out *model.Outputs
	err := d.retry(ctx, "outputs", func(s jobdata.Store) error {
		var err error
		out, err = s.PushOutputs(ctx, repoName, workDir, stages, limit)
		return err
	})
	return out, err
}

// DatasetCache pins a job's read-only datasets on this node
// (MasterJobData over jobdata.Cache).
type DatasetCache interface {
	AcquireDataset(ctx context.Context, department, digest string) (dir string, release func(), err error)
}

var _ DatasetCache = (*MasterJobData)(nil)

// acquireDatasets pins every dataset of the allocation and returns them
// for the runner with one release for all; on error nothing stays pinned.
func (a *Agent) acquireDatasets(ctx context.Context, al *api.Allocation, department string) ([]runner.Dataset, func(), error) {
	if len(al.GetDatasets()) == 0 {
		return nil, func() {}, nil
	}
	if a.cfg.Datasets == nil {
		return nil, nil, errors.New("the job mounts datasets, but this agent has no dataset cache")
	}
	var out []runner.Dataset
	var releases []func()
	releaseAll := func() {
		for _, r := range releases {
			r()
		}
	}
	for _, d := range al.GetDatasets() {
		a.reportAsync(ctx, al, runner.Result{State: model.AllocStarting, Reason: "fetching dataset " + d.GetRef()}, nil)
		dir, release, err := a.cfg.Datasets.AcquireDataset(ctx, department, d.GetDigest())
		if err != nil {
			releaseAll()
			return nil, nil, fmt.Errorf("dataset %s: %w", d.GetRef(), err)
		}
		releases = append(releases, release)
		out = append(out, runner.Dataset{Name: d.GetName(), Dir: dir})
	}
	return out, releaseAll, nil
}
