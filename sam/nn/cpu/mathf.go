package cpu

import (
	"math"

	"github.com/samgo/samgo/sam/nn"
)

// Fast float32 exp and erf.
//
// The image encoder evaluates about 800 million exps (softmax of the global
// attention blocks) and 150 million erfs (GELU) per 1024×1024 image, and
// Go's math.Exp and math.Erf (float64, full precision, with care for every
// corner of the float64 range) cost several times what a float32 result
// needs. Both functions here evaluate a short polynomial in float64 (in
// scalar Go code a float64 operation costs what a float32 one does, and the
// extra precision leaves the final rounding to float32 as the only
// significant error), so they are as accurate as a float32 result can be:
//
//   - expf: max error 0.51 ulp over [−104, 89] (mathf_test.go);
//   - erff: max absolute error 3.0e-8 (half an ulp of values just below 1);
//   - gelu: max absolute error 2.4e-7 on [−10, 10] (half an ulp at 10).
//
// Speed (one core, AMD EPYC 2.6 GHz, BenchmarkExpf, BenchmarkGELU): the
// softmax loop ≈3.5 ns per exp (math.Exp ≈9 ns), GELU ≈8 ns on unsorted
// inputs (with math.Erf ≈30 ns). The loops are bound by instruction count
// and latency. The model calls the vectorised versions, expSubSum and
// geluFast (AVX-512 or AVX2+FMA assembly, vmath_amd64.s; these functions
// where neither is available or with the purego tag): float32 arithmetic
// with errors of a few float32 ulps (vmath_test.go), 5–40× faster.

const (
	log2e = 1.4426950408889634 // 1/ln 2
	ln2   = 0.6931471805599453
)

// expf returns e^x rounded to float32 (subnormal results included, +Inf
// above ln(MaxFloat32), 0 below ln of half the smallest subnormal, NaN for
// NaN).
func expf(x float32) float32 {
	// Clamping keeps 2^k in range; e^−104 and e^89 still round to 0 and
	// +Inf in float32. Go's min and max propagate NaN.
	return float32(expPoly(min(max(float64(x), -104), 89)))
}

// roundMagic is 1.5·2⁵²: adding it to |y| < 2⁵¹ rounds y to an integer k
// held in the low bits of the sum's mantissa.
const roundMagic = 0x1.8p52

// exp2Frac[j] = 2^(j/32) as float64 bits.
var exp2Frac [32]uint64

func init() {
	for j := range exp2Frac {
		exp2Frac[j] = math.Float64bits(math.Exp2(float64(j) / 32))
	}
}

// expPoly is e^x for x ∈ [−104, 89]:
//
//	e^x = 2^(k/32) · e^r,  k = round(32·x/ln 2),  r = x − k·ln2/32 ∈ [−ln2/64, ln2/64]
//
// with 2^(k/32) = 2^⌊k/32⌋ · exp2Frac[k mod 32] and e^r its Taylor
// polynomial of degree 3, whose truncation error (r⁴/4! ≤ 5.7e-10
// relative) is a hundredth of a float32 ulp. In float64, r is exact enough
// (k·ln2/32 is off by at most 104·2⁻⁵²) and the scaling exact.
func expPoly(x float64) float64 {
	t := x*(32*log2e) + roundMagic
	k := math.Float64bits(t) // low bits: k in two's complement
	r := x - (t-roundMagic)*(ln2/32)
	p := 1 + r*(1+r*(1.0/2+r*(1.0/6)))
	// Adding ⌊k/32⌋ to the exponent field of 2^(j/32) ∈ [1, 2) multiplies
	// it by 2^⌊k/32⌋ (bits of k above the field's 12 are shifted out).
	return p * math.Float64frombits(exp2Frac[k&31]+k>>5<<52)
}

// erf approximation: on [0, 4) the function is a table of polynomials, one
// per interval of width 1/4, each the degree-6 Chebyshev interpolant of
// math.Erf on its interval, in the local variable u ∈ [−1, 1]. The table is
// computed at init from math.Erf; its interpolation error is below 2e-10,
// far under float32 resolution. For x ≥ 4, erf(x) is within 1.6e-8 of 1,
// which rounds to 1 in float32: an extra table entry holds the constant 1
// and inputs are clamped to 4.
const (
	erfPieces  = 16 // intervals of width 1/4 on [0, 4)
	erfDegree  = 6
	erfPerUnit = 4 // intervals per unit of x
	erfMax     = erfPieces / erfPerUnit
)

var erfTable [erfPieces + 1][erfDegree + 1]float64

// erfMaxBits is math.Float64bits(erfMax).
const erfMaxBits = 0x4010000000000000

func init() {
	for i := range erfPieces {
		lo := float64(i) / erfPerUnit
		hi := float64(i+1) / erfPerUnit
		erfTable[i] = chebyshevMonomial(math.Erf, lo, hi)
	}
	erfTable[erfPieces][0] = 1
}

// chebyshevMonomial interpolates f at the erfDegree+1 Chebyshev nodes of
// [lo, hi] and returns the interpolant's coefficients in the monomial basis
// of u = (x − mid)/halfWidth (low degree first).
func chebyshevMonomial(f func(float64) float64, lo, hi float64) [erfDegree + 1]float64 {
	const n = erfDegree + 1
	mid, half := (lo+hi)/2, (hi-lo)/2
	var fv [n]float64
	for j := range n {
		fv[j] = f(mid + half*math.Cos(math.Pi*(float64(j)+0.5)/n))
	}
	// Chebyshev coefficients c_k = (2/n) Σ_j f(u_j) T_k(u_j) (c_0 halved).
	var cheb [n]float64
	for k := range n {
		s := 0.0
		for j := range n {
			s += fv[j] * math.Cos(math.Pi*float64(k)*(float64(j)+0.5)/n)
		}
		cheb[k] = 2 * s / n
	}
	cheb[0] /= 2
	// Σ c_k T_k(u) in monomials, with T_{k+1} = 2u·T_k − T_{k−1}.
	var mono, tPrev, tCur [n]float64
	tPrev[0], tCur[1] = 1, 1
	for i := range n {
		mono[i] += cheb[0]*tPrev[i] + cheb[1]*tCur[i]
	}
	for k := 2; k < n; k++ {
		var tNext [n]float64
		for i := range n {
			if i > 0 {
				tNext[i] = 2 * tCur[i-1]
			}
			tNext[i] -= tPrev[i]
			mono[i] += cheb[k] * tNext[i]
		}
		tPrev, tCur = tCur, tNext
	}
	return mono
}

// erfPoly is erf(z) for z ∈ [0, erfMax] (callers clamp), in float64 with
// an error below 2e-10 on [0, 4) and 1.6e-8 at 4. For NaN it returns NaN.
func erfPoly(z float64) float64 {
	// int(NaN) is an arbitrary integer: the unsigned min sends it (and
	// z = 4) to the last, constant table entry, without a branch.
	i := min(uint(int(z*erfPerUnit)), erfPieces)
	u := z*(2*erfPerUnit) - float64(2*i+1) // (z − mid)/halfWidth
	c := &erfTable[i]
	return c[0] + u*(c[1]+u*(c[2]+u*(c[3]+u*(c[4]+u*(c[5]+u*c[6])))))
}

// erff returns erf(x) to float32 accuracy.
func erff(x float32) float32 {
	z := math.Abs(float64(x))
	return float32(math.Copysign(erfPoly(min(z, erfMax)), float64(x)))
}

// gelu is the exact GELU, 0.5·x·(1 + erf(x/√2)), evaluated in float64 and
// rounded once.
func gelu(x float32) float32 {
	d := [1]float32{x}
	geluSlice(d[:])
	return d[0]
}

// geluSlice applies gelu in place (the loop the model spends its GELU time
// in; erfPoly is inlined).
func geluSlice(d []float32) {
	for i, v := range d {
		x := float64(v)
		// min(|x|/√2, erfMax) on the bits (ordered as the values for
		// z ≥ 0): a conditional move, unlike Go's NaN-aware float min.
		z := math.Float64frombits(min(math.Float64bits(math.Abs(x)*(1/math.Sqrt2)), erfMaxBits))
		e := math.Copysign(erfPoly(z), x) // erf is odd
		d[i] = float32(0.5 * x * (1 + e))
	}
}

// applyAct applies act in place.
func applyAct(d []float32, act nn.Act) {
	switch act {
	case nn.ActGELU:
		geluFast(d)
	case nn.ActReLU:
		for i, v := range d {
			if v < 0 {
				d[i] = 0 // NaN stays NaN, as torch.relu
			}
		}
	}
}

// actCost is the cost of act per element in simple float operations (for
// grain sizes).
func actCost(act nn.Act) int {
	if act == nn.ActGELU {
		return 20
	}
	return 1
}
