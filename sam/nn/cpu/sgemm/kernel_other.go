//go:build !amd64

package sgemm

func init() {
	kernels = []*kernel{goKernel}
	active = goKernel
}

var haveAVX = false

func transpose8(dst *float32, ldd int, src *float32, lds int, k8 int, alpha float32) {
	panic("sgemm: transpose8 without AVX")
}

func transpose4(dst *float32, ldd int, src *float32, lds int, k4 int, alpha float32) {
	panic("sgemm: transpose4 without AVX")
}

func copyRows32(dst *float32, src *float32, lds int, k int, mask *int32) {
	panic("sgemm: copyRows32 without AVX")
}

func copyRows16(dst *float32, src *float32, lds int, k int, mask *int32) {
	panic("sgemm: copyRows16 without AVX")
}
