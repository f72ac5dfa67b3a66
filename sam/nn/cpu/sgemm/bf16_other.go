//go:build !amd64

package sgemm

func cvtRowBF16(dst *uint32, src *float32, n32 int, alpha float32) {
	panic("sgemm: cvtRowBF16 without AVX512_BF16")
}

func packPairsBF16(dst *uint32, r0, r1 *float32, n16 int, idx *[32]uint16) {
	panic("sgemm: packPairsBF16 without AVX512_BF16")
}
