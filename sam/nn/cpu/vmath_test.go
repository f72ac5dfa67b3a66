package cpu

import (
	"math"
	"testing"

	"github.com/stretchr/testify/require"
)

// Every implementation of the vectorised exp and GELU the CPU has
// (vmathImpls: AVX-512, AVX2, the scalar code) against float64 math, on
// values the model meets, special values and every length 0..67 (all tails
// of the 8- and 16-lane loops, one to four blocks), checking that nothing
// past the end is written.

// forEachVMath runs f as a subtest for each implementation.
func forEachVMath(t *testing.T, f func(t *testing.T, impl vmathImpl)) {
	for _, impl := range vmathImpls() {
		t.Run(impl.name, func(t *testing.T) { f(t, impl) })
	}
}

// sentinel fills the slack past a test slice: it must come back unchanged.
const sentinel = float32(-12345.678)

// withSlack returns a copy of s with 16 sentinels after it (in the same
// backing array) and the copy's length-len(s) view.
func withSlack(s []float32) (full, view []float32) {
	full = append(append(make([]float32, 0, len(s)+16), s...), make([]float32, 16)...)
	for i := len(s); i < len(full); i++ {
		full[i] = sentinel
	}
	return full, full[:len(s)]
}

func requireSlack(t *testing.T, full []float32, n int) {
	t.Helper()
	for i := n; i < len(full); i++ {
		require.Equal(t, sentinel, full[i], "length %d: element %d past the end written", n, i)
	}
}

// expTol is the error bound of exp: 2 ulps of the result or 1e-37
// absolute (the vector versions give e^−87.3 ≈ 1.2e−38 below −87.3).
func expTol(want float64) float64 { return 2.5e-7*want + 1e-37 }

func TestExpSubSum(t *testing.T) {
	forEachVMath(t, func(t *testing.T, impl vmathImpl) {
		rng := newRNG(70)
		for n := range 68 {
			s := make([]float32, n)
			for i := range s {
				s[i] = 30 * (2*rng.Float32() - 1)
			}
			if n > 3 {
				s[1] = -200 // far below the max: e^−87.3 or smaller, about 0
			}
			if n > 5 {
				s[n-2] = float32(math.Inf(-1))
			}
			if n > 7 {
				s[3] = -math.MaxFloat32 // s − m overflows to −Inf
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
			full, got := withSlack(s)
			gotSum := impl.expSubSum(got, m)
			for i := range want {
				require.InDelta(t, want[i], float64(got[i]), expTol(want[i]), "n %d element %d (x − m = %g)", n, i, s[i]-m)
			}
			requireSlack(t, full, n)
			if n > 0 {
				require.InDelta(t, sum, gotSum, 1e-6*sum, "n %d sum", n)
			} else {
				require.Zero(t, gotSum)
			}
		}

		// x = s − m over the whole range, m = 0: [−110, 88.72] (the
		// scalar code assumes x ≤ 89; the softmax has x ≤ 0).
		var xs []float32
		for x := -110.0; x < 88.72; x += 0.00173 {
			xs = append(xs, float32(x))
		}
		xs = append(xs, 0, -0x1p-149, 0x1p-149, 1e-30, -1e-30, 88.72283) // 88.72283: largest below 128·ln 2
		got := append([]float32(nil), xs...)
		impl.expSubSum(got, 0)
		worst, at := 0.0, 0.0
		for i, x := range xs {
			want := math.Exp(float64(x))
			g := float64(got[i])
			if math.IsInf(g, 1) && want > math.MaxFloat32*(1-0x1p-25) {
				continue // rounds to +Inf
			}
			require.InDelta(t, want, g, expTol(want), "exp(%g)", x)
			if want > 0x1p-126 {
				ulp := math.Abs(g-want) / math.Pow(2, math.Floor(math.Log2(want))-23)
				if ulp > worst {
					worst, at = ulp, float64(x)
				}
			}
		}
		t.Logf("%s: max error %.2f ulp (at %g) on [−87.3, 88.7]", impl.name, worst, at)

		nan := float32(math.NaN())
		sp := []float32{1, nan, 0, -200, float32(math.Inf(-1))}
		sum := impl.expSubSum(sp, 1)
		require.True(t, math.IsNaN(float64(sp[1])), "NaN stays NaN")
		require.True(t, math.IsNaN(sum), "a NaN makes the sum NaN")
		require.Equal(t, float32(1), sp[0])
		require.InDelta(t, math.Exp(-1), float64(sp[2]), expTol(math.Exp(-1)))
		require.InDelta(t, 0, float64(sp[3]), 1e-37)
		require.InDelta(t, 0, float64(sp[4]), 1e-37)
		allNaN := []float32{float32(math.Inf(-1)), float32(math.Inf(-1))}
		impl.expSubSum(allNaN, float32(math.Inf(-1))) // −Inf − (−Inf) = NaN
		require.True(t, math.IsNaN(float64(allNaN[0])) && math.IsNaN(float64(allNaN[1])))
		if impl.name != "go" {
			// Overflow gives +Inf in the vector versions (VSCALEFPS's result, and
			// AVX2's blend); the scalar code needs x ≤ 89.
			big := []float32{88.72284, 100, 1e30, math.MaxFloat32}
			impl.expSubSum(big, 0)
			for i, v := range big {
				require.True(t, math.IsInf(float64(v), 1), "element %d: %g", i, v)
			}
		}
	})
}

// geluRef is the exact GELU in float64.
func geluRef(x float32) float64 {
	return 0.5 * float64(x) * (1 + math.Erf(float64(x)/math.Sqrt2))
}

func TestGELUFast(t *testing.T) {
	forEachVMath(t, func(t *testing.T, impl vmathImpl) {
		var xs []float32
		for x := -12.0; x <= 12; x += 0.00137 {
			xs = append(xs, float32(x))
		}
		xs = append(xs, 0, 5.656854, 5.656855, -5.656854) // erf's clamp at 4·√2
		d := append([]float32(nil), xs...)
		impl.gelu(d)
		worst := 0.0
		for i, x := range xs {
			worst = max(worst, math.Abs(float64(d[i])-geluRef(x)))
		}
		require.LessOrEqual(t, worst, 1e-6, "max |Δ| %.3g", worst)
		t.Logf("%s: max |Δ| %.3g on [−12, 12]", impl.name, worst)

		// Every length, with the slack past the end.
		rng := newRNG(73)
		for n := range 68 {
			s := make([]float32, n)
			for i := range s {
				s[i] = 8 * (2*rng.Float32() - 1)
			}
			full, got := withSlack(s)
			impl.gelu(got)
			for i, x := range s {
				require.InDelta(t, geluRef(x), float64(got[i]), 1e-6, "n %d element %d (x = %g)", n, i, x)
			}
			requireSlack(t, full, n)
		}

		// Special values.
		inf := float32(math.Inf(1))
		sp := []float32{float32(math.NaN()), inf, -inf, math.MaxFloat32, -math.MaxFloat32, 1e30, -1e30,
			0x1p-149, -0x1p-149, 1e-30, -1e-30, float32(math.Copysign(0, -1)), 13, -13}
		got := append([]float32(nil), sp...)
		impl.gelu(got)
		require.True(t, math.IsNaN(float64(got[0])), "NaN stays NaN")
		require.True(t, math.IsInf(float64(got[1]), 1), "gelu(+Inf) = %g", got[1])
		require.True(t, got[2] == 0 || math.IsNaN(float64(got[2])), "gelu(-Inf) = %g", got[2])
		for i := 3; i < len(sp); i++ {
			x := sp[i]
			if x > 0 && x >= 13 {
				require.Equal(t, x, got[i], "gelu(%g)", x) // erf = 1
				continue
			}
			require.InDelta(t, geluRef(x), float64(got[i]), 1e-6*max(1, math.Abs(geluRef(x))), "gelu(%g)", x)
		}
	})
}

// TestVMathDispatch forces each path of expSubSum and geluFast and checks
// that the dispatchers then give that implementation's results.
func TestVMathDispatch(t *testing.T) {
	impls := vmathImpls()
	require.Equal(t, impls[0].name, vmathPath(), "the fastest implementation is the default")
	require.Equal(t, "go", impls[len(impls)-1].name)
	rng := newRNG(74)
	s := make([]float32, 67)
	for i := range s {
		s[i] = 20 * (2*rng.Float32() - 1)
	}
	expOf := func(f func([]float32, float32) float64) ([]float32, float64) {
		d := append([]float32(nil), s...)
		return d, f(d, 20)
	}
	geluOf := func(f func([]float32)) []float32 {
		d := append([]float32(nil), s...)
		f(d)
		return d
	}
	for _, impl := range impls {
		t.Run(impl.name, func(t *testing.T) {
			restore := forceVMath(impl.name)
			defer restore()
			require.Equal(t, impl.name, vmathPath())
			gotE, gotSum := expOf(expSubSum)
			wantE, wantSum := expOf(impl.expSubSum)
			require.Equal(t, wantE, gotE)
			require.Equal(t, wantSum, gotSum)
			require.Equal(t, geluOf(impl.gelu), geluOf(geluFast))
		})
	}
	require.Equal(t, impls[0].name, vmathPath(), "restored")

	// AVX2 evaluates AVX-512's formulas: the same bits for each element
	// (exp's sums are added in another order).
	if len(impls) == 3 {
		e512, _ := expOf(impls[0].expSubSum)
		e2, _ := expOf(impls[1].expSubSum)
		require.Equal(t, e512, e2, "exp")
		require.Equal(t, geluOf(impls[0].gelu), geluOf(impls[1].gelu), "gelu")
	}
}

func BenchmarkSoftmaxExp(b *testing.B) {
	rng := newRNG(71)
	s := make([]float32, 4096) // a global-attention logits row of ViT-B
	for i := range s {
		s[i] = 10 * (2*rng.Float32() - 1)
	}
	row := make([]float32, len(s))
	for _, impl := range vmathImpls() {
		b.Run(impl.name, func(b *testing.B) {
			b.SetBytes(4 * int64(len(s)))
			for b.Loop() {
				copy(row, s)
				impl.expSubSum(row, 10)
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
	for _, impl := range vmathImpls() {
		b.Run(impl.name, func(b *testing.B) {
			b.SetBytes(4 * int64(len(s)))
			for b.Loop() {
				copy(row, s)
				impl.gelu(row)
			}
		})
	}
}
