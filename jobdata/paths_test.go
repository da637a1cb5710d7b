package jobdata

import (
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
		{"..a", true},
		{"./a", false},
		{"a/./b", false},
		{"a//b", false},
		{"a/", false},
		{".", false},
		{"", false},
		{"/etc/passwd", false},
		{"..", false},
		{"../x", false},
		{"a/../../x", false},
		{"a/..", false},
		{"a\x00b", false},
		{`a\..\b`, false},
		{strings.Repeat("a", MaxPathLen+1), false},
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

// FuzzCheckPath: an accepted path never leaves its root, lexically or on
// disk, and is already clean.
func FuzzCheckPath(f *testing.F) {
	for _, s := range []string{"a", "../a", "/a", "a/../..", "a/./b", "..", "", "a\x00", "....", "a/b/../c", `a\..\b`, "a//b"} {
		f.Add(s)
	}
	root := f.TempDir()
	f.Fuzz(func(t *testing.T, p string) {
		if CheckPath(p) != nil {
			return
		}
		j := filepath.Join(root, p)
		rel, err := filepath.Rel(root, j)
		if err != nil || rel == ".." || strings.HasPrefix(rel, "../") || filepath.IsAbs(rel) || rel != p {
			t.Fatalf("accepted %q: relative %q", p, rel)
		}
	})
}
