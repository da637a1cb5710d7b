package core

import "math/bits"

// bitset is a fixed-size set of small integers.
type bitset []uint64

func newBitset(n int) bitset { return make(bitset, (n+63)/64) }

func (b bitset) set(i int)         { b[i>>6] |= 1 << (uint(i) & 63) }
func (b bitset) clear(i int)       { b[i>>6] &^= 1 << (uint(i) & 63) }
func (b bitset) has(i int) bool    { return b[i>>6]&(1<<(uint(i)&63)) != 0 }
func (b bitset) copyFrom(o bitset) { copy(b, o) }

func (b bitset) count() int {
	n := 0
	for _, w := range b {
		n += bits.OnesCount64(w)
	}
	return n
}

// bitWord is one nonzero word of a bitset: the members 64*i to 64*i+63
// that bits holds. A sparse set's words are what the pool keeps for a run
// of allocations, to mark its nodes busy a word at a time.
type bitWord struct {
	i    int
	bits uint64
}

// wordsOf returns the nonzero words of the set holding sorted, in
// increasing word order.
func wordsOf(sorted []int) []bitWord {
	var ws []bitWord
	for _, n := range sorted {
		if w := n >> 6; len(ws) == 0 || ws[len(ws)-1].i != w {
			ws = append(ws, bitWord{i: w})
		}
		ws[len(ws)-1].bits |= 1 << (uint(n) & 63)
	}
	return ws
}

// or adds the members of ws (wordsOf) to b, which must be large enough.
func (b bitset) or(ws []bitWord) {
	for _, w := range ws {
		b[w.i] |= w.bits
	}
}
