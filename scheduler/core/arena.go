package core

// arena hands out small slices from large chunks, so that building the
// per-call state costs a few allocations instead of several per node.
type arena struct {
	ints  []int
	i64s  []int64
	words []uint64
}

const arenaChunk = 4096

func (a *arena) intSlice(n int) []int {
	if len(a.ints) < n {
		a.ints = make([]int, max(n, arenaChunk))
	}
	s := a.ints[:0:n]
	a.ints = a.ints[n:]
	return s
}

func (a *arena) i64Slice(n int) []int64 {
	if len(a.i64s) < n {
		a.i64s = make([]int64, max(n, arenaChunk))
	}
	s := a.i64s[:0:n]
	a.i64s = a.i64s[n:]
	return s
}

func (a *arena) wordSlice(n int) []uint64 {
	if len(a.words) < n {
		a.words = make([]uint64, max(n, arenaChunk))
	}
	s := a.words[:0:n]
	a.words = a.words[n:]
	return s
}

// cloneFree returns an independent copy of o whose storage comes from a.
func (a *arena) cloneFree(o *free) free {
	f := free{
		phys: append(bitset(a.wordSlice(len(o.phys))), o.phys...),
		gpu:  append(bitset(a.wordSlice(len(o.gpu))), o.gpu...),
		reg:  append(a.i64Slice(len(o.reg)), o.reg...),
		huge: append(a.i64Slice(len(o.huge)), o.huge...),
	}
	f.numaLog = append(a.intSlice(len(o.numaLog)), o.numaLog...)
	f.log, f.gpus, f.regTot, f.hugeTot, f.scratch = o.log, o.gpus, o.regTot, o.hugeTot, o.scratch
	return f
}
