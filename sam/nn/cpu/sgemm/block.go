package sgemm

import (
	"sync"
	"unsafe"
)

// workspace holds one goroutine's packing buffers. Buffers are reused
// through wsPool so that repeated products do not allocate.
type workspace struct {
	a, b []float32 // packed A block (⌈mc/mr⌉·mr×kc), packed B block (kc×⌈nc/nr⌉·nr)
	tile []float32 // mr×nr scratch tile for ragged edges
}

var wsPool = sync.Pool{New: func() any { return new(workspace) }}

// alignedFloats returns a slice of n float32 whose first element is 64-byte
// aligned (one cache line), so that the kernel's vector loads never split
// lines.
func alignedFloats(n int) []float32 {
	const lineFloats = 16
	s := make([]float32, n+lineFloats)
	off := int(uintptr(unsafe.Pointer(&s[0]))&63) / 4
	if off != 0 {
		off = lineFloats - off
	}
	return s[off : off+n : off+n]
}

func ensure(buf []float32, n int) []float32 {
	if cap(buf) >= n {
		return buf[:n]
	}
	return alignedFloats(n)
}

// gemmBlocked is the Goto/BLIS loop nest on one goroutine:
//
//	for ic (mc rows of C):
//	  for pc (kc steps of k):     pack A[ic:ic+mc, pc:pc+kc]·alpha   (L3)
//	    for jc (nc columns of C): pack B[pc:pc+kc, jc:jc+nc]         (L2)
//	      for ir (mr rows):        A panel mr×kc stays in L1
//	        for jr (nr columns):   kernel on an mr×nr tile of C
//
// The first kc block applies the caller's beta, later ones accumulate
// (beta = 1). Requires m, n, k > 0.
//
// When B is stored k×n and the product has a single row panel (m ≤ mr),
// every element of B is used once: packing it would only copy it, so the
// kernel reads full-width panels straight from B (ldb apart) and only the
// ragged last panel is packed.
func gemmBlocked(kn *kernel, transA, transB bool, m, n, k int, alpha float32, a []float32, lda int, b []float32, ldb int, beta float32, c []float32, ldc int) {
	gemmBlockedB(kn, transA, transB, m, n, k, alpha, a, lda, b, ldb, nil, 0, beta, c, ldc)
}

// gemmBlockedB is gemmBlocked, or with pb != nil the product with the
// prepacked op(B) columns [pj0, pj0+n) of pb (b, ldb and transB unused):
// the same loops without packB.
func gemmBlockedB(kn *kernel, transA, transB bool, m, n, k int, alpha float32, a []float32, lda int, b []float32, ldb int, pb *PackedF32, pj0 int, beta float32, c []float32, ldc int) {
	if pb != nil {
		kn = pb.kn.forShape(m, pb.N) // the panel width pb was packed for
	} else {
		kn = kn.forShape(m, n)
	}
	mr, nr := kn.mr, kn.nr
	direct := pb == nil && !transB && m <= mr
	mcMax := min(kn.mc, roundUp(m, mr))
	kcMax := min(kn.kc, k)
	ncMax := min(kn.nc, roundUp(n, nr))

	ws := wsPool.Get().(*workspace)
	ws.a = ensure(ws.a, roundUp(mcMax, mr)*kcMax)
	ws.b = ensure(ws.b, kcMax*roundUp(ncMax, nr))
	ws.tile = ensure(ws.tile, mr*nr)
	ap, bp, tile := ws.a, ws.b, ws.tile

	for ic := 0; ic < m; ic += mcMax {
		mc := min(mcMax, m-ic)
		for pc := 0; pc < k; pc += kcMax {
			kc := min(kcMax, k-pc)
			bet := beta
			if pc > 0 {
				bet = 1
			}
			packA(ap, transA, a, lda, ic, pc, mc, kc, mr, alpha)
			for jc := 0; jc < n; jc += ncMax {
				nc := min(ncMax, n-jc)
				// Columns [jc, jc+nDirect) are read from B in place, the
				// rest from the packed block.
				nDirect := 0
				if direct {
					nDirect = nc / nr * nr
				}
				if pb == nil && nDirect < nc {
					packB(bp, transB, b, ldb, pc, jc+nDirect, kc, nc-nDirect, nr)
				}
				for ir := 0; ir < mc; ir += mr {
					rows := min(mr, mc-ir)
					aPanel := &ap[ir*kc]
					for jr := 0; jr < nc; jr += nr {
						cols := min(nr, nc-jr)
						bPanel, bStride := (*float32)(nil), nr
						if pb != nil {
							bPanel = &pb.data[(pj0+jc+jr)/nr*nr*k+pc*nr]
						} else if jr < nDirect {
							bPanel, bStride = &b[pc*ldb+jc+jr], ldb
						} else {
							bPanel = &bp[(jr-nDirect)*kc]
						}
						ci := (ic+ir)*ldc + jc + jr
						if kn.partial || rows == mr && cols == nr {
							kn.fn(kc, aPanel, bPanel, bStride, &c[ci], ldc, bet, rows, cols)
							continue
						}
						// Ragged edge, kernel without masked stores:
						// compute the full tile into scratch and merge
						// only the part inside C.
						kn.fn(kc, aPanel, bPanel, bStride, &tile[0], nr, 0, mr, nr)
						mergeTile(c[ci:], ldc, tile, nr, rows, cols, bet)
					}
				}
			}
		}
	}
	wsPool.Put(ws)
}

// mergeTile sets C[r][j] = tile[r][j] + beta·C[r][j] for r < rows, j < cols
// (C not read when beta == 0).
func mergeTile(c []float32, ldc int, tile []float32, ldt, rows, cols int, beta float32) {
	for r := 0; r < rows; r++ {
		dst := c[r*ldc : r*ldc+cols]
		src := tile[r*ldt : r*ldt+cols]
		if beta == 0 {
			copy(dst, src)
			continue
		}
		for j, v := range src {
			dst[j] = v + beta*dst[j]
		}
	}
}

func roundUp(x, to int) int { return (x + to - 1) / to * to }
