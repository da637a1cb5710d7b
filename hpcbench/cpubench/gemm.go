package cpubench

import (
	"sync"
)

// Float is the element type of the CPU GEMM kernel.
type Float interface{ ~float32 | ~float64 }

// Blocking of the tiled GEMM: a kc x nc panel of B is packed once and shared;
// each worker packs an mc x kc block of A and runs the 4x4 micro-kernel over
// the pair. Chosen so a packed A block (64 KiB in FP64) stays in L2.
const (
	mr, nr = 4, 4
	mcBlk  = 64
	kcBlk  = 256
	ncBlk  = 1024
)

// Gemm computes the row-major C = A*B (C is m x n, A m x k, B k x n; C is
// overwritten) with packed panels, a 4x4 register-blocked micro-kernel and
// workers goroutines over blocks of rows.
func Gemm[T Float](m, n, k int, a, b, c []T, workers int) {
	clear(c[:m*n])
	workers = max(workers, 1)
	bp := make([]T, kcBlk*roundUp(min(ncBlk, n), nr))
	aps := make([][]T, workers)
	for w := range aps {
		aps[w] = make([]T, roundUp(mcBlk, mr)*kcBlk)
	}
	for jc := 0; jc < n; jc += ncBlk {
		nb := min(ncBlk, n-jc)
		for pc := 0; pc < k; pc += kcBlk {
			kb := min(kcBlk, k-pc)
			packB(b, n, pc, jc, kb, nb, bp)
			var wg sync.WaitGroup
			blocks := (m + mcBlk - 1) / mcBlk
			next := make(chan int, blocks)
			for ic := 0; ic < m; ic += mcBlk {
				next <- ic
			}
			close(next)
			for w := 0; w < min(workers, blocks); w++ {
				wg.Go(func() {
					ap := aps[w]
					for ic := range next {
						mb := min(mcBlk, m-ic)
						packA(a, k, ic, pc, mb, kb, ap)
						macro(mb, nb, kb, ap, bp, c[ic*n+jc:], n)
					}
				})
			}
			wg.Wait()
		}
	}
}

func roundUp(x, to int) int { return (x + to - 1) / to * to }

// packA copies A[ic:ic+mb, pc:pc+kb] into strips of mr rows, k-major,
// zero-padding the last strip.
func packA[T Float](a []T, lda, ic, pc, mb, kb int, ap []T) {
	for i0 := 0; i0 < mb; i0 += mr {
		strip := ap[i0*kb : (i0+mr)*kb]
		for r := range mr {
			if i0+r >= mb {
				for p := range kb {
					strip[p*mr+r] = 0
				}
				continue
			}
			row := a[(ic+i0+r)*lda+pc : (ic+i0+r)*lda+pc+kb]
			for p, v := range row {
				strip[p*mr+r] = v
			}
		}
	}
}

// packB copies B[pc:pc+kb, jc:jc+nb] into strips of nr columns, k-major,
// zero-padding the last strip.
func packB[T Float](b []T, ldb, pc, jc, kb, nb int, bp []T) {
	for j0 := 0; j0 < nb; j0 += nr {
		strip := bp[j0*kb : (j0+nr)*kb]
		w := min(nr, nb-j0)
		for p := range kb {
			row := b[(pc+p)*ldb+jc+j0 : (pc+p)*ldb+jc+j0+w]
			dst := strip[p*nr : p*nr+nr]
			copy(dst, row)
			for q := w; q < nr; q++ {
				dst[q] = 0
			}
		}
	}
}

// macro runs the micro-kernel over a packed mb x kb block of A and kb x nb
// panel of B, adding into c (leading dimension ldc).
func macro[T Float](mb, nb, kb int, ap, bp, c []T, ldc int) {
	var acc [mr * nr]T
	for j0 := 0; j0 < nb; j0 += nr {
		bs := bp[j0*kb : (j0+nr)*kb]
		for i0 := 0; i0 < mb; i0 += mr {
			micro(kb, ap[i0*kb:(i0+mr)*kb], bs, &acc)
			for r := range min(mr, mb-i0) {
				row := c[(i0+r)*ldc+j0:]
				for q := range min(nr, nb-j0) {
					row[q] += acc[r*nr+q]
				}
			}
		}
	}
}

// micro computes the 4x4 product of a packed A strip and B strip over kb.
func micro[T Float](kb int, a, b []T, acc *[mr * nr]T) {
	var c00, c01, c02, c03, c10, c11, c12, c13 T
	var c20, c21, c22, c23, c30, c31, c32, c33 T
	a = a[:kb*mr]
	b = b[:kb*nr]
	for p := 0; p < kb; p++ {
		av := a[p*mr : p*mr+4 : p*mr+4]
		bv := b[p*nr : p*nr+4 : p*nr+4]
		a0, a1, a2, a3 := av[0], av[1], av[2], av[3]
		b0 := bv[0]
		c00 += a0 * b0
		c10 += a1 * b0
		c20 += a2 * b0
		c30 += a3 * b0
		b1 := bv[1]
		c01 += a0 * b1
		c11 += a1 * b1
		c21 += a2 * b1
		c31 += a3 * b1
		b2 := bv[2]
		c02 += a0 * b2
		c12 += a1 * b2
		c22 += a2 * b2
		c32 += a3 * b2
		b3 := bv[3]
		c03 += a0 * b3
		c13 += a1 * b3
		c23 += a2 * b3
		c33 += a3 * b3
	}
	*acc = [mr * nr]T{c00, c01, c02, c03, c10, c11, c12, c13, c20, c21, c22, c23, c30, c31, c32, c33}
}

// NaiveGemm is the reference: C = A*B accumulated in float64, row-major.
func NaiveGemm[T Float](m, n, k int, a, b []T) []float64 {
	c := make([]float64, m*n)
	for i := range m {
		for p := range k {
			av := float64(a[i*k+p])
			for j := range n {
				c[i*n+j] += av * float64(b[p*n+j])
			}
		}
	}
	return c
}
