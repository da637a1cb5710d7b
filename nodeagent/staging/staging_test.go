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
