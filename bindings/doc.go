// Package bindings is the thin cgo layer over kernels/samkernels.h: one Go
// function per C launcher, status codes turned into errors, nothing else.
// It builds only with the `cuda` tag (make cuda builds libsamkernels.a
// first).
package bindings
