package jobspec

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// examplesDir holds the demo's job files; bad/ holds files that must fail.
const examplesDir = "../examples"

// TestExamplesLoad checks that every examples/*.yaml loads without problems.
func TestExamplesLoad(t *testing.T) {
	files, err := filepath.Glob(filepath.Join(examplesDir, "*.yaml"))
	if err != nil || len(files) == 0 {
		t.Fatalf("no examples: %v", err)
	}
	for _, f := range files {
		t.Run(filepath.Base(f), func(t *testing.T) {
			data, err := os.ReadFile(f)
			if err != nil {
				t.Fatal(err)
			}
			if _, err := Load(filepath.Base(f), data); err != nil {
				t.Fatalf("Load:\n%v", err)
			}
		})
	}
}

// TestBadExamples checks that every examples/bad/* fails to Load with each
// message given on a "# want: " line of the file (the file's own comments,
// so a reader sees the expected error next to the input).
func TestBadExamples(t *testing.T) {
	files, err := filepath.Glob(filepath.Join(examplesDir, "bad", "*"))
	if err != nil || len(files) == 0 {
		t.Fatalf("no bad examples: %v", err)
	}
	for _, f := range files {
		name := filepath.Base(f)
		t.Run(name, func(t *testing.T) {
			data, err := os.ReadFile(f)
			if err != nil {
				t.Fatal(err)
			}
			wants := wantLines(data)
			if len(wants) == 0 {
				t.Fatalf("%s has no \"# want: \" line", f)
			}
			_, err = Load(name, data)
			if err == nil {
				t.Fatalf("Load succeeded; want %q", wants)
			}
			lines := strings.Split(err.Error(), "\n")
			for _, w := range wants {
				found := false
				for _, l := range lines {
					if strings.Contains(l, w) {
						found = true
					}
				}
				if !found {
					t.Errorf("no problem contains %q; got:\n%v", w, err)
				}
			}
		})
	}
}

// wantLines returns the text after "# want: " on each line that has it.
func wantLines(data []byte) []string {
	var out []string
	for _, l := range bytes.Split(data, []byte("\n")) {
		if rest, ok := bytes.CutPrefix(l, []byte("# want: ")); ok {
			out = append(out, string(bytes.TrimRight(rest, "\r")))
		}
	}
	return out
}
