package server

import (
	"os"
	"testing"

	"vhpc/api"
)

// TestLogStoreKeepsOutputOnceAcrossRestarts: agents resend from their own
// offset after reconnecting; the job log holds every byte exactly once,
// also when the master restarted in between.
func TestLogStoreKeepsOutputOnceAcrossRestarts(t *testing.T) {
	dir := t.TempDir()
	newStore := func() *logStore { return &logStore{dir: dir, seen: map[uint64]map[string]int64{}} }
	steps := []struct {
		name    string
		restart bool
		chunk   *api.LogChunk
		want    string
	}{
		{"first chunk", false, &api.LogChunk{Job: 1, AllocId: "1.0.0.1", Offset: 0, Data: []byte("abc")}, "abc"},
		{"resend of the same bytes", false, &api.LogChunk{Job: 1, AllocId: "1.0.0.1", Offset: 0, Data: []byte("abc")}, "abc"},
		{"overlap after the master restarted", true, &api.LogChunk{Job: 1, AllocId: "1.0.0.1", Offset: 0, Data: []byte("abcdef")}, "abcdef"},
		{"another rank of the gang", false, &api.LogChunk{Job: 1, AllocId: "1.0.1.1", Offset: 0, Data: []byte("XY")}, "abcdefXY"},
		{"tail", true, &api.LogChunk{Job: 1, AllocId: "1.0.0.1", Offset: 6, Data: []byte("g\n")}, "abcdefXYg\n"},
	}
	l := newStore()
	for _, st := range steps {
		if st.restart {
			l = newStore()
		}
		if err := l.append(st.chunk); err != nil {
			t.Fatalf("%s: %v", st.name, err)
		}
		got, err := os.ReadFile(l.path(1))
		if err != nil || string(got) != st.want {
			t.Fatalf("%s: log = %q (%v), want %q", st.name, got, err, st.want)
		}
	}
}
