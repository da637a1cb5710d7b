package agent

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"

	"vhpc/api"
	"vhpc/client"
	"vhpc/imagestore"
	"vhpc/nodeagent/runner"
	"vhpc/scheduler/model"
)

// ImageCache is where the agent gets a job's catalog image: pulled by
// digest on first use, pinned while the job runs (imagestore.Cache, or
// MasterImageCache that opens one on first use).
type ImageCache interface {
	Acquire(ctx context.Context, ref string, fn func(done, total int64)) (*imagestore.Lease, error)
	// CachedDigests lists the digests of the images ready in the cache,
	// sorted; the heartbeat reports them so the master prefers this node
	// for jobs that boot them. It must not block on a pull.
	CachedDigests() []string
}

var (
	_ ImageCache = (*imagestore.Cache)(nil)
	_ ImageCache = (*MasterImageCache)(nil)
)

// DefaultImageCacheBytes bounds a node's image cache when nothing else is said.
const DefaultImageCacheBytes = 64 << 30

// MasterImageCache is an image cache in Dir whose registry is the one the
// master names (JobService.DataStore): it opens the imagestore.Cache on the
// first Acquire, so an agent needs no registry flag and starts before the
// master is up. RunLocal gives every agent one.
type MasterImageCache struct {
	Dir        string
	LimitBytes int64
	Client     *client.Client
	Logger     *slog.Logger

	mu     sync.Mutex
	cache  *imagestore.Cache
	opened atomic.Pointer[imagestore.Cache] // cache, for readers that must not wait on mu
}

// Acquire implements ImageCache: it asks the master for the registry once,
// then delegates to imagestore.Cache.Acquire.
func (m *MasterImageCache) Acquire(ctx context.Context, ref string, fn func(done, total int64)) (*imagestore.Lease, error) {
	c, err := m.open(ctx)
	if err != nil {
		return nil, err
	}
	return c.Acquire(ctx, ref, fn)
}

// CachedDigests implements ImageCache: nil until the cache is open (Open
// at agent start, or the first Acquire), then
// imagestore.Cache.CachedDigests. It never waits for open, which asks the
// master.
func (m *MasterImageCache) CachedDigests() []string {
	if c := m.opened.Load(); c != nil {
		return c.CachedDigests()
	}
	return nil
}

// Open opens the cache now (asking the master for the registry), so that
// the images already on disk from before an agent restart are reported
// with the first heartbeats rather than after the first job's pull. The
// agent calls it once it has registered; an error is left for Acquire to
// meet again.
func (m *MasterImageCache) Open(ctx context.Context) error {
	_, err := m.open(ctx)
	return err
}

func (m *MasterImageCache) open(ctx context.Context) (*imagestore.Cache, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.cache != nil {
		return m.cache, nil
	}
	reg, err := askStore(ctx, m.Client) // data.go
	if err != nil {
		return nil, fmt.Errorf("image cache: %w", err)
	}
	limit := m.LimitBytes
	if limit <= 0 {
		limit = DefaultImageCacheBytes
	}
	c, err := imagestore.OpenCache(imagestore.CacheConfig{Dir: m.Dir, LimitBytes: limit, Registry: reg, Options: imagestore.Options{Logger: m.Logger}})
	if err != nil {
		return nil, err
	}
	m.cache = c
	m.opened.Store(c)
	return c, nil
}

// acquireImage pulls (or finds) an allocation's catalog image and pins it
// until the lease is released; while it pulls, the allocation's reason
// says how far ("pulling image public/python:1, 0.4 of 1.2 GiB").
func (a *Agent) acquireImage(ctx, reportCtx context.Context, al *api.Allocation, log *slog.Logger) (*imagestore.Lease, error) {
	if a.cfg.Images == nil {
		return nil, fmt.Errorf("job image %s: this agent has no image cache", al.GetImageRef())
	}
	dept, name, _, ok := model.SplitImageRef(al.GetImageRef())
	if !ok {
		return nil, fmt.Errorf("job image %q: not department/name:tag", al.GetImageRef())
	}
	ref := dept + "/" + name + "@" + al.GetImageDigest()
	var last time.Time
	fn := func(done, total int64) {
		if done < total && time.Since(last) < time.Second {
			return
		}
		last = time.Now()
		a.reportAsync(reportCtx, al, runner.Result{State: model.AllocStarting,
			Reason: fmt.Sprintf("pulling image %s, %s of %s", al.GetImageRef(), gib(done), gib(total))})
	}
	maxWait := a.cfg.RegistryRetryMax
	if maxWait <= 0 {
		maxWait = DefaultRegistryRetryMax
	}
	for wait := min(time.Second, maxWait); ; wait = min(2*wait, maxWait) {
		lease, err := a.cfg.Images.Acquire(ctx, ref, fn)
		if err == nil {
			log.Info("job image ready", "image", al.GetImageRef(), "digest", al.GetImageDigest(), "pulled", lease.Pulled, "dir", lease.Image.Dir)
			return lease, nil
		}
		err = fmt.Errorf("image %s (%s): %w", al.GetImageRef(), al.GetImageDigest(), err)
		if ctx.Err() != nil || !registryUnavailable(err) {
			return nil, err
		}
		// The registry (or the master that names it) is down: nothing is
		// wrong with the job or this node, so the job waits, saying why.
		log.Warn("image registry unavailable; the job waits", "err", err, "retry_in", wait)
		a.reportAsync(reportCtx, al, runner.Result{State: model.AllocStarting,
			Reason: fmt.Sprintf("waiting for the image registry (retrying every %s): %v", wait, err)})
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-time.After(wait):
		}
	}
}

// DefaultRegistryRetryMax is the longest pause between two tries to pull
// an image while the registry is unavailable.
const DefaultRegistryRetryMax = 30 * time.Second

// registryUnavailable reports whether a failed Acquire may succeed later
// unchanged: the registry is unreachable or overloaded, or no master
// answers the question of which registry to use.
func registryUnavailable(err error) bool {
	return imagestore.Unavailable(err) || errors.Is(err, errMasterUnreachable)
}

// errMasterUnreachable: no master answered which registry to pull from.
var errMasterUnreachable = errors.New("no master answered which registry to use")

// imageFailure is the allocation's end when its image could not be had:
// cancelled when the master stopped it meanwhile; requeued (another node,
// no retry used) when the registry served bytes that do not match their
// digest or the image does not fit here (the partial pull is already
// removed; the blob is the registry's fault, not this node's, so the node
// is not marked); failed otherwise (e.g. the registry no longer has it).
func imageFailure(runCtx context.Context, err error, log *slog.Logger) runner.Result {
	switch {
	case runCtx.Err() != nil:
		return runner.Result{State: model.AllocCancelled, Reason: "stopped at the master's request while pulling the image"}
	case errors.Is(err, imagestore.ErrDigestMismatch):
		log.Error("the job's image did not match its digest; evicted, the job goes back to the queue", "err", err)
		return runner.Result{State: model.AllocRequeued, ExitCode: -1,
			Reason: fmt.Sprintf("the registry's bytes did not match the digest, so nothing was kept: %v", err)}
	case imagestore.NoSpace(err):
		log.Error("no room for the job's image on this node; the job goes back to the queue", "err", err)
		return runner.Result{State: model.AllocRequeued, ExitCode: -1, Reason: fmt.Sprintf("no room for the image on this node: %v", err)}
	}
	log.Error("cannot get the job's image", "err", err)
	return runner.Result{State: model.AllocFailed, ExitCode: -1, Reason: err.Error()}
}

func gib(n int64) string { return fmt.Sprintf("%.1f GiB", float64(n)/(1<<30)) }

// imageCacheDir is the cache of catalog images under an agent's state dir.
func imageCacheDir(stateDir string) string { return filepath.Join(stateDir, "image-cache") }
