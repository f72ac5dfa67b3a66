package sgemm

// transposeScaled writes dst[p·ldd + r] = alpha·src[r·lds + p] for r < rows
// and p < k. Packing uses it wherever the kernel's layout is the transpose
// of the caller's: A stored m×k into k-major mr-row panels, and B stored n×k
// (transB) into k-major nr-column panels. Scattering one element at a time
// writes every destination line once per row; where AVX is available the
// rows go through 8×8 and 4×4 register transposes instead (pack_amd64.s).
func transposeScaled(dst []float32, ldd int, src []float32, lds, rows, k int, alpha float32) {
	if rows == 0 || k == 0 {
		return
	}
	// Bounds of everything the assembly below touches.
	_ = src[(rows-1)*lds+k-1]
	_ = dst[(k-1)*ldd+rows-1]
	r := 0
	if haveAVX {
		if k8 := k / 8; k8 > 0 {
			for ; r+8 <= rows; r += 8 {
				transpose8(&dst[r], ldd, &src[r*lds], lds, k8, alpha)
				transposeGo(dst, ldd, src, lds, r, r+8, 8*k8, k, alpha)
			}
		}
		if k4 := k / 4; k4 > 0 {
			for ; r+4 <= rows; r += 4 {
				transpose4(&dst[r], ldd, &src[r*lds], lds, k4, alpha)
				transposeGo(dst, ldd, src, lds, r, r+4, 4*k4, k, alpha)
			}
		}
	}
	transposeGo(dst, ldd, src, lds, r, rows, 0, k, alpha)
}

// transposeGo is transposeScaled for rows [r0, r1) and columns [p0, p1),
// in blocks of 64 columns so the destination lines being filled stay in L1.
func transposeGo(dst []float32, ldd int, src []float32, lds, r0, r1, p0, p1 int, alpha float32) {
	const block = 64
	for pb := p0; pb < p1; pb += block {
		pe := min(pb+block, p1)
		for r := r0; r < r1; r++ {
			s := src[r*lds+pb : r*lds+pe]
			d := dst[pb*ldd+r:]
			for p, v := range s {
				d[p*ldd] = alpha * v
			}
		}
	}
}
