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
// their first product, and kept with the tensor (UploadWeight tensors; an
// op's result used as a weight is packed per call). On a CPU without
// AVX512_BF16 the backend computes in float32 (see New's registration).

// weightPack is a weight tensor's bf16 packing: conv marks the im2col
// layout of a k×k convolution (Cout, k, k, Cin), else the torch Linear
// layout (N, K).
type weightPack struct {
	conv bool
	p    *sgemm.PackedBF16
}

// packedWeight returns op(B) = wᵀ (K×N, w stored N×K as data() gives it)
// packed for the bf16 products, cached on t when t is an immutable weight.
func (b *Backend) packedWeight(t *Tensor, conv bool, data func() []float32, K, N int) *sgemm.PackedBF16 {
	if t.buf != nil { // an op's result: it may be recycled, pack it now
		return sgemm.PackBF16(true, K, N, data(), K)
	}
	if wp := t.bf16.Load(); wp != nil && wp.conv == conv {
		return wp.p
	}
	// The packing lives outside the Go heap (offHeapWords says why) until
	// its weightPack is unreachable.
	wp := &weightPack{conv: conv}
	wp.p = sgemm.PackBF16Into(offHeapWords(sgemm.PackedBF16Words(K, N), wp), true, K, N, data(), K)
	// A second goroutine may have packed the same weight meanwhile: the
	// packings are equal, keep the first.
	if !t.bf16.CompareAndSwap(nil, wp) {
		if first := t.bf16.Load(); first.conv == conv {
			return first.p
		}
		return wp.p
	}
	pageOut(t.data) // the products read the packing from now on
	return wp.p
}

// bf16GemmFunc is the signature of sgemm.GemmBF16 and GemmBF16Serial.
type bf16GemmFunc func(m int, alpha float32, a []float32, lda int, b *sgemm.PackedBF16, beta float32, c []float32, ldc int)

// bf16Gemm is the bf16 product for gemmRows' par.
func bf16Gemm(par bool) bf16GemmFunc {
	if par {
		return sgemm.GemmBF16
	}
	return sgemm.GemmBF16Serial
}
