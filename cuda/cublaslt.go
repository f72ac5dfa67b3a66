//go:build cuda

package cuda

/*
// The toolkit's include and library paths come from the Makefile
// (CUDA_HOME: CPATH, CGO_LDFLAGS), the same toolkit CMake builds the
// kernels with.
#cgo LDFLAGS: -lcublasLt -lcudart

#include <cuda_runtime_api.h>
#include <cublasLt.h>

static int sg_lt_create(int dev, cublasLtHandle_t *h) {
	cudaError_t e = cudaSetDevice(dev);
	if (e != cudaSuccess) { (void)cudaGetLastError(); return -(int)e; }
	return (int)cublasLtCreate(h);
}
static int sg_lt_destroy(int dev, cublasLtHandle_t h) {
	cudaError_t e = cudaSetDevice(dev);
	if (e != cudaSuccess) { (void)cudaGetLastError(); return -(int)e; }
	return (int)cublasLtDestroy(h);
}
static const char *sg_lt_name(int s) { return cublasLtGetStatusName((cublasStatus_t)s); }
static const char *sg_lt_string(int s) { return cublasLtGetStatusString((cublasStatus_t)s); }
*/
import "C"

import (
	"fmt"
	"unsafe"
)

const cublasStatusAllocFailed = 3 // CUBLAS_STATUS_ALLOC_FAILED

// checkLt turns a helper's result into an error: 0 is success, a positive
// value a cublasStatus_t, a negative one a cudaError_t (from cudaSetDevice).
func checkLt(op string, r C.int) error {
	switch {
	case r == 0:
		return nil
	case r < 0:
		return check(op, C.cudaError_t(-r))
	}
	return &Error{Op: op, Code: int(r), Name: C.GoString(C.sg_lt_name(r)), Msg: C.GoString(C.sg_lt_string(r)),
		oom: r == cublasStatusAllocFailed}
}

// Lt is a cuBLASLt handle on one device with the workspace its matmuls may
// use. The workspace is for one stream at a time: work on several streams
// needs one Lt each.
type Lt struct {
	h       C.cublasLtHandle_t
	dev     int
	ws      unsafe.Pointer
	wsBytes int64
}

// NewLt creates a cuBLASLt handle on dev with a workspace of wsBytes.
func NewLt(dev int, wsBytes int64) (*Lt, error) {
	l := &Lt{dev: dev, wsBytes: wsBytes}
	if err := checkLt("cublasLtCreate", C.sg_lt_create(C.int(dev), &l.h)); err != nil {
		return nil, err
	}
	if wsBytes > 0 {
		ws, err := Malloc(dev, wsBytes)
		if err != nil {
			C.sg_lt_destroy(C.int(dev), l.h)
			return nil, fmt.Errorf("cuBLASLt workspace: %w", err)
		}
		l.ws = ws
	}
	return l, nil
}

// Handle returns the cublasLtHandle_t for C code.
func (l *Lt) Handle() unsafe.Pointer { return unsafe.Pointer(l.h) }

// Workspace returns the workspace's device address and size.
func (l *Lt) Workspace() (unsafe.Pointer, int64) { return l.ws, l.wsBytes }

// Destroy frees the workspace and the handle.
func (l *Lt) Destroy() error {
	if l == nil || l.h == nil {
		return nil
	}
	err := Free(l.dev, l.ws)
	if e := checkLt("cublasLtDestroy", C.sg_lt_destroy(C.int(l.dev), l.h)); err == nil {
		err = e
	}
	l.h, l.ws = nil, nil
	return err
}
