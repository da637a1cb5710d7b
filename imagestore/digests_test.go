package imagestore

import (
	"slices"
	"strings"
	"testing"
)

func TestCachedDigests(t *testing.T) {
	d := func(c string) string { return "sha256:" + strings.Repeat(c, 64) }
	tests := []struct {
		name    string
		ready   []string
		pulling []string
		want    []string
	}{
		{"empty", nil, nil, []string{}},
		{"ready ones, sorted", []string{d("c"), d("a"), d("b")}, nil, []string{d("a"), d("b"), d("c")}},
		{"a pull in progress is left out", []string{d("b")}, []string{d("a")}, []string{d("b")}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c := &Cache{entries: map[string]*cacheEntry{}}
			for _, x := range tc.ready {
				c.entries[x] = &cacheEntry{digest: x}
			}
			for _, x := range tc.pulling {
				c.entries[x] = &cacheEntry{digest: x, pulling: make(chan struct{})}
			}
			if got := c.CachedDigests(); !slices.Equal(got, tc.want) {
				t.Fatalf("CachedDigests() = %v, want %v", got, tc.want)
			}
		})
	}
}
