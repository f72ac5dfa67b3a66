package sgemm

import (
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/samgo/samgo/sam/float16"
)

// TestCvtRowBF16 checks the assembly converter against ToBF16 bit for bit
// (on normal numbers, ties included; the instruction treats denormals as
// zero).
func TestCvtRowBF16(t *testing.T) {
	if !bf16Fast {
		t.Skip("no AVX512_BF16 on this CPU")
	}
	rng := rand.New(rand.NewPCG(1, 2))
	src := make([]float32, 96)
	for i := range src {
		u := rng.Uint32()&0x807fffff | (64+rng.Uint32N(128))<<23 // normal, and so is alpha·x
		if i%3 == 0 {
			u = u&^0xffff | 0x8000 // a tie
		}
		src[i] = math.Float32frombits(u)
	}
	for _, alpha := range []float32{1, -0.375} {
		dst := make([]uint32, 48)
		cvtRowBF16(&dst[0], &src[0], 3, alpha)
		for i, w := range dst {
			require.Equal(t, pairBF16(alpha*src[2*i], alpha*src[2*i+1]), w, "alpha %g word %d", alpha, i)
		}
	}
}

// TestGemmBF16 checks GemmBF16 and GemmBF16Serial, with every kernel
// family this CPU has and the Go kernel, against the float64 product of the
// bf16-rounded operands (alpha·A rounded, as the product rounds it), with
// the float32 accumulation bound of check.
func TestGemmBF16(t *testing.T) {
	fams := map[string]map[int]bf16Family{"go": {}}
	if bf16Fast {
		fams["avx512bf16"] = bf16Families
	}
	var cases []gemmCase
	for _, m := range []int{1, 3, 4, 5, 8, 9, 12, 13, 27} {
		for _, n := range []int{1, 7, 16, 17, 32, 33, 70} {
			for _, k := range []int{1, 2, 5, 64, 401} {
				cases = append(cases, gemmCase{m: m, n: n, k: k, alpha: 1, beta: 0})
			}
		}
	}
	cases = append(cases,
		gemmCase{transB: true, m: 13, n: 33, k: 7, alpha: 1, beta: 0, pad: 3},
		gemmCase{transB: true, m: 30, n: 100, k: 390, alpha: 0.125, beta: 0.5, pad: 1},
		gemmCase{m: 25, n: 64, k: 196, alpha: -2, beta: 1, pad: 2},
		gemmCase{transB: true, m: 100, n: 600, k: 800, alpha: 1, beta: 0}, // several kc and nc blocks
		gemmCase{m: 7, n: 2048, k: 256, alpha: 1, beta: 0},
	)
	saved := bf16Families
	defer func() { bf16Families = saved }()
	for name, fam := range fams {
		bf16Families = fam
		for _, tc := range cases {
			if name == "go" && tc.m*tc.n*tc.k > 1<<20 {
				continue
			}
			t.Run(fmt.Sprintf("%s/%v", name, tc), func(t *testing.T) {
				rng := rand.New(rand.NewPCG(uint64(tc.m*1000+tc.n), uint64(tc.k)))
				o := newOperands(rng, tc)
				packed := PackBF16(tc.transB, tc.k, tc.n, o.b, o.ldb)
				serial := slices.Clone(o.c)
				GemmBF16(tc.m, tc.alpha, o.a, o.lda, packed, tc.beta, o.c, o.ldc)
				GemmBF16Serial(tc.m, tc.alpha, o.a, o.lda, packed, tc.beta, serial, o.ldc)
				require.Equal(t, serial, o.c, "serial and parallel products differ")
				// The reference: the same product on the rounded operands.
				ref := o
				ref.a = slices.Clone(o.a)
				for i := range tc.m {
					for p := range tc.k {
						ref.a[i*o.lda+p] = float16.FromBF16(float16.ToBF16(tc.alpha * o.a[i*o.lda+p]))
					}
				}
				ref.b = slices.Clone(o.b)
				for i, v := range ref.b {
					if !math.IsNaN(float64(v)) {
						ref.b[i] = float16.FromBF16(float16.ToBF16(v))
					}
				}
				rc := tc
				rc.alpha = 1
				check(t, rc, ref)
			})
		}
	}
}

// TestGemmBF16Error states what bf16 costs on a ViT-B-like product (K =
// 768, values of one sign mixed): the error against the float32 product,
// relative to the output's standard deviation, is about 2⁻⁹ (the rounding
// of the inputs), far above float32's and far below the data's spread.
func TestGemmBF16Error(t *testing.T) {
	const m, n, k = 64, 96, 768
	rng := rand.New(rand.NewPCG(3, 4))
	a, b := make([]float32, m*k), make([]float32, n*k)
	for i := range a {
		a[i] = float32(rng.NormFloat64())
	}
	for i := range b {
		b[i] = float32(rng.NormFloat64() / math.Sqrt(k))
	}
	want, got := make([]float32, m*n), make([]float32, m*n)
	Gemm(false, true, m, n, k, 1, a, k, b, k, 0, want, n)
	GemmBF16(m, 1, a, k, PackBF16(true, k, n, b, k), 0, got, n)
	var d2, s2, maxd float64
	for i := range want {
		d := float64(got[i] - want[i])
		d2 += d * d
		s2 += float64(want[i]) * float64(want[i])
		maxd = max(maxd, math.Abs(d))
	}
	rel := math.Sqrt(d2 / s2)
	t.Logf("bf16 vs fp32: rms error %.2e of the output's rms, max |Δ| %.2e", rel, maxd)
	require.Less(t, rel, 4e-3)
	require.Greater(t, rel, 1e-4, "the product did not round to bf16")
}
