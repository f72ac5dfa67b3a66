package sgemm

import "unsafe"

// kernelFunc computes one mr×nr tile of C from packed panels:
//
//	C[r][j] = Σ_{p<k} a[p·mr + r] · b[p·ldb + j]  + beta·C[r][j]
//
// with C[r][j] at c[r·ldc + j]. a is an mr-row panel of op(A) stored k-major
// (mr floats per k step, rows past the edge of A zero-padded); b holds k rows
// of nr floats, ldb apart (ldb == nr for a packed panel). When beta == 0, C
// is only written. All lengths are in float32 elements. k may be 0.
//
// Kernels with kernel.partial set write only r < rows and j < cols, so edge
// tiles can go straight to C; the others ignore rows and cols and always
// write the full mr×nr tile.
type kernelFunc func(k int, a, b *float32, ldb int, c *float32, ldc int, beta float32, rows, cols int)

// kernel is a micro-kernel together with the cache blocking that suits it.
//
// The loop nest (see gemmBlocked) keeps an mr×kc panel of A in L1 while it
// streams the kc×nc block of packed B from L2, nr columns at a time, so
// (mr + nr)·kc·4 bytes should fit L1 comfortably and kc·nc·4 bytes L2.
// mc bounds the packed A block (mc×kc), which lives in L3.
type kernel struct {
	name       string
	mr, nr     int
	kc, mc, nc int
	fn         kernelFunc
	partial    bool // fn honours rows and cols (see kernelFunc)
	// short lists kernels with the same nr and fewer rows, fewest first.
	// Products with m ≤ short[i].mr use them so that a 7-row product does
	// not pay for a 12-row tile.
	short []*kernel
	// narrow, if set, is the kernel family for products with n ≤ narrow.nr
	// (attention with few tokens or small heads), which would waste most of
	// a wide tile.
	narrow *kernel
}

// forShape returns the kernel to use for an m×n product.
func (k *kernel) forShape(m, n int) *kernel {
	if k.narrow != nil && n <= k.narrow.nr {
		k = k.narrow
	}
	for _, s := range k.short {
		if m <= s.mr {
			return s
		}
	}
	return k
}

// active is the kernel selected at init for this CPU (see kernel_*.go).
var active *kernel

// kernels lists every kernel this CPU can run, best first; the tests run
// all of them.
var kernels []*kernel

// goKernel is the portable micro-kernel: a 4×4 tile held in 16 scalar
// accumulators. Go does not vectorise it; it exists for architectures
// without an assembly kernel and for amd64 CPUs without AVX2+FMA.
func goKernel4x4(k int, a, b *float32, ldb int, c *float32, ldc int, beta float32, _, _ int) {
	const mr, nr = 4, 4
	var c00, c01, c02, c03 float32
	var c10, c11, c12, c13 float32
	var c20, c21, c22, c23 float32
	var c30, c31, c32, c33 float32
	if k > 0 {
		as := unsafe.Slice(a, k*mr)
		bs := unsafe.Slice(b, (k-1)*ldb+nr)
		for p := 0; p < k; p++ {
			ap := as[p*mr : p*mr+mr : p*mr+mr]
			bp := bs[p*ldb : p*ldb+nr : p*ldb+nr]
			a0, a1, a2, a3 := ap[0], ap[1], ap[2], ap[3]
			b0, b1, b2, b3 := bp[0], bp[1], bp[2], bp[3]
			c00 += a0 * b0
			c01 += a0 * b1
			c02 += a0 * b2
			c03 += a0 * b3
			c10 += a1 * b0
			c11 += a1 * b1
			c12 += a1 * b2
			c13 += a1 * b3
			c20 += a2 * b0
			c21 += a2 * b1
			c22 += a2 * b2
			c23 += a2 * b3
			c30 += a3 * b0
			c31 += a3 * b1
			c32 += a3 * b2
			c33 += a3 * b3
		}
	}
	cs := unsafe.Slice(c, 3*ldc+nr)
	acc := [mr][nr]float32{
		{c00, c01, c02, c03},
		{c10, c11, c12, c13},
		{c20, c21, c22, c23},
		{c30, c31, c32, c33},
	}
	for r := 0; r < mr; r++ {
		row := cs[r*ldc : r*ldc+nr : r*ldc+nr]
		if beta == 0 {
			copy(row, acc[r][:])
			continue
		}
		for j := range row {
			row[j] = acc[r][j] + beta*row[j]
		}
	}
}

var goKernel = &kernel{
	name: "go4x4", mr: 4, nr: 4,
	kc: 256, mc: 512, nc: 1024,
	fn: goKernel4x4,
}
