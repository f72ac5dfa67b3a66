//go:build !purego

package cpu

import "golang.org/x/sys/cpu"

// The AVX-512 versions of the softmax's exp and of GELU
// (vmath_amd64.s), used where the CPU has AVX-512F; elsewhere the scalar
// code of mathf.go runs. They compute in float32 with FMA (the scalar code
// in float64), so their errors are a few float32 ulps rather than half of
// one (bounds in vmath_test.go); the sums stay in float64.
var haveAVX512 = cpu.X86.HasAVX512F

//go:noescape
func expSubSumAVX512(s []float32, m float32) float64

//go:noescape
func geluAVX512(d []float32, tab *[erfDegree + 1][16]float32)

// erfTable32 is erfTable's first 16 intervals in the layout geluAVX512
// reads: coefficient k of interval i at [k][i].
var erfTable32 [erfDegree + 1][16]float32

func init() {
	for k := range erfDegree + 1 {
		for i := range 16 {
			erfTable32[k][i] = float32(erfTable[i][k])
		}
	}
}

// expSubSum replaces s by exp(s − m) and returns Σ exp(s − m) in float64.
func expSubSum(s []float32, m float32) float64 {
	if haveAVX512 {
		return expSubSumAVX512(s, m)
	}
	return expSubSumGo(s, m)
}

// geluFast applies GELU in place.
func geluFast(d []float32) {
	if haveAVX512 {
		geluAVX512(d, &erfTable32)
		return
	}
	geluSlice(d)
}
