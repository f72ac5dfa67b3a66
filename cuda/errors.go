package cuda

import (
	"errors"
	"fmt"

	"github.com/samgo/samgo/sam/nn"
)

// Error is a failed CUDA runtime or cuBLASLt call, with the library's
// name and description of the code, e.g.
// "cudaMalloc(268435456 bytes): cudaErrorMemoryAllocation: out of memory".
// An out-of-memory error matches nn.ErrOutOfMemory under errors.Is.
type Error struct {
	Op   string // the call and its salient arguments
	Code int    // the cudaError_t or cublasStatus_t value
	Name string // e.g. "cudaErrorMemoryAllocation", "CUBLAS_STATUS_ALLOC_FAILED"
	Msg  string // the library's description
	oom  bool
}

func (e *Error) Error() string { return fmt.Sprintf("%s: %s: %s", e.Op, e.Name, e.Msg) }

// Is reports whether the error is an out-of-memory error when target is
// nn.ErrOutOfMemory, or a missing device/driver when target is ErrNoDevice.
func (e *Error) Is(target error) bool {
	switch target {
	case nn.ErrOutOfMemory:
		return e.oom
	case ErrNoDevice:
		return e.Code == codeNoDevice || e.Code == codeInsufficientDriver || e.Code == codeStubLibrary
	}
	return false
}

// cudaError_t values the package branches on (stable across CUDA versions).
const (
	codeMemoryAllocation   = 2   // cudaErrorMemoryAllocation
	codeStubLibrary        = 34  // cudaErrorStubLibrary: the toolkit's stub libcuda, no driver
	codeInsufficientDriver = 35  // cudaErrorInsufficientDriver
	codeNoDevice           = 100 // cudaErrorNoDevice
)

// ErrNoDevice marks the absence of a usable CUDA device: no GPU, no driver,
// or a build without the `cuda` tag.
var ErrNoDevice = errors.New("no CUDA device")
