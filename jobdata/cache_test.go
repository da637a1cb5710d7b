package jobdata_test

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"vhpc/imagestore/registrytest"
	"vhpc/jobdata"
)

// TestDatasetCache: a dataset is pulled once however many jobs acquire it
// at once, its files are read-only, an unpinned one is evicted when the
// cache passes its limit (a pinned one never), and a reopened cache keeps
// what is complete and drops a pull cut short.
func TestDatasetCache(t *testing.T) {
	reg := registrytest.Start(t)
	push1 := func(name, body string) string {
		src := t.TempDir()
		writeTree(t, src, map[string]string{name: body})
		return push(t, reg, src, []jobdata.Stage{{From: name}}).Digest
	}
	a := push1("a.txt", strings.Repeat("a", 100))
	b := push1("b.txt", strings.Repeat("b", 100))
	dir := filepath.Join(t.TempDir(), "cache")
	c, err := jobdata.OpenCache(dir, 150, reg.Options())
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	var wg sync.WaitGroup
	dirs := make([]string, 4)
	releases := make([]func(), 4)
	for i := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			d, rel, err := c.Acquire(ctx, reg.URL, jobdata.RepositoryName("physics"), a)
			if err != nil {
				t.Error(err)
				return
			}
			dirs[i], releases[i] = d, rel
		}()
	}
	wg.Wait()
	for _, d := range dirs[1:] {
		if d != dirs[0] {
			t.Fatalf("one dataset in two places: %v", dirs)
		}
	}
	if got, err := os.ReadFile(filepath.Join(dirs[0], "a.txt")); err != nil || len(got) != 100 {
		t.Fatalf("a.txt: %d bytes, %v", len(got), err)
	}
	if st, _ := os.Stat(filepath.Join(dirs[0], "a.txt")); st.Mode().Perm()&0o222 != 0 {
		t.Errorf("dataset file is writable: %v", st.Mode())
	}
	// b does not fit next to a pinned a: a stays.
	db, relB, err := c.Acquire(ctx, reg.URL, jobdata.RepositoryName("physics"), b)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(dirs[0]); err != nil {
		t.Fatalf("a pinned dataset was evicted: %v", err)
	}
	for _, r := range releases {
		r()
	}
	relB()
	// Both unpinned and over the limit: the older (a) goes.
	if _, err := os.Stat(dirs[0]); err == nil {
		t.Error("the least recently used dataset was kept over the limit")
	}
	if _, err := os.Stat(db); err != nil {
		t.Errorf("the newer dataset was evicted: %v", err)
	}
	if err := os.Mkdir(filepath.Join(dir, strings.Repeat("c", 64)+".part-x"), 0o755); err != nil {
		t.Fatal(err)
	}
	c2, err := jobdata.OpenCache(dir, 150, reg.Options())
	if err != nil {
		t.Fatal(err)
	}
	if got := c2.Digests(); len(got) != 1 || got[0] != b {
		t.Errorf("reopened cache holds %v, want [%s]", got, b)
	}
	if left, _ := os.ReadDir(dir); len(left) != 1 {
		t.Errorf("cache dir holds %d entries after reopen, want 1", len(left))
	}
}
