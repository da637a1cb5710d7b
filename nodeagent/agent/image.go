package agent

import (
	"context"
	"fmt"
	"log/slog"
	"path/filepath"
	"sync"
	"time"

	"google.golang.org/grpc"

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
// master names (ImageService.List): it opens the imagestore.Cache on the
// first Acquire, so an agent needs no registry flag and starts before the
// master is up. RunLocal gives every agent one.
type MasterImageCache struct {
	Dir        string
	LimitBytes int64
	Client     *client.Client
	Logger     *slog.Logger

	mu    sync.Mutex
	cache *imagestore.Cache
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

// CachedDigests implements ImageCache: nil until the first Acquire opened
// the cache, then imagestore.Cache.CachedDigests. It never waits for open
// (which asks the master): while open holds the lock the cache is not
// there yet, so nil is the answer then too; a heartbeat that meets an
// Acquire's instant under the lock reports nil once, and the next one
// reports the images again.
func (m *MasterImageCache) CachedDigests() []string {
	if !m.mu.TryLock() {
		return nil
	}
	c := m.cache
	m.mu.Unlock()
	if c == nil {
		return nil
	}
	return c.CachedDigests()
}

func (m *MasterImageCache) open(ctx context.Context) (*imagestore.Cache, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.cache != nil {
		return m.cache, nil
	}
	var reg string
	err := m.Client.Do(ctx, func(ctx context.Context, conn *grpc.ClientConn) error {
		// "-" is no department of the catalog (its names start with a letter or digit): a short answer.
		ls, err := api.NewImageServiceClient(conn).List(ctx, &api.ListImagesRequest{Department: "-"})
		reg = ls.GetRegistry()
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("image cache: ask the master for its registry: %w", err)
	}
	if reg == "" {
		return nil, fmt.Errorf("image cache: the master knows no registry; start hpcd with --registry URL (hpcd dev starts one)")
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
	lease, err := a.cfg.Images.Acquire(ctx, ref, fn)
	if err != nil {
		return nil, fmt.Errorf("image %s (%s): %w", al.GetImageRef(), al.GetImageDigest(), err)
	}
	log.Info("job image ready", "image", al.GetImageRef(), "digest", al.GetImageDigest(), "pulled", lease.Pulled, "dir", lease.Image.Dir)
	return lease, nil
}

func gib(n int64) string { return fmt.Sprintf("%.1f GiB", float64(n)/(1<<30)) }

// imageCacheDir is the cache of catalog images under an agent's state dir.
func imageCacheDir(stateDir string) string { return filepath.Join(stateDir, "image-cache") }
