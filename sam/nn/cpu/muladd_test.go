package cpu

import (
	"math"
	"math/rand/v2"
	"testing"
)

// TestMulAdd: every length 0…67 (the vector bodies and their tails, on
// whichever of AVX-512, AVX2 or Go this CPU runs), against float64; one
// fused rounding or two, the error stays under 2 ulp of |o| + |x·w|.
func TestMulAdd(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	for n := range 68 {
		o, x, w := make([]float32, n), make([]float32, n+3), make([]float32, n+5)
		want, scale := make([]float64, n), make([]float64, n)
		for i := range n {
			o[i], x[i], w[i] = float32(rng.NormFloat64()), float32(rng.NormFloat64()), float32(rng.NormFloat64())
			want[i] = float64(o[i]) + float64(x[i])*float64(w[i])
			scale[i] = math.Abs(float64(o[i])) + math.Abs(float64(x[i])*float64(w[i]))
		}
		mulAdd(o, x, w)
		for i := range n {
			if d := math.Abs(float64(o[i]) - want[i]); d > 2*ulp32(scale[i]) {
				t.Fatalf("n=%d i=%d: %v, want %v", n, i, o[i], want[i])
			}
		}
	}
}

// TestAddInto: every length 0…67, exact (one rounding either way).
func TestAddInto(t *testing.T) {
	rng := rand.New(rand.NewPCG(5, 6))
	for n := range 68 {
		o, x := make([]float32, n), make([]float32, n+2)
		want := make([]float32, n)
		for i := range n {
			o[i], x[i] = float32(rng.NormFloat64()), float32(rng.NormFloat64())
			want[i] = o[i] + x[i]
		}
		addInto(o, x)
		for i := range n {
			if o[i] != want[i] {
				t.Fatalf("n=%d i=%d: %v, want %v", n, i, o[i], want[i])
			}
		}
	}
}
