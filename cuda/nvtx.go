//go:build cuda

package cuda

/*
// NVTX v3 is header-only (every CUDA toolkit since 10 ships nvtx3/): with
// no profiler attached each call is a check of a function pointer; under
// Nsight Systems or Compute the tool's injection library, loaded with
// dlopen on the first call, records the ranges.
#cgo LDFLAGS: -ldl
#include <stdlib.h>
#include <nvtx3/nvToolsExt.h>

static unsigned long long sg_nvtx_start(const char *name) { return nvtxRangeStartA(name); }
static void sg_nvtx_end(unsigned long long id) { nvtxRangeEnd(id); }
*/
import "C"

import "unsafe"

// StartRange opens an NVTX range named name (nvtxRangeStartA: process-wide,
// so it may end on another OS thread than the one it started on) and
// returns the function that ends it. Without a profiler it costs next to
// nothing.
func StartRange(name string) (end func()) {
	cs := C.CString(name)
	id := C.sg_nvtx_start(cs)
	C.free(unsafe.Pointer(cs))
	return func() { C.sg_nvtx_end(id) }
}
