package jobdata

import (
	"io/fs"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	v1 "github.com/google/go-containerregistry/pkg/v1"

	"vhpc/imagestore"
)

// fuzzTree makes parent/job (the directory a set is collected from or
// pulled into: a.txt, dir/c.txt, in-link -> a.txt, out-link and dir-link
// pointing outside) beside parent/outside/secret, and returns parent.
func fuzzTree(tb testing.TB) string {
	tb.Helper()
	parent := tb.TempDir()
	for p, data := range map[string]string{"job/a.txt": "a", "job/dir/c.txt": "c", "job/dir/sub/d.txt": "d", "outside/secret": "SECRET"} {
		p = filepath.Join(parent, p)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			tb.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(data), 0o644); err != nil {
			tb.Fatal(err)
		}
	}
	for name, target := range map[string]string{"in-link": "a.txt", "out-link": "../outside/secret", "dir-link": "../outside", "abs-link": filepath.Join(parent, "outside")} {
		if err := os.Symlink(target, filepath.Join(parent, "job", name)); err != nil {
			tb.Fatal(err)
		}
	}
	return parent
}

// FuzzCollect: whatever two stages name, Collect never reads outside the
// job directory: every collected file has a path CheckPath accepts under
// its stage's destination, its source is a regular file inside the
// directory (no symlink on the way), and its content is never the secret
// beside it. Seeds: escapes by "..", absolute paths, symlinks to files and
// folders outside, clashes; `make fuzz` runs it long.
func FuzzCollect(f *testing.F) {
	for _, s := range [][4]string{
		{"a.txt", "", "dir", "out"},
		{"../outside/secret", "", "", ""},
		{"/etc/passwd", "", "a.txt", "/etc/x"},
		{"out-link", "", "dir-link/secret", ""},
		{"abs-link/secret", "x", "in-link", ""},
		{"dir/../a.txt", "", "dir/./c.txt", "y/../z"},
		{"a.txt", "d", "dir", "d/sub"},
		{"dir", "", "dir/sub", "sub"},
		{".", "", "", ""},
		{"dir//c.txt", "..", "a\x00", "b\\c"},
	} {
		f.Add(s[0], s[1], s[2], s[3])
	}
	parent := fuzzTree(f)
	dir := filepath.Join(parent, "job")
	f.Fuzz(func(t *testing.T, from1, to1, from2, to2 string) {
		stages := []Stage{{From: from1, To: to1}}
		if from2 != "" {
			stages = append(stages, Stage{From: from2, To: to2})
		}
		c, err := Collect(dir, stages, CollectOptions{AllowMissing: true})
		if err != nil {
			return
		}
		defer c.Close()
		for _, fl := range c.Files {
			if err := CheckPath(fl.Path); err != nil {
				t.Fatalf("stages %+v: collected %q: %v", stages, fl.Path, err)
			}
			if !slices.ContainsFunc(stages, func(s Stage) bool { return under(fl.Path, destOf(s)) }) {
				t.Fatalf("stages %+v: %q is under no stage's destination", stages, fl.Path)
			}
			if !filepath.IsLocal(fl.source) {
				t.Fatalf("stages %+v: source %q is not inside the job directory", stages, fl.source)
			}
			real, err := filepath.EvalSymlinks(filepath.Join(dir, fl.source))
			if err != nil || real != filepath.Join(dir, fl.source) {
				t.Fatalf("stages %+v: source %q resolves to %q (%v): a symlink was followed", stages, fl.source, real, err)
			}
			b, err := os.ReadFile(real)
			if err != nil || string(b) == "SECRET" || int64(len(b)) != fl.Size {
				t.Fatalf("stages %+v: source %q read %q, size %d (%v)", stages, fl.source, b, fl.Size, err)
			}
		}
	})
}

// destOf is where a stage's files go (To, or From when To is empty), as
// Collect cleans it.
func destOf(s Stage) string {
	if s.To != "" {
		return filepath.Clean(s.To)
	}
	return filepath.Clean(s.From)
}

func under(p, dir string) bool { return p == dir || strings.HasPrefix(p, dir+"/") }

// FuzzPlaceFile: a layer that fileOf accepts (whatever its title, mode,
// media type and size claim) is placed by placeFile, the code Pull runs,
// inside the job directory only: nothing appears or changes outside it,
// through "..", absolute titles or the symlinks in it, and no temporary
// file is left behind. Seeds: good titles, escapes, symlinked folders;
// `make fuzz` runs it long.
func FuzzPlaceFile(f *testing.F) {
	for _, s := range []struct {
		title, mode string
		size        int64
	}{
		{"out.txt", "0644", 3},
		{"dir/new/x", "0755", 1},
		{"../outside/x", "0644", 1},
		{"/tmp/x", "0644", 1},
		{"out-link", "0644", 1},
		{"dir-link/x", "0644", 1},
		{"abs-link/x", "0644", 1},
		{"in-link", "0600", 1},
		{"dir", "0644", 1},
		{"a.txt/x", "0644", 1},
		{"x", "4755", 1},
		{"x", "-1", -1},
		{"x", "0o644", 1},
	} {
		f.Add(s.title, s.mode, s.size)
	}
	parent := fuzzTree(f)
	dir := filepath.Join(parent, "job")
	outside := snapshotTree(f, parent, dir)
	root, err := os.OpenRoot(dir)
	if err != nil {
		f.Fatal(err)
	}
	f.Cleanup(func() { root.Close() })
	digest := v1.Hash{Algorithm: "sha256", Hex: strings.Repeat("0", 64)}
	f.Fuzz(func(t *testing.T, title, mode string, size int64) {
		file, err := fileOf(v1.Descriptor{MediaType: FileMediaType, Size: size, Digest: digest,
			Annotations: map[string]string{imagestore.AnnotationTitle: title, AnnotationMode: mode}})
		if err != nil {
			return
		}
		if CheckPath(file.Path) != nil || file.Mode&^0o777 != 0 || file.Size < 0 {
			t.Fatalf("fileOf accepted %q mode %q size %d: %+v", title, mode, size, file)
		}
		_ = placeFile(root, file, func(out *os.File) error {
			_, err := out.WriteString("new")
			return err
		})
		if got := snapshotTree(t, parent, dir); !maps.Equal(got, outside) {
			t.Fatalf("placing %q changed what lies outside the job directory:\nbefore %v\nafter  %v", title, outside, got)
		}
		_ = filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
			if err == nil && strings.Contains(d.Name(), ".vhpc-part-") {
				t.Fatalf("placing %q left %s", title, p)
			}
			return nil
		})
	})
}

// snapshotTree lists every path under parent but skip (with the content
// of regular files).
func snapshotTree(tb testing.TB, parent, skip string) map[string]string {
	tb.Helper()
	out := map[string]string{}
	err := filepath.WalkDir(parent, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if p == skip {
			return filepath.SkipDir
		}
		v := d.Type().String()
		if d.Type().IsRegular() {
			b, err := os.ReadFile(p)
			if err != nil {
				return err
			}
			v = string(b)
		}
		out[p] = v
		return nil
	})
	if err != nil {
		tb.Fatal(err)
	}
	return out
}
