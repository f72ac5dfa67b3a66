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
// their first product, and kept with the tensor (weights.go). On a CPU without
// AVX512_BF16 the backend computes in float32 (see New's registration).

// bf16GemmFunc is the signature of sgemm.GemmBF16 and GemmBF16Serial.
type bf16GemmFunc func(m int, alpha float32, a []float32, lda int, b *sgemm.PackedBF16, beta float32, c []float32, ldc int)

// bf16Gemm is the bf16 product for gemmRows' par.
func bf16Gemm(par bool) bf16GemmFunc {
	if par {
		return sgemm.GemmBF16
	}
	return sgemm.GemmBF16Serial
}
