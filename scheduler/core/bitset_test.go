package core

import (
	"slices"
	"testing"
)

// TestWordsOf: a set built from wordsOf and or holds exactly the members
// set one at a time would, across word boundaries.
func TestWordsOf(t *testing.T) {
	tests := []struct {
		name    string
		members []int
		words   int
	}{
		{"empty", nil, 0},
		{"one", []int{5}, 1},
		{"both ends of a word", []int{0, 63}, 1},
		{"across a boundary", []int{63, 64}, 2},
		{"sparse", []int{1, 130, 131, 199}, 3},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			ws := wordsOf(tc.members)
			if len(ws) != tc.words {
				t.Fatalf("%d words, want %d", len(ws), tc.words)
			}
			got, want := newBitset(200), newBitset(200)
			got.or(ws)
			for _, n := range tc.members {
				want.set(n)
			}
			if !slices.Equal(got, want) {
				t.Fatalf("or(wordsOf(%v)) = %x, want %x", tc.members, got, want)
			}
		})
	}
}
