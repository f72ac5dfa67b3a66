package cpu

import "github.com/samgo/samgo/sam/nn/cpu/sgemm"

// The bf16 precision (nn.Options{Precision: "bf16"}, WithBF16): the
// encoder's and decoder's large products — Linear, Conv2D and both
// products of attention — round their inputs to bf16 and run on
// AVX512_BF16 (sgemm.GemmBF16: exact products, float32 sums). Everything
// else stays float32: activations between ops, biases and activations
// applied to the float32 results, layernorm statistics, softmax, the
// relative-position terms, the mask upscaling and the transposed
// convolutions of the decoder. Weights are rounded and packed once, on
// their first product, and kept with the tensor (below). On a CPU without
// AVX512_BF16 the backend computes in float32 (see New's registration).

// Weights packed once: the right-hand side of Linear and Conv2D (wᵀ) is
// packed on its first product into the layout the micro-kernels read —
// float32 panels (sgemm.PackedF32: the same products, bit for bit, without
// repacking the weight per call) or, on a bf16 backend, bf16 pairs
// (sgemm.PackedBF16) — and kept with the tensor. Only UploadWeight tensors
// are cached (immutable by contract); an op's result used as a weight is
// used as it is (float32) or packed per call (bf16).
//
// The packings live outside the Go heap (offHeap says why), and once a
// weight is packed its float32 pages are paged out (pageOut): when they are
// the memory-mapped checkpoint's, the process does not hold the weights
// twice.

// weightPack is a weight tensor's packing: conv marks the im2col layout of
// a k×k convolution (Cout, k, k, Cin), else the torch Linear layout (N, K);
// one of bf and f is set.
type weightPack struct {
	conv bool
	bf   *sgemm.PackedBF16
	f    *sgemm.PackedF32
}

// rhs is the right-hand side of a product c = a·wᵀ with w (N, K): packed
// (bf or f) or, for float32 non-weights, w itself.
type rhs struct {
	bf   *sgemm.PackedBF16
	f    *sgemm.PackedF32
	w    []float32
	K, N int
}

// mul computes c (m×N, stride ldc) = a (m×K, stride lda)·wᵀ, on all cores
// when par is set, else on the calling goroutine (gemmRows' par).
func (r rhs) mul(par bool, m int, a []float32, lda int, c []float32, ldc int) {
	switch {
	case r.bf != nil && par:
		sgemm.GemmBF16(m, 1, a, lda, r.bf, 0, c, ldc)
	case r.bf != nil:
		sgemm.GemmBF16Serial(m, 1, a, lda, r.bf, 0, c, ldc)
	case r.f != nil && par:
		sgemm.GemmPacked(m, 1, a, lda, r.f, 0, c, ldc)
	case r.f != nil:
		sgemm.GemmPackedSerial(m, 1, a, lda, r.f, 0, c, ldc)
	default:
		fp32Gemm(par)(false, true, m, r.N, r.K, 1, a, lda, r.w, r.K, 0, c, ldc)
	}
}

// weightRHS is the right-hand side for w = t (N×K as data() gives it:
// t's data, or a reordering of it for a convolution, conv set).
func (b *Backend) weightRHS(t *Tensor, conv bool, data func() []float32, K, N int) rhs {
	r := rhs{K: K, N: N}
	if t.buf == nil { // a weight: packed once
		wp := t.packed.Load()
		if wp == nil {
			wp = b.packWeight(t, conv, data, K, N)
		}
		if wp.conv == conv && (wp.bf != nil) == b.bf16 {
			r.bf, r.f = wp.bf, wp.f
			return r
		}
	}
	// An op's result (it may be recycled) or a weight packed for another
	// use (a fork of another precision): no cache, nothing off the heap.
	if b.bf16 {
		r.bf = sgemm.PackBF16(true, K, N, data(), K)
	} else {
		r.w = data()
	}
	return r
}

// packWeight packs weight t for this backend's products and returns t's
// packing: this one, or the one another goroutine stored first (the
// packing this call made is then unreachable and its memory unmapped; the
// products only ever use the stored one, which lives as long as t).
func (b *Backend) packWeight(t *Tensor, conv bool, data func() []float32, K, N int) *weightPack {
	wp := &weightPack{conv: conv}
	if b.bf16 {
		wp.bf = sgemm.PackBF16Into(offHeap[uint32](sgemm.PackedBF16Words(K, N), wp), true, K, N, data(), K)
	} else {
		wp.f = sgemm.PackF32Into(offHeap[float32](sgemm.PackedF32Floats(K, N), wp), true, K, N, data(), K)
	}
	if !t.packed.CompareAndSwap(nil, wp) {
		return t.packed.Load()
	}
	pageOut(t.data) // the products read the packing from now on
	return wp
}
