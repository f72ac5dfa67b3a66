package sgemm

import (
	"fmt"
	"math/rand/v2"
	"slices"
	"testing"

	"github.com/stretchr/testify/require"
)

// TestGemmPacked checks that products with a prepacked B give the same
// bits as Gemm and GemmSerial on the same operands, with every kernel this
// CPU has (ragged tiles, several kc and nc blocks, narrow and short
// kernels, both storage orders of B, beta ≠ 0).
func TestGemmPacked(t *testing.T) {
	var cases []gemmCase
	for _, m := range []int{1, 5, 8, 13, 30, 100} {
		for _, n := range []int{3, 16, 17, 40, 600} {
			for _, k := range []int{9, 100, 800} {
				cases = append(cases, gemmCase{transB: (m+n+k)%2 == 0, m: m, n: n, k: k, alpha: 1, beta: 0})
			}
		}
	}
	cases = append(cases, gemmCase{transB: true, m: 301, n: 1100, k: 400, alpha: 0.5, beta: 0.25, pad: 3})
	saved := active
	defer func() { active = saved }()
	for _, kn := range kernels {
		active = kn
		for _, tc := range cases {
			if tc.m*tc.n*tc.k <= tinyMaxMNK {
				continue // Gemm's plain loop
			}
			t.Run(fmt.Sprintf("%s/%v", kn.name, tc), func(t *testing.T) {
				rng := rand.New(rand.NewPCG(uint64(tc.m), uint64(tc.n*tc.k)))
				o := newOperands(rng, tc)
				p := PackF32Into(make([]float32, PackedF32Floats(tc.k, tc.n)), tc.transB, tc.k, tc.n, o.b, o.ldb)
				for _, par := range []bool{false, true} {
					want, got := slices.Clone(o.c), slices.Clone(o.c)
					if par {
						Gemm(false, tc.transB, tc.m, tc.n, tc.k, tc.alpha, o.a, o.lda, o.b, o.ldb, tc.beta, want, o.ldc)
						GemmPacked(tc.m, tc.alpha, o.a, o.lda, p, tc.beta, got, o.ldc)
					} else {
						GemmSerial(false, tc.transB, tc.m, tc.n, tc.k, tc.alpha, o.a, o.lda, o.b, o.ldb, tc.beta, want, o.ldc)
						GemmPackedSerial(tc.m, tc.alpha, o.a, o.lda, p, tc.beta, got, o.ldc)
					}
					require.Equal(t, want, got, "parallel %v", par)
				}
			})
		}
	}
}
