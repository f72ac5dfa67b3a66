package cpu

import (
	"math"
	"testing"

	"github.com/stretchr/testify/require"
)

// The vectorised exp and GELU (AVX-512 where the CPU has it, else the
// scalar code) against float64 math on values the model meets, with every
// tail length of the 16-lane loops.

func TestExpSubSum(t *testing.T) {
	rng := newRNG(70)
	for n := range 40 {
		s := make([]float32, n)
		for i := range s {
			s[i] = 30 * (2*rng.Float32() - 1)
		}
		if n > 3 {
			s[1] = -200 // far below the max: e^−87.3 or smaller, about 0
		}
		m := float32(math.Inf(-1))
		for _, v := range s {
			m = max(m, v)
		}
		want := make([]float64, n)
		var sum float64
		for i, v := range s {
			want[i] = math.Exp(float64(v - m)) // the difference in float32, as the softmax forms it
			sum += want[i]
		}
		got := append([]float32(nil), s...)
		gotSum := expSubSum(got, m)
		for i := range want {
			// 2 ulps of the result or 1e-37 absolute.
			require.InDelta(t, want[i], float64(got[i]), 2.5e-7*want[i]+1e-37, "n %d element %d (x − m = %g)", n, i, s[i]-m)
		}
		if n > 0 {
			require.InDelta(t, sum, gotSum, 1e-6*sum, "n %d sum", n)
		}
	}
	nan := []float32{1, float32(math.NaN()), 0}
	expSubSum(nan, 1)
	require.True(t, math.IsNaN(float64(nan[1])), "NaN stays NaN")
}

func TestGELUFast(t *testing.T) {
	var xs []float32
	for x := -12.0; x <= 12; x += 0.00137 {
		xs = append(xs, float32(x))
	}
	xs = append(xs, 0, float32(math.Inf(1)), float32(math.Inf(-1)), 5.656854, 5.656855, -5.656854) // erf's clamp at 4·√2
	for tail := range 17 {
		d := append([]float32(nil), xs[:len(xs)-tail]...)
		geluFast(d)
		worst := 0.0
		for i, x := range xs[:len(d)] {
			want := 0.5 * float64(x) * (1 + math.Erf(float64(x)/math.Sqrt2))
			if math.IsInf(float64(x), 0) {
				if x > 0 {
					require.True(t, math.IsInf(float64(d[i]), 1))
				} else {
					require.True(t, d[i] == 0 || math.IsNaN(float64(d[i])), "gelu(-Inf) = %g", d[i])
				}
				continue
			}
			worst = max(worst, math.Abs(float64(d[i])-want))
		}
		require.LessOrEqual(t, worst, 1e-6, "tail %d: max |Δ| %.3g", tail, worst)
		if tail == 0 {
			t.Logf("GELU (AVX-512 %v): max |Δ| %.3g on [−12, 12]", haveAVX512, worst)
		}
	}
	nan := []float32{float32(math.NaN()), 1}
	geluFast(nan)
	require.True(t, math.IsNaN(float64(nan[0])), "NaN stays NaN")
}

func BenchmarkSoftmaxExp(b *testing.B) {
	rng := newRNG(71)
	s := make([]float32, 4096) // a global-attention logits row of ViT-B
	for i := range s {
		s[i] = 10 * (2*rng.Float32() - 1)
	}
	row := make([]float32, len(s))
	for _, impl := range []struct {
		name string
		f    func([]float32, float32) float64
	}{{"go", expSubSumGo}, {"vector", expSubSum}} {
		b.Run(impl.name, func(b *testing.B) {
			b.SetBytes(4 * int64(len(s)))
			for b.Loop() {
				copy(row, s)
				impl.f(row, 10)
			}
		})
	}
}

func BenchmarkGELUSlice(b *testing.B) {
	rng := newRNG(72)
	s := make([]float32, 3072) // an MLP row of ViT-B
	for i := range s {
		s[i] = 4 * (2*rng.Float32() - 1)
	}
	row := make([]float32, len(s))
	for _, impl := range []struct {
		name string
		f    func([]float32)
	}{{"go", geluSlice}, {"vector", geluFast}} {
		b.Run(impl.name, func(b *testing.B) {
			b.SetBytes(4 * int64(len(s)))
			for b.Loop() {
				copy(row, s)
				impl.f(row)
			}
		})
	}
}
