package staging

import (
	"context"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestCheckPath(t *testing.T) {
	tests := []struct {
		p  string
		ok bool
	}{
		{"input.dat", true},
		{"data/in/x.txt", true},
		{"./a", true},
		{"a/./b", true},
		{"..a", true},
		{"", false},
		{"/etc/passwd", false},
		{"..", false},
		{"../x", false},
		{"a/../../x", false},
		{"a/..", false},
		{"a\x00b", false},
		{".", true}, // the whole root
	}
	for _, tc := range tests {
		t.Run(tc.p, func(t *testing.T) {
			err := CheckPath(tc.p)
			if (err == nil) != tc.ok {
				t.Errorf("CheckPath(%q) = %v, want ok=%v", tc.p, err, tc.ok)
			}
		})
	}
}

func TestCheckAllocID(t *testing.T) {
	for _, id := range []string{"1.0.0", "job-7_a"} {
		if err := CheckAllocID(id); err != nil {
			t.Errorf("%q: %v", id, err)
		}
	}
	for _, id := range []string{"", ".", "..", "a/b", "<x/>", "a b", strings.Repeat("x", 200)} {
		if err := CheckAllocID(id); err == nil {
			t.Errorf("%q accepted", id)
		}
	}
}

func write(t *testing.T, p, s string) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p, []byte(s), 0o644); err != nil {
		t.Fatal(err)
	}
}

func TestCopyConfinement(t *testing.T) {
	outside := t.TempDir()
	write(t, filepath.Join(outside, "secret"), "secret")

	src := t.TempDir()
	write(t, filepath.Join(src, "in.txt"), "hello")
	write(t, filepath.Join(src, "tree/a/b.txt"), "b")
	if err := os.Symlink(filepath.Join(outside, "secret"), filepath.Join(src, "tree/escape")); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(outside, filepath.Join(src, "outdir")); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("../../..", filepath.Join(src, "tree/a/up")); err != nil {
		t.Fatal(err)
	}

	tests := []struct {
		name    string
		stages  []Stage
		wantErr string
		want    map[string]string // dst path -> content
		absent  []string
	}{
		{name: "whole root", stages: []Stage{{From: ".", To: "all"}},
			want: map[string]string{"all/in.txt": "hello", "all/tree/a/b.txt": "b"}, absent: []string{"all/outdir", "all/tree/escape"}},
		{name: "file", stages: []Stage{{From: "in.txt"}}, want: map[string]string{"in.txt": "hello"}},
		{name: "rename", stages: []Stage{{From: "in.txt", To: "sub/renamed.txt"}}, want: map[string]string{"sub/renamed.txt": "hello"}},
		{name: "tree skips symlinks", stages: []Stage{{From: "tree", To: "t"}},
			want: map[string]string{"t/a/b.txt": "b"}, absent: []string{"t/escape", "t/a/up"}},
		{name: "absolute from", stages: []Stage{{From: "/etc/passwd"}}, wantErr: "absolute"},
		{name: "dotdot from", stages: []Stage{{From: "../secret"}}, wantErr: "leaves"},
		{name: "dotdot to", stages: []Stage{{From: "in.txt", To: "../../x"}}, wantErr: "leaves"},
		{name: "symlink file", stages: []Stage{{From: "tree/escape"}}, wantErr: "symlink"},
		{name: "through symlinked dir", stages: []Stage{{From: "outdir/secret"}}, wantErr: "escape"},
		{name: "missing", stages: []Stage{{From: "nope"}}, wantErr: "no such file"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			dst := t.TempDir()
			err := Copy(src, dst, tc.stages)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("err = %v, want %q", err, tc.wantErr)
				}
				if _, err := os.Stat(filepath.Join(dst, "secret")); err == nil {
					t.Fatal("secret copied")
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			for p, want := range tc.want {
				b, err := os.ReadFile(filepath.Join(dst, p))
				if err != nil || string(b) != want {
					t.Errorf("%s = %q, %v; want %q", p, b, err, want)
				}
			}
			for _, p := range tc.absent {
				if _, err := os.Lstat(filepath.Join(dst, p)); !errors.Is(err, fs.ErrNotExist) {
					t.Errorf("%s exists in destination (err %v)", p, err)
				}
			}
		})
	}
}

// TestCopyNoWriteThroughDestSymlink: a guest could leave a symlink in the
// work dir pointing outside; stage-in must replace it, not write through.
func TestCopyNoWriteThroughDestSymlink(t *testing.T) {
	outside := t.TempDir()
	victim := filepath.Join(outside, "victim")
	write(t, victim, "untouched")
	src, dst := t.TempDir(), t.TempDir()
	write(t, filepath.Join(src, "f"), "new")
	if err := os.Symlink(victim, filepath.Join(dst, "f")); err != nil {
		t.Fatal(err)
	}
	if err := Copy(src, dst, []Stage{{From: "f"}}); err != nil {
		t.Fatal(err)
	}
	if b, _ := os.ReadFile(victim); string(b) != "untouched" {
		t.Fatalf("wrote through symlink: victim = %q", b)
	}
	if b, _ := os.ReadFile(filepath.Join(dst, "f")); string(b) != "new" {
		t.Fatalf("dst f = %q", b)
	}
}

func TestPrepareCleanup(t *testing.T) {
	state := t.TempDir()
	d, err := Layout(state, "3.0.1")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := Layout(state, "../x"); err == nil {
		t.Fatal("bad alloc id accepted")
	}
	if err := Prepare(context.Background(), d, 16); err != nil {
		t.Fatal(err)
	}
	st, err := os.Stat(d.Scratch)
	if err != nil || st.Size() != 16<<20 {
		t.Fatalf("scratch: %v %v", st, err)
	}
	if err := Prepare(context.Background(), d, 16); err == nil {
		t.Fatal("second Prepare of the same dir succeeded")
	}
	if err := Cleanup(d); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(d.Root); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("job dir left: %v", err)
	}
	if err := Cleanup(d); err != nil {
		t.Fatalf("second cleanup: %v", err)
	}
}

// FuzzCheckPath: an accepted path never leaves its root, lexically or on disk.
func FuzzCheckPath(f *testing.F) {
	for _, s := range []string{"a", "../a", "/a", "a/../..", "a/./b", "..", "", "a\x00", "....", "a/b/../c", `a\..\b`} {
		f.Add(s)
	}
	root := f.TempDir()
	f.Fuzz(func(t *testing.T, p string) {
		if CheckPath(p) != nil {
			return
		}
		j := filepath.Join(root, p)
		rel, err := filepath.Rel(root, j)
		if err != nil || rel == ".." || strings.HasPrefix(rel, "../") || filepath.IsAbs(rel) {
			t.Fatalf("accepted %q escapes: %q", p, rel)
		}
	})
}
