//go:build !amd64 || purego

package cpu

// layerNormRow normalises one row (layerNormRowGo).
func layerNormRow(or, xr, w, b []float32, eps float32) { layerNormRowGo(or, xr, w, b, eps) }
