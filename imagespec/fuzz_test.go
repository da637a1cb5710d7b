package imagespec

import (
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"go.yaml.in/yaml/v3"

	"vhpc/jobspec"
)

// FuzzLoad: Load never panics and fails only with jobspec.Problems; an
// accepted spec validates again, round-trips (marshal, Load, same spec),
// names a ref that parses back to itself, and its files' sources, opened
// through OpenFile, never leave the spec's directory (a symlink to a
// secret outside it is in the fixture). Seeds: the test specs and one
// input per class of bad input; `make fuzz` runs it long.
func FuzzLoad(f *testing.F) {
	for _, s := range []string{
		good,
		"name: a/b\n",
		"name: a/b\nfiles: [{src: ../x, dst: /x}]\n",
		"name: &a a/b\nbase: *a\n",
		"name: a/b\nfiles: [{src: run.sh, dst: /opt/run.sh}, {src: out, dst: /opt/out}, {src: sub/../run.sh, dst: /a}]\n",
		"name: a/b:" + strings.Repeat("t", 129) + "\n",
		"name: A/b\n",
		"name: a/b\ndiskSize: 1TiB\n",
		"name: a/b\ndiskSize: 4 parsecs\n",
		"name: a/b\nenv: {VHPC_X: 1, 1A: 2, B: \"a\\nb\"}\n",
		"name: a/b\ntemplate: {kernelCmdline: \"init=/bin/sh\"}\n",
		"name: a/b\nfiles: [{src: run.sh, dst: /proc/x, mode: \"9999\"}]\n",
		"name: a/b\npackages: [python3, python3]\n",
		"name: a/b\n---\nname: c/d\n",
		"name: a/b\nbogus: 1\n",
		"",
		"\xff\xfe",
	} {
		f.Add([]byte(s))
	}
	dir := fixtureDir(f)
	root, err := os.OpenRoot(filepath.Join(dir, "spec"))
	if err != nil {
		f.Fatal(err)
	}
	f.Cleanup(func() { root.Close() })
	f.Fuzz(func(t *testing.T, b []byte) {
		s, err := Load("f.yaml", b)
		if err != nil {
			var ps jobspec.Problems
			if !errors.As(err, &ps) || len(ps) == 0 {
				t.Fatalf("error %v (%T) is not Problems", err, err)
			}
			return
		}
		if err := s.Validate(); err != nil {
			t.Fatalf("accepted spec no longer validates: %v", err)
		}
		ref, err := ParseRef(s.Ref().String())
		if err != nil || ref != s.Ref() {
			t.Fatalf("ref %v does not parse back: %v, %v", s.Ref(), ref, err)
		}
		out, err := yaml.Marshal(s)
		if err != nil {
			t.Fatalf("marshal an accepted spec: %v", err)
		}
		again, err := Load("again.yaml", out)
		if err != nil {
			t.Fatalf("marshalled spec refused: %v\n%s", err, out)
		}
		again.pos, s.pos = nil, nil
		if !reflect.DeepEqual(emptyAsNil(*again), emptyAsNil(*s)) {
			t.Fatalf("round trip changed the spec:\n%+v\n%+v", s, again)
		}
		for _, fl := range s.Files {
			fh, _, err := OpenFile(root, fl.Src)
			if err != nil {
				continue
			}
			data, _ := readAll(fh)
			if strings.Contains(data, "SECRET") {
				t.Fatalf("files src %q read a file outside the spec's directory", fl.Src)
			}
		}
	})
}

// FuzzParseRef: an accepted ref prints as department/name:tag and parses
// back to itself; its parts carry no '/' or ':' (a ref names one
// repository of one department).
func FuzzParseRef(f *testing.F) {
	for _, s := range []string{"public/python:1", "a/b", "a/b/c", "a/b:", "a:b/c", "/b", "a/", "A/b", "a/b:-x", "a/b:x:y", "..a/b"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		r, err := ParseRef(s)
		if err != nil {
			return
		}
		if strings.ContainsAny(r.Department+r.Name+r.Tag, "/:") || r.Department == "" || r.Name == "" || r.Tag == "" {
			t.Fatalf("ParseRef(%q) = %+v", s, r)
		}
		back, err := ParseRef(r.String())
		if err != nil || back != r {
			t.Fatalf("ParseRef(%q) = %v; its String %q parses as %v, %v", s, r, r.String(), back, err)
		}
	})
}

// fixtureDir makes dir/spec (run.sh, sub/, out -> ../secret) beside
// dir/secret holding SECRET.
func fixtureDir(tb testing.TB) string {
	tb.Helper()
	dir := tb.TempDir()
	for _, w := range []struct{ path, data string }{
		{"secret", "SECRET"},
		{"spec/run.sh", "#!/bin/sh\n"},
		{"spec/sub/data", "data"},
	} {
		p := filepath.Join(dir, w.path)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			tb.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(w.data), 0o644); err != nil {
			tb.Fatal(err)
		}
	}
	if err := os.Symlink("../secret", filepath.Join(dir, "spec", "out")); err != nil {
		tb.Fatal(err)
	}
	if err := os.Symlink(filepath.Join(dir, "secret"), filepath.Join(dir, "spec", "abs")); err != nil {
		tb.Fatal(err)
	}
	return dir
}

func readAll(f *os.File) (string, error) {
	defer f.Close()
	b := make([]byte, 64)
	n, err := f.Read(b)
	return string(b[:n]), err
}

// emptyAsNil treats an empty list or map as absent ("files: []" and no
// files are the same spec; Marshal omits both).
func emptyAsNil(s Spec) Spec {
	if len(s.Packages) == 0 {
		s.Packages = nil
	}
	if len(s.Files) == 0 {
		s.Files = nil
	}
	if len(s.Env) == 0 {
		s.Env = nil
	}
	return s
}
