package core

// arena hands out small slices from large chunks, so that building the
// per-call state costs a few allocations instead of several per node.
type arena struct {
	ints  []int
	i64s  []int64
	words []uint64
}

const arenaChunk = 4096

// take cuts an empty slice of capacity n from *buf, refilling it with a
// fresh chunk when it runs short.
func take[T any](buf *[]T, n int) []T {
	if len(*buf) < n {
		*buf = make([]T, max(n, arenaChunk))
	}
	s := (*buf)[:0:n]
	*buf = (*buf)[n:]
	return s
}

func (a *arena) intSlice(n int) []int     { return take(&a.ints, n) }
func (a *arena) i64Slice(n int) []int64   { return take(&a.i64s, n) }
func (a *arena) wordSlice(n int) []uint64 { return take(&a.words, n) }

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
