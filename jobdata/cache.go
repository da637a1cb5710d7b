package jobdata

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"vhpc/imagestore"
)

// Cache keeps datasets (read-only file sets) on a node: each is pulled
// once into Dir/<hex of its digest>/ and shared by every job that mounts
// it, pinned while one runs; when the cache holds more than LimitBytes,
// the least recently used unpinned datasets are removed. Files are made
// read-only and folders world-traversable, so QEMU (which runs as its own
// user) can serve them, and a guest could not change them even through a
// writable share. The node agent calls it.
type Cache struct {
	dir   string
	limit int64
	opts  imagestore.Options

	mu      sync.Mutex
	entries map[string]*cacheEntry // by digest
}

type cacheEntry struct {
	dir     string
	bytes   int64
	pins    int
	used    time.Time
	pulling chan struct{} // closed when the pull ends; nil once ready
	err     error         // the pull's error (the entry is then removed)
}

// OpenCache opens (creating) the cache in dir, keeping the complete
// datasets already there and removing interrupted pulls.
func OpenCache(dir string, limitBytes int64, o imagestore.Options) (*Cache, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("dataset cache: %w", err)
	}
	if err := os.Chmod(dir, 0o755); err != nil {
		return nil, fmt.Errorf("dataset cache: %w", err)
	}
	c := &Cache{dir: dir, limit: limitBytes, opts: o, entries: map[string]*cacheEntry{}}
	ents, err := os.ReadDir(dir)
	if err != nil {
		return nil, fmt.Errorf("dataset cache: %w", err)
	}
	for _, e := range ents {
		p := filepath.Join(dir, e.Name())
		if !e.IsDir() || len(e.Name()) != 64 || strings.Trim(e.Name(), "0123456789abcdef") != "" {
			if err := removeTree(p); err != nil { // a pull cut short, or a stranger
				return nil, fmt.Errorf("dataset cache: remove %s: %w", p, err)
			}
			continue
		}
		n, err := treeBytes(p)
		if err != nil {
			return nil, fmt.Errorf("dataset cache: %w", err)
		}
		info, _ := e.Info()
		c.entries["sha256:"+e.Name()] = &cacheEntry{dir: p, bytes: n, used: info.ModTime()}
	}
	c.mu.Lock()
	c.evictLocked()
	c.mu.Unlock()
	return c, nil
}

// Acquire returns the directory holding dataset digest of repository
// repoName (the department's RepositoryName),
// pulling it from the registry at registryURL unless the cache has it, and
// pins it until release is called (once). Concurrent Acquires of one
// dataset share one pull.
func (c *Cache) Acquire(ctx context.Context, registryURL, repoName, digest string) (dir string, release func(), err error) {
	if err := CheckDigest(digest); err != nil {
		return "", nil, err
	}
	for {
		c.mu.Lock()
		e := c.entries[digest]
		switch {
		case e == nil:
			e = &cacheEntry{dir: filepath.Join(c.dir, strings.TrimPrefix(digest, "sha256:")), pulling: make(chan struct{}), pins: 1}
			c.entries[digest] = e
			c.mu.Unlock()
			err := c.pull(ctx, registryURL, repoName, digest, e)
			c.mu.Lock()
			close(e.pulling)
			e.pulling = nil
			if err != nil {
				e.err = err
				delete(c.entries, digest)
				c.mu.Unlock()
				return "", nil, err
			}
			e.used = time.Now()
			c.evictLocked()
			c.mu.Unlock()
			return e.dir, c.releaser(e), nil
		case e.pulling != nil:
			wait := e.pulling
			c.mu.Unlock()
			select {
			case <-ctx.Done():
				return "", nil, ctx.Err()
			case <-wait:
			}
			if e.err != nil {
				return "", nil, e.err
			}
			continue
		default:
			e.pins++
			e.used = time.Now()
			c.mu.Unlock()
			return e.dir, c.releaser(e), nil
		}
	}
}

func (c *Cache) releaser(e *cacheEntry) func() {
	var once sync.Once
	return func() {
		once.Do(func() {
			c.mu.Lock()
			e.pins--
			e.used = time.Now()
			c.evictLocked()
			c.mu.Unlock()
		})
	}
}

// pull lays the set out in a temporary folder next to e.dir, makes it
// read-only and renames it into place.
func (c *Cache) pull(ctx context.Context, registryURL, repoName, digest string, e *cacheEntry) error {
	var rnd [6]byte
	_, _ = rand.Read(rnd[:])
	tmp := e.dir + ".part-" + hex.EncodeToString(rnd[:])
	if err := os.Mkdir(tmp, 0o755); err != nil {
		return fmt.Errorf("dataset cache: %w", err)
	}
	set, err := Pull(ctx, registryURL, repoName, digest, tmp, c.opts)
	if err == nil {
		err = readOnlyTree(tmp)
	}
	if err == nil {
		err = os.Rename(tmp, e.dir)
	}
	if err != nil {
		_ = removeTree(tmp)
		return fmt.Errorf("dataset %s: %w", digest, err)
	}
	e.bytes = set.Bytes()
	return nil
}

// evictLocked removes unpinned datasets, least recently used first, while
// the cache holds more than its limit. c.mu is held.
func (c *Cache) evictLocked() {
	if c.limit <= 0 {
		return
	}
	for c.bytesLocked() > c.limit {
		var victim string
		var oldest time.Time
		for d, e := range c.entries {
			if e.pins == 0 && e.pulling == nil && (victim == "" || e.used.Before(oldest)) {
				victim, oldest = d, e.used
			}
		}
		if victim == "" {
			return // everything left is in use
		}
		e := c.entries[victim]
		delete(c.entries, victim)
		if err := removeTree(e.dir); err != nil && c.opts.Logger != nil {
			c.opts.Logger.Warn("dataset cache: remove", "dir", e.dir, "err", err)
		}
	}
}

func (c *Cache) bytesLocked() int64 {
	var n int64
	for _, e := range c.entries {
		n += e.bytes
	}
	return n
}

// Digests lists the datasets ready in the cache.
func (c *Cache) Digests() []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	var out []string
	for d, e := range c.entries {
		if e.pulling == nil {
			out = append(out, d)
		}
	}
	return out
}

// readOnlyTree drops the write bits of every file and makes folders 0555.
func readOnlyTree(root string) error {
	return filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		info, err := d.Info()
		if err != nil {
			return err
		}
		if d.IsDir() {
			return os.Chmod(p, 0o555)
		}
		return os.Chmod(p, info.Mode().Perm()&^0o222|0o444)
	})
}

// removeTree removes a read-only tree (folders need their write bit back
// first).
func removeTree(root string) error {
	_ = filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err == nil && d.IsDir() {
			_ = os.Chmod(p, 0o755)
		}
		return nil
	})
	return os.RemoveAll(root)
}

func treeBytes(root string) (int64, error) {
	var n int64
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.Type().IsRegular() {
			info, err := d.Info()
			if err != nil {
				return err
			}
			n += info.Size()
		}
		return nil
	})
	return n, err
}
