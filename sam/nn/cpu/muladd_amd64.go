//go:build !purego

package cpu

//go:noescape
func mulAddAVX512(o, x, w []float32)

//go:noescape
func mulAddAVX2(o, x, w []float32)

//go:noescape
func addAVX512(o, x []float32)

//go:noescape
func addAVX2(o, x []float32)

// mulAdd does o[i] += x[i]·w[i] for i < len(o) (x and w at least as long):
// the depthwise conv's inner loop over channels. The vector code fuses the
// multiply and the add (one rounding instead of two).
func mulAdd(o, x, w []float32) {
	n := len(o)
	x, w = x[:n], w[:n]
	done := 0
	switch {
	case haveAVX512:
		mulAddAVX512(o, x, w)
		done = n &^ 15
	case haveAVX2:
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
	case haveAVX512:
		addAVX512(o, x)
		done = n &^ 15
	case haveAVX2:
		addAVX2(o, x)
		done = n &^ 7
	}
	for i := done; i < n; i++ {
		o[i] += x[i]
	}
}
