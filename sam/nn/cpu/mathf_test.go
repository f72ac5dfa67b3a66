package cpu

import (
	"flag"
	"math"
	"testing"

	"github.com/stretchr/testify/require"
)

// -mathf.all sweeps every float32 in the tested ranges instead of every
// 61st (a couple of minutes instead of a couple of seconds).
var mathfAll = flag.Bool("mathf.all", false, "test expf and erff on every float32 in range")

// ulp32 is the spacing of float32 values at |v| (v a float64 result).
func ulp32(v float64) float64 {
	v = math.Abs(v)
	if v < 0x1p-126 {
		return 0x1p-149 // subnormals
	}
	_, e := math.Frexp(v) // v = f·2^e, f ∈ [0.5, 1)
	return math.Ldexp(1, e-24)
}

// sweep calls f on float32 values from lo to hi (same sign, by bit
// pattern), every step-th one, and the endpoints.
func sweep(lo, hi float32, f func(x float32)) {
	step := uint32(1021)
	if *mathfAll {
		step = 1
	}
	a, b := math.Float32bits(lo), math.Float32bits(hi)
	if a > b {
		a, b = b, a
	}
	for u := a; u <= b && u >= a; u += step {
		f(math.Float32frombits(u))
	}
	f(lo)
	f(hi)
}

func TestExpf(t *testing.T) {
	worst, at := 0.0, float32(0)
	check := func(x float32) {
		got := float64(expf(x))
		want := math.Exp(float64(x))
		if float32(want) == 0 || math.IsInf(float64(float32(want)), 0) {
			require.Equal(t, float32(want), float32(got), "exp(%g)", x)
			return
		}
		e := math.Abs(got-want) / ulp32(want)
		if e > worst {
			worst, at = e, x
		}
	}
	sweep(0, 89, check)
	sweep(-0.0, -104, check)
	t.Logf("expf: max error %.3f ulp (at %g)", worst, at)
	require.Less(t, worst, 0.6)

	require.Equal(t, float32(1), expf(0))
	require.Equal(t, float32(0), expf(float32(math.Inf(-1))))
	require.True(t, math.IsInf(float64(expf(float32(math.Inf(1)))), 1))
	require.True(t, math.IsInf(float64(expf(89)), 1))
	require.Equal(t, float32(0), expf(-105))
	require.True(t, math.IsNaN(float64(expf(float32(math.NaN())))))
}

func TestErff(t *testing.T) {
	worst, at := 0.0, float32(0)
	check := func(x float32) {
		got := float64(erff(x))
		want := math.Erf(float64(x))
		if e := math.Abs(got - want); e > worst {
			worst, at = e, x
		}
		if erff(-x) != -erff(x) {
			t.Fatalf("erff not odd at %g", x)
		}
	}
	sweep(0, 10, check)
	// And a uniform sweep, which weights the large arguments more.
	for i := range 1_200_001 {
		check(float32(-6 + float64(i)*1e-5))
	}
	t.Logf("erff: max abs error %.3g (at %g)", worst, at)
	require.LessOrEqual(t, worst, 3.1e-8) // half an ulp below 1: as close as float32 gets
	require.Equal(t, float32(1), erff(float32(math.Inf(1))))
	require.Equal(t, float32(-1), erff(float32(math.Inf(-1))))
	require.True(t, math.IsNaN(float64(erff(float32(math.NaN())))))
}

func TestGELU(t *testing.T) {
	require.Equal(t, math.Float64bits(erfMax), uint64(erfMaxBits))
	worstAbs, worstRel := 0.0, 0.0
	for i := range 2_000_001 {
		x := float32(-10 + float64(i)*1e-5)
		got := float64(gelu(x))
		want := refGELU(float64(x))
		worstAbs = max(worstAbs, math.Abs(got-want))
		if math.Abs(want) > 1e-3 {
			worstRel = max(worstRel, math.Abs(got-want)/math.Abs(want))
		}
	}
	t.Logf("gelu on [-10, 10]: max abs error %.3g, max rel error %.3g where |gelu| > 1e-3", worstAbs, worstRel)
	require.Less(t, worstAbs, 6e-7) // half an ulp at 10
	require.Less(t, worstRel, 1e-6)
	require.True(t, math.IsNaN(float64(gelu(float32(math.NaN())))))
	require.True(t, math.IsInf(float64(gelu(float32(math.Inf(1)))), 1))
	require.Equal(t, float32(100), gelu(100))
	require.Equal(t, float32(0), gelu(-100))
}

func BenchmarkExpf(b *testing.B) {
	d := make([]float32, 4096)
	for i := range d {
		d[i] = -float32(i) / 256
	}
	b.Run("expRow", func(b *testing.B) {
		s := make([]float32, len(d))
		for b.Loop() {
			copy(s, d)
			expRow(s, rowMax(s))
		}
		b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*len(d)), "ns/exp")
	})
	b.Run("math.Exp", func(b *testing.B) {
		s := make([]float32, len(d))
		for b.Loop() {
			for i, v := range d {
				s[i] = float32(math.Exp(float64(v)))
			}
		}
		b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*len(d)), "ns/exp")
	})
}

func BenchmarkGELU(b *testing.B) {
	d := make([]float32, 4096)
	for i := range d {
		d[i] = float32(i)/512 - 4
	}
	b.Run("geluSlice_random", func(b *testing.B) {
		// Unsorted inputs, a third of them beyond the polynomial range,
		// too many for a branch predictor to learn.
		r := randData(newRNG(1), 1<<20)
		s := make([]float32, len(r))
		for b.Loop() {
			for i, v := range r {
				s[i] = 9 * v
			}
			geluSlice(s)
		}
		b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*len(r)), "ns/gelu")
	})
	b.Run("geluSlice", func(b *testing.B) {
		s := make([]float32, len(d))
		for b.Loop() {
			copy(s, d)
			geluSlice(s)
		}
		b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*len(d)), "ns/gelu")
	})
	b.Run("math.Erf", func(b *testing.B) {
		s := make([]float32, len(d))
		for b.Loop() {
			for i, v := range d {
				x := float64(v)
				s[i] = float32(0.5 * x * (1 + math.Erf(x/math.Sqrt2)))
			}
		}
		b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*len(d)), "ns/gelu")
	})
}
