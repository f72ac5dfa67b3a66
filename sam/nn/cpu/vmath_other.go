//go:build !amd64 || purego

package cpu

// Without amd64 assembly the scalar code of mathf.go runs.

const haveAVX512, haveAVX2 = false, false

func expSubSum(s []float32, m float32) float64 { return expSubSumGo(s, m) }

func geluFast(d []float32) { geluSlice(d) }

// vmathImpl is one implementation of expSubSum and geluFast.
type vmathImpl struct {
	name      string
	expSubSum func(s []float32, m float32) float64
	gelu      func(d []float32)
}

// vmathImpls returns the implementations this build has: the scalar code.
func vmathImpls() []vmathImpl { return []vmathImpl{{"go", expSubSumGo, geluSlice}} }

// forceVMath is a no-op: the scalar code is the only implementation.
func forceVMath(name string) (restore func()) { return func() {} }

// vmathPath is the name (in vmathImpls) of the implementation expSubSum and
// geluFast use.
func vmathPath() string { return "go" }

func addRelPosAVX512(row *float32, ph *float32, rw *float32, QH, QW int) float32 {
	panic("cpu: addRelPosAVX512 without AVX-512")
}
