//go:build !purego

package cpu

import "math"

//go:noescape
func lnSumAVX512(x []float32) float64

//go:noescape
func lnSqDevAVX512(x []float32, mean float64) float64

//go:noescape
func lnApplyAVX512(out, x, w, b []float32, meanHi, meanLo, rstd float32)

// layerNormRow normalises one row: out = (x − mean)/√(var + eps)·w + b
// with the statistics in float64 (biased variance, two passes). With
// AVX-512 and a multiple of 16 channels the sums run 8 float64 lanes wide
// and the normalisation in float32 (at most a few float32 ulps from the
// scalar code's float64 evaluation); otherwise layerNormRowGo.
func layerNormRow(or, xr, w, b []float32, eps float32) {
	C := len(xr)
	if !haveAVX512 || C%16 != 0 {
		layerNormRowGo(or, xr, w, b, eps)
		return
	}
	mean := lnSumAVX512(xr) / float64(C)
	ss := lnSqDevAVX512(xr, mean)
	rstd := 1 / math.Sqrt(ss/float64(C)+float64(eps))
	hi := float32(mean)
	lnApplyAVX512(or[:C], xr, w[:C], b[:C], hi, float32(mean-float64(hi)), float32(rstd))
}
