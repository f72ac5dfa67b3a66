package sgemm

import (
	"fmt"
	"runtime"
)

// PackedF32 is a k×n matrix op(B) packed once in the panel layout of this
// CPU's float32 kernels (packB over the whole of k): the right-hand side of
// products that reuse it, such as a layer's weights or an attention head's
// keys and values, which Gemm would otherwise repack on every call (B's
// packing, mostly each head's keys repacked for every block of query rows,
// was about 6% of the ViT-B encoder's time; with PackedF32 the fp32
// encoder went from 0.85× to 0.74× ONNX Runtime's time in bench/peers).
// Products with it (GemmPacked) run the same kernels in
// the same order as Gemm, so the results are the same bits. Immutable once
// packed; safe for concurrent use.
type PackedF32 struct {
	K, N int
	kn   *kernel // the kernel family it is packed for (its nr)
	data []float32
}

// packedKernel is the kernel family for an n-column packed B.
func packedKernel(n int) *kernel { return active.forShape(1<<30, n) }

// PackedF32Floats is the size, in float32s, of a packed k×n matrix.
func PackedF32Floats(k, n int) int {
	return roundUp(n, packedKernel(n).nr) * k
}

// PackF32Into packs op(B) (k×n; with transB B is stored n×k, ldb ≥ k,
// else k×n, ldb ≥ n) into buf (at least PackedF32Floats(k, n) floats).
func PackF32Into(buf []float32, transB bool, k, n int, b []float32, ldb int) *PackedF32 {
	if len(buf) < PackedF32Floats(k, n) {
		panic(fmt.Sprintf("sgemm: PackF32Into: %d floats for a %d×%d matrix that needs %d", len(buf), k, n, PackedF32Floats(k, n)))
	}
	p := &PackedF32{data: buf}
	p.Pack(transB, k, n, b, ldb)
	return p
}

// Pack is PackF32Into into p's memory, reallocated when it is too small
// (PackedBF16.Pack's counterpart, for buffers reused product after
// product).
func (p *PackedF32) Pack(transB bool, k, n int, b []float32, ldb int) {
	checkPack("PackF32", transB, k, n, b, ldb)
	size := PackedF32Floats(k, n)
	if cap(p.data) < size {
		p.data = make([]float32, size)
	}
	*p = PackedF32{K: k, N: n, kn: packedKernel(n), data: p.data[:size]}
	if k > 0 && n > 0 {
		packB(p.data, transB, b, ldb, 0, 0, k, n, p.kn.nr)
	}
}

// GemmPacked computes C (m×n) = alpha·A·B + beta·C on all cores, A m×k
// row-major (lda ≥ k), B packed by PackF32Into. When beta == 0, C is not
// read.
func GemmPacked(m int, alpha float32, a []float32, lda int, b *PackedF32, beta float32, c []float32, ldc int) {
	if packedTrivial(m, b.N, b.K, alpha, a, lda, beta, c, ldc) {
		return
	}
	threads := runtime.GOMAXPROCS(0)
	n, k := b.N, b.K
	kn := b.kn.forShape(m, n)
	if threads == 1 || 2*float64(m)*float64(n)*float64(k) < parallelMinFlops {
		gemmBlockedB(kn, false, false, m, n, k, alpha, a, lda, nil, 0, b, 0, beta, c, ldc)
		return
	}
	if m >= n {
		runStripes(threads, m, kn.mr, func(lo, hi int) {
			gemmBlockedB(kn, false, false, hi-lo, n, k, alpha, a[lo*lda:], lda, nil, 0, b, 0, beta, c[lo*ldc:], ldc)
		})
		return
	}
	runStripes(threads, n, kn.nr, func(lo, hi int) {
		gemmBlockedB(kn, false, false, m, hi-lo, k, alpha, a, lda, nil, 0, b, lo, beta, c[lo:], ldc)
	})
}

// GemmPackedSerial is GemmPacked on the calling goroutine only.
func GemmPackedSerial(m int, alpha float32, a []float32, lda int, b *PackedF32, beta float32, c []float32, ldc int) {
	if packedTrivial(m, b.N, b.K, alpha, a, lda, beta, c, ldc) {
		return
	}
	gemmBlockedB(b.kn, false, false, m, b.N, b.K, alpha, a, lda, nil, 0, b, 0, beta, c, ldc)
}
