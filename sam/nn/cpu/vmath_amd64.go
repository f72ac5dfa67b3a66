//go:build !purego

package cpu

import "golang.org/x/sys/cpu"

// The AVX-512 and AVX2 versions of the softmax's exp and of GELU
// (vmath_amd64.s): AVX-512 where the CPU has AVX-512F, else AVX2 where it
// has AVX2 and FMA, else the scalar code of mathf.go. They compute in
// float32 with FMA (the scalar code in float64), so their errors are a few
// float32 ulps rather than half of one (bounds in vmath_test.go); the sums
// stay in float64. The two vector versions evaluate the same formulas (GELU
// gives the same bits; exp's 2^n scaling differs: VSCALEFPS for AVX-512,
// integer exponent arithmetic for AVX2).
//
// Variables, not constants, so that tests can force each path
// (forceVMath). The multiply-add, bias add and layernorm kernels
// (muladd_amd64.go, norm_amd64.go) dispatch on them too.
var (
	haveAVX512 = cpu.X86.HasAVX512F
	haveAVX2   = cpu.X86.HasAVX2 && cpu.X86.HasFMA
)

//go:noescape
func expSubSumAVX512(s []float32, m float32) float64

//go:noescape
func geluAVX512(d []float32, tab *[erfDegree + 1][16]float32)

//go:noescape
func addRelPosAVX512(row *float32, ph *float32, rw *float32, QH, QW int) float32

//go:noescape
func expSubSumAVX2(s []float32, m float32) float64

//go:noescape
func geluAVX2(d []float32, tab *[erfDegree + 1][16]float32)

// erfTable32 is erfTable's first 16 intervals in the layout geluAVX512
// and geluAVX2 read: coefficient k of interval i at [k][i].
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
	if haveAVX2 {
		return expSubSumAVX2(s, m)
	}
	return expSubSumGo(s, m)
}

// geluFast applies GELU in place.
func geluFast(d []float32) {
	if haveAVX512 {
		geluAVX512(d, &erfTable32)
		return
	}
	if haveAVX2 {
		geluAVX2(d, &erfTable32)
		return
	}
	geluSlice(d)
}

// vmathImpl is one implementation of expSubSum and geluFast.
type vmathImpl struct {
	name      string
	expSubSum func(s []float32, m float32) float64
	gelu      func(d []float32)
}

// vmathImpls returns the implementations this CPU can run, in the order
// of preference of expSubSum and geluFast (the scalar code last).
func vmathImpls() []vmathImpl {
	var impls []vmathImpl
	if cpu.X86.HasAVX512F {
		impls = append(impls, vmathImpl{"avx512", expSubSumAVX512, func(d []float32) { geluAVX512(d, &erfTable32) }})
	}
	if cpu.X86.HasAVX2 && cpu.X86.HasFMA {
		impls = append(impls, vmathImpl{"avx2", expSubSumAVX2, func(d []float32) { geluAVX2(d, &erfTable32) }})
	}
	return append(impls, vmathImpl{"go", expSubSumGo, geluSlice})
}

// forceVMath makes expSubSum and geluFast use the implementation of
// vmathImpls named name (one the CPU has), until restore is called. Not
// safe to use concurrently with them (tests only).
func forceVMath(name string) (restore func()) {
	avx512, avx2 := haveAVX512, haveAVX2
	haveAVX512, haveAVX2 = name == "avx512", name == "avx2"
	return func() { haveAVX512, haveAVX2 = avx512, avx2 }
}

// vmathPath is the name (in vmathImpls) of the implementation expSubSum and
// geluFast use.
func vmathPath() string {
	switch {
	case haveAVX512:
		return "avx512"
	case haveAVX2:
		return "avx2"
	}
	return "go"
}
