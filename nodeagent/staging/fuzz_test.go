package staging

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// FuzzLayout: an allocation id that CheckAllocID accepts names exactly one
// directory under <state>/jobs, every path of its Layout lies inside it,
// and Prepare then Cleanup create and remove that directory only (a
// sibling job's directory and a file beside jobs/ survive). A refused id
// yields no layout. Seeds: the ids of TestCheckAllocID and escapes;
// `make fuzz` runs it long.
func FuzzLayout(f *testing.F) {
	for _, s := range []string{"a1", "job-7.0_x", ".", "..", "", "../x", "a/b", "a\\b", "..a", "a..", "/", "a\x00", strings.Repeat("a", 129), "é", ".hidden"} {
		f.Add(s)
	}
	state := f.TempDir()
	jobs := filepath.Join(state, "jobs")
	if err := os.MkdirAll(filepath.Join(jobs, "sibling"), 0o755); err != nil {
		f.Fatal(err)
	}
	keep := []string{filepath.Join(state, "keep"), filepath.Join(jobs, "sibling", "keep")}
	for _, k := range keep {
		if err := os.WriteFile(k, []byte("x"), 0o644); err != nil {
			f.Fatal(err)
		}
	}
	f.Fuzz(func(t *testing.T, id string) {
		d, err := Layout(state, id)
		if err != nil {
			if d != (Dir{}) {
				t.Fatalf("refused id %q still has a layout %+v", id, d)
			}
			return
		}
		if id == "sibling" {
			return
		}
		rel, err := filepath.Rel(jobs, d.Root)
		if err != nil || rel != id || strings.ContainsRune(rel, filepath.Separator) || !filepath.IsLocal(rel) {
			t.Fatalf("id %q: root %s is not one directory under %s (rel %q)", id, d.Root, jobs, rel)
		}
		for _, p := range []string{d.Share, d.Work, d.Scratch, d.Overlay} {
			if r, err := filepath.Rel(d.Root, p); err != nil || !filepath.IsLocal(r) {
				t.Fatalf("id %q: %s is outside the job directory %s", id, p, d.Root)
			}
		}
		if err := Prepare(context.Background(), d, 0); err != nil {
			t.Fatalf("prepare %q: %v", id, err)
		}
		if err := Cleanup(d); err != nil {
			t.Fatalf("cleanup %q: %v", id, err)
		}
		if _, err := os.Stat(d.Root); !os.IsNotExist(err) {
			t.Fatalf("cleanup left %s: %v", d.Root, err)
		}
		for _, k := range keep {
			if _, err := os.Stat(k); err != nil {
				t.Fatalf("prepare/cleanup of %q removed %s: %v", id, k, err)
			}
		}
	})
}
