package imagestore

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
)

// ErrCacheFull is wrapped when an image does not fit in the cache even after
// evicting every image no job pins.
var ErrCacheFull = errors.New("image cache full")

// CacheConfig configures a node's image cache.
type CacheConfig struct {
	// Dir holds one directory per image, named by the manifest digest's hex,
	// and its manifest next to it (<hex>.manifest.json).
	Dir string
	// LimitBytes bounds the bytes of all cached image directories; > 0.
	LimitBytes int64
	// Registry is the URL images are pulled from.
	Registry string
	// Options pass through to Pull (Logger, Transport).
	Options Options
}

// Cache keeps pulled images on a node: at most LimitBytes of image files,
// least recently used first out, never an image a Lease pins. The node
// agent holds one per node; it is safe for concurrent use.
type Cache struct {
	cfg CacheConfig

	mu      sync.Mutex
	entries map[string]*cacheEntry // by digest "sha256:..."
	used    int64                  // bytes of entries, pulling ones included
	tick    uint64                 // LRU clock
}

type cacheEntry struct {
	digest  string
	size    int64
	pins    int
	lastUse uint64
	pulling chan struct{} // closed when the pull ends; nil once ready
	image   *Image
}

// CacheEntry describes one cached image (Cache.Entries).
type CacheEntry struct {
	Digest string
	Bytes  int64
	Pins   int
}

// OpenCache opens (creating) a cache directory: complete images found there
// are kept, in their last-use order (the manifest file's mtime); leftovers
// of interrupted pulls are removed. Called once by the node agent.
func OpenCache(cfg CacheConfig) (*Cache, error) {
	if cfg.LimitBytes <= 0 {
		return nil, fmt.Errorf("image cache: size limit %d; want > 0 bytes", cfg.LimitBytes)
	}
	if err := os.MkdirAll(cfg.Dir, 0o755); err != nil {
		return nil, fmt.Errorf("image cache: %w", err)
	}
	c := &Cache{cfg: cfg, entries: map[string]*cacheEntry{}}
	des, err := os.ReadDir(cfg.Dir)
	if err != nil {
		return nil, fmt.Errorf("image cache: %w", err)
	}
	type found struct {
		e     *cacheEntry
		mtime time.Time
	}
	var keep []found
	for _, de := range des {
		n := de.Name()
		path := filepath.Join(cfg.Dir, n)
		switch {
		case strings.HasPrefix(n, "."):
			os.RemoveAll(path) // an interrupted pull
		case strings.HasSuffix(n, ".manifest.json"):
			hexd := strings.TrimSuffix(n, ".manifest.json")
			im, err := c.load(hexd)
			if err != nil {
				os.Remove(path)
				os.RemoveAll(filepath.Join(cfg.Dir, hexd))
				continue
			}
			info, _ := de.Info()
			e := &cacheEntry{digest: im.Digest, size: im.FileSize(), image: im}
			keep = append(keep, found{e, info.ModTime()})
		}
	}
	sort.Slice(keep, func(i, j int) bool { return keep[i].mtime.Before(keep[j].mtime) })
	for _, f := range keep {
		c.tick++
		f.e.lastUse = c.tick
		c.entries[f.e.digest] = f.e
		c.used += f.e.size
	}
	// Image directories without a manifest never finished.
	for _, de := range des {
		if de.IsDir() && !strings.HasPrefix(de.Name(), ".") {
			if _, ok := c.entries["sha256:"+de.Name()]; !ok {
				os.RemoveAll(filepath.Join(cfg.Dir, de.Name()))
			}
		}
	}
	return c, nil
}

func (c *Cache) load(hexd string) (*Image, error) {
	raw, err := os.ReadFile(filepath.Join(c.cfg.Dir, hexd+".manifest.json"))
	if err != nil {
		return nil, err
	}
	sum := sha256.Sum256(raw)
	if hex.EncodeToString(sum[:]) != hexd {
		return nil, fmt.Errorf("%w: cached manifest %s", ErrDigestMismatch, hexd)
	}
	var m v1.Manifest
	if err := json.Unmarshal(raw, &m); err != nil {
		return nil, err
	}
	dir := filepath.Join(c.cfg.Dir, hexd)
	config, err := os.ReadFile(filepath.Join(dir, ConfigFile))
	if err != nil {
		return nil, err
	}
	return &Image{Digest: "sha256:" + hexd, Manifest: m, Config: config, RawManifest: raw, Dir: dir}, nil
}

// Lease pins a cached image until Release: the cache never evicts it.
type Lease struct {
	// Image is the cached image; Image.Dir is the directory to boot from.
	Image *Image
	// Pulled says this Acquire pulled the image (it was not cached).
	Pulled bool

	c    *Cache
	once sync.Once
}

// Release unpins the image (it stays cached until evicted). Idempotent.
func (l *Lease) Release() {
	l.once.Do(func() {
		l.c.mu.Lock()
		defer l.c.mu.Unlock()
		if e := l.c.entries[l.Image.Digest]; e != nil && e.pins > 0 {
			e.pins--
		}
	})
}

// Acquire returns the image ref ("repo@sha256:...") from the cache, pulling
// it first when it is missing (one pull per digest however many callers
// wait; progress goes to the first caller's fn), and pins it until the
// Lease is released. To make room it evicts the least recently used images
// no lease pins; when that is not enough the error wraps ErrCacheFull and
// nothing was evicted. A failed pull leaves nothing in the cache. Called by
// the node agent before it boots a job.
func (c *Cache) Acquire(ctx context.Context, ref string, fn func(done, total int64)) (*Lease, error) {
	repoName, _, digest := SplitRef(ref)
	if digest == "" {
		return nil, fmt.Errorf("image cache: %s: want a reference by digest (repo@sha256:...)", ref)
	}
	h, err := v1.NewHash(digest)
	if err != nil || h.Algorithm != "sha256" {
		return nil, fmt.Errorf("image cache: %s: want a sha256 digest", ref)
	}
	for {
		c.mu.Lock()
		e := c.entries[digest]
		if e != nil && e.pulling == nil {
			e.pins++
			c.tick++
			e.lastUse = c.tick
			c.mu.Unlock()
			now := time.Now()
			_ = os.Chtimes(c.manifestPath(h.Hex), now, now) // last use across restarts; best effort
			return &Lease{Image: e.image, c: c}, nil
		}
		if e != nil {
			wait := e.pulling
			c.mu.Unlock()
			select {
			case <-wait:
				continue
			case <-ctx.Done():
				return nil, ctx.Err()
			}
		}
		c.mu.Unlock()
		return c.pull(ctx, repoName, h, ref, fn)
	}
}

func (c *Cache) manifestPath(hexd string) string {
	return filepath.Join(c.cfg.Dir, hexd+".manifest.json")
}

// pull fetches the manifest, makes room, and pulls; the entry is visible
// (pulling) meanwhile so that other Acquires wait for it.
func (c *Cache) pull(ctx context.Context, repoName string, h v1.Hash, ref string, fn func(done, total int64)) (*Lease, error) {
	repo, err := repository(c.cfg.Registry, repoName)
	if err != nil {
		return nil, fmt.Errorf("image cache: %w", err)
	}
	d, err := name.NewDigest(repo.String()+"@"+h.String(), name.StrictValidation)
	if err != nil {
		return nil, fmt.Errorf("image cache: %w", err)
	}
	im, err := fetchManifest(ctx, d, c.cfg.Options)
	if err != nil {
		return nil, fmt.Errorf("image cache: pull %s: %w", ref, err)
	}
	im.Ref = ref
	size := im.FileSize()

	c.mu.Lock()
	if e := c.entries[h.String()]; e != nil { // another caller started meanwhile
		c.mu.Unlock()
		return c.Acquire(ctx, ref, fn)
	}
	if err := c.makeRoomLocked(size); err != nil {
		c.mu.Unlock()
		return nil, fmt.Errorf("image cache: pull %s: %w", ref, err)
	}
	e := &cacheEntry{digest: h.String(), size: size, pins: 1, pulling: make(chan struct{})}
	c.entries[e.digest] = e
	c.used += size
	c.mu.Unlock()

	o := c.cfg.Options
	o.Progress = fn
	dir := filepath.Join(c.cfg.Dir, h.Hex)
	os.RemoveAll(dir) // a directory without a manifest is an interrupted pull
	perr := pullInto(ctx, repo, im, dir, o)
	if perr == nil {
		perr = writeFile(c.manifestPath(h.Hex), bytes.NewReader(im.RawManifest), nil)
		if perr != nil {
			os.RemoveAll(dir)
		}
	}

	c.mu.Lock()
	defer c.mu.Unlock()
	close(e.pulling)
	e.pulling = nil
	if perr != nil {
		delete(c.entries, e.digest)
		c.used -= size
		return nil, fmt.Errorf("image cache: pull %s: %w", ref, perr)
	}
	e.image = im
	c.tick++
	e.lastUse = c.tick
	return &Lease{Image: im, Pulled: true, c: c}, nil
}

// makeRoomLocked evicts unpinned entries, least recently used first, until
// need more bytes fit; it evicts nothing when they cannot fit.
func (c *Cache) makeRoomLocked(need int64) error {
	if c.used+need <= c.cfg.LimitBytes {
		return nil
	}
	var cand []*cacheEntry
	free := c.cfg.LimitBytes - c.used
	for _, e := range c.entries {
		if e.pins == 0 && e.pulling == nil {
			cand = append(cand, e)
			free += e.size
		}
	}
	if free < need {
		return fmt.Errorf("%w: the image needs %d bytes; the limit is %d and %d are held by images in use", ErrCacheFull, need, c.cfg.LimitBytes, c.cfg.LimitBytes-free)
	}
	sort.Slice(cand, func(i, j int) bool { return cand[i].lastUse < cand[j].lastUse })
	for _, e := range cand {
		if c.used+need <= c.cfg.LimitBytes {
			break
		}
		c.removeLocked(e)
	}
	return nil
}

func (c *Cache) removeLocked(e *cacheEntry) {
	hexd := strings.TrimPrefix(e.digest, "sha256:")
	os.Remove(c.manifestPath(hexd))
	os.RemoveAll(filepath.Join(c.cfg.Dir, hexd))
	delete(c.entries, e.digest)
	c.used -= e.size
}

// Verify re-reads a cached image's files and checks them against its
// manifest; on a mismatch it evicts the image (pinned or not: its bytes are
// wrong) and returns an error wrapping ErrDigestMismatch. The agent calls it
// when a boot fails; tests call it after changing a file.
func (c *Cache) Verify(digest string) error {
	c.mu.Lock()
	e := c.entries[digest]
	c.mu.Unlock()
	if e == nil || e.pulling != nil {
		return fmt.Errorf("image cache: %s is not cached", digest)
	}
	err := verifyDir(e.image)
	if err != nil {
		c.mu.Lock()
		if c.entries[digest] == e {
			c.removeLocked(e)
		}
		c.mu.Unlock()
		return fmt.Errorf("image cache: %s: %w (evicted)", digest, err)
	}
	return nil
}

func verifyDir(im *Image) error {
	cfg, _, err := hashFile(filepath.Join(im.Dir, ConfigFile))
	if err != nil {
		return err
	}
	if cfg != im.Manifest.Config.Digest {
		return fmt.Errorf("%w: %s is %s, want %s", ErrDigestMismatch, ConfigFile, cfg, im.Manifest.Config.Digest)
	}
	for _, l := range im.Manifest.Layers {
		title := l.Annotations[AnnotationTitle]
		got, _, err := hashFile(filepath.Join(im.Dir, title))
		if err != nil {
			return err
		}
		want := l.Annotations[AnnotationUncompressedDigest]
		if want == "" {
			want = l.Digest.String()
		}
		if got.String() != want {
			return fmt.Errorf("%w: %s is %s, want %s", ErrDigestMismatch, title, got, want)
		}
	}
	return nil
}

// Entries lists the cached images (and those being pulled), least recently
// used first.
func (c *Cache) Entries() []CacheEntry {
	c.mu.Lock()
	defer c.mu.Unlock()
	es := make([]*cacheEntry, 0, len(c.entries))
	for _, e := range c.entries {
		es = append(es, e)
	}
	sort.Slice(es, func(i, j int) bool { return es[i].lastUse < es[j].lastUse })
	out := make([]CacheEntry, len(es))
	for i, e := range es {
		out[i] = CacheEntry{Digest: e.digest, Bytes: e.size, Pins: e.pins}
	}
	return out
}

// UsedBytes is the bytes the cache holds (pulls in progress included).
func (c *Cache) UsedBytes() int64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.used
}
