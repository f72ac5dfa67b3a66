//go:build !amd64 || purego

package cpu

// Without amd64 assembly the scalar code of mathf.go runs.

const haveAVX512 = false

func expSubSum(s []float32, m float32) float64 { return expSubSumGo(s, m) }

func geluFast(d []float32) { geluSlice(d) }
