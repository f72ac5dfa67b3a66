//go:build !amd64

package sgemm

func cvtRowBF16(dst *uint32, src *float32, n32 int, alpha float32) {
	panic("sgemm: cvtRowBF16 without AVX512_BF16")
}
