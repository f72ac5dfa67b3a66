//go:build !amd64 || purego

package cpu

// mulAdd does o[i] += x[i]·w[i] for i < len(o) (x and w at least as long).
func mulAdd(o, x, w []float32) {
	x, w = x[:len(o)], w[:len(o)]
	for i := range o {
		o[i] += x[i] * w[i]
	}
}

// addInto does o[i] += x[i] for i < len(o) (x at least as long).
func addInto(o, x []float32) {
	x = x[:len(o)]
	for i := range o {
		o[i] += x[i]
	}
}
