package sgemm

// Packing copies a block of op(A) or op(B) into the contiguous, k-major
// panel layout the micro-kernels read (see kernelFunc), so the kernel's
// loads are unit-stride whatever the transposition and leading dimension
// of the caller's matrix. Edge panels are zero-padded to a full mr or nr,
// which lets the kernel always compute a full tile.

// packA packs rows [i0, i0+mc) and columns [p0, p0+kc) of op(A), scaled by
// alpha, into ⌈mc/mr⌉ panels of mr×kc: panel q holds rows q·mr.. at
// dst[q·mr·kc:], element (r, p) at p·mr + r.
func packA(dst []float32, transA bool, a []float32, lda, i0, p0, mc, kc, mr int, alpha float32) {
	for ip := 0; ip < mc; ip += mr {
		rows := min(mr, mc-ip)
		d := dst[ip*kc : ip*kc+mr*kc]
		if transA {
			// A is stored k×m: each k step of the panel is a contiguous
			// run of rows elements.
			for p := 0; p < kc; p++ {
				src := a[(p0+p)*lda+i0+ip:][:rows]
				dp := d[p*mr : p*mr+mr]
				for r, v := range src {
					dp[r] = alpha * v
				}
				for r := rows; r < mr; r++ {
					dp[r] = 0
				}
			}
			continue
		}
		// A is stored m×k: the panel is the transpose of rows×kc of A.
		if rows < mr {
			clear(d)
		}
		transposeScaled(d, mr, a[(i0+ip)*lda+p0:], lda, rows, kc, alpha)
	}
}

// packB packs rows [p0, p0+kc) and columns [j0, j0+nc) of op(B) into
// ⌈nc/nr⌉ panels of kc×nr: panel q holds columns q·nr.. at dst[q·nr·kc:],
// element (p, j) at p·nr + j.
func packB(dst []float32, transB bool, b []float32, ldb, p0, j0, kc, nc, nr int) {
	for jp := 0; jp < nc; jp += nr {
		cols := min(nr, nc-jp)
		d := dst[jp*kc : jp*kc+nr*kc]
		if transB {
			// B is stored n×k: the panel is the transpose of cols×kc of B.
			if cols < nr {
				clear(d) // the zero padding
			}
			transposeScaled(d, nr, b[(j0+jp)*ldb+p0:], ldb, cols, kc, 1)
			continue
		}
		// B is stored k×n: each k step is a contiguous run.
		src := b[p0*ldb+j0+jp:]
		_ = src[(kc-1)*ldb+cols-1]
		switch {
		case haveAVX && nr == 32:
			copyRows32(&d[0], &src[0], ldb, kc, &laneMask[32-cols])
		case haveAVX && nr == 16:
			copyRows16(&d[0], &src[0], ldb, kc, &laneMask[32-cols])
		default:
			if cols < nr {
				clear(d)
			}
			for p := 0; p < kc; p++ {
				copy(d[p*nr:p*nr+cols], src[p*ldb:p*ldb+cols])
			}
		}
	}
}

// laneMask[32-cols:] starts with cols all-ones lanes followed by zeros: the
// load mask of copyRows32 and copyRows16.
var laneMask = func() (m [64]int32) {
	for i := range 32 {
		m[i] = -1
	}
	return m
}()
