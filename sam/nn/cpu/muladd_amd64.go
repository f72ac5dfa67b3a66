//go:build !purego

package cpu

import "golang.org/x/sys/cpu"

//go:noescape
func mulAddAVX512(o, x, w []float32)

//go:noescape
func mulAddAVX2(o, x, w []float32)

//go:noescape
func addAVX512(o, x []float32)

//go:noescape
func addAVX2(o, x []float32)

var (
	mulAddWide    = cpu.X86.HasAVX512F
	mulAddHaswell = cpu.X86.HasAVX2 && cpu.X86.HasFMA
)

// mulAdd does o[i] += x[i]·w[i] for i < len(o) (x and w at least as long):
// the depthwise conv's inner loop over channels. The vector code fuses the
// multiply and the add (one rounding instead of two).
func mulAdd(o, x, w []float32) {
	n := len(o)
	x, w = x[:n], w[:n]
	done := 0
	switch {
	case mulAddWide:
		mulAddAVX512(o, x, w)
		done = n &^ 15
	case mulAddHaswell:
		mulAddAVX2(o, x, w)
		done = n &^ 7
	}
	for i := done; i < n; i++ {
		o[i] += x[i] * w[i]
	}
}

// addInto does o[i] += x[i] for i < len(o) (x at least as long): a bias
// added to a GEMM's output rows.
func addInto(o, x []float32) {
	n := len(o)
	x = x[:n]
	done := 0
	switch {
	case mulAddWide:
		addAVX512(o, x)
		done = n &^ 15
	case mulAddHaswell:
		addAVX2(o, x)
		done = n &^ 7
	}
	for i := done; i < n; i++ {
		o[i] += x[i]
	}
}
