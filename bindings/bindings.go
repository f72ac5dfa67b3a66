//go:build cuda

package bindings

/*
#cgo CFLAGS: -I${SRCDIR}/../kernels
#cgo LDFLAGS: -L${SRCDIR}/../build -lsamkernels -lcublasLt -lcudart -lstdc++ -lm

#include "samkernels.h"
*/
import "C"

import (
	"fmt"
	"math"
	"runtime"
	"unsafe"
)

// Pointers: device addresses are unsafe.Pointer (never Go memory, so cgo's
// pointer checks pass them through); streams are cudaStream_t values as
// unsafe.Pointer (cuda.Stream.Handle), nil for the legacy default stream.
//
// Current device: the launchers run on the calling OS thread's current
// device. The caller (sam/nn/gpu) holds its goroutine on one thread
// (runtime.LockOSThread) and sets the device before it calls in.

// DType is samk_dtype.
type DType int32

const (
	F32  DType = C.SAMK_F32
	BF16 DType = C.SAMK_BF16
)

func (d DType) String() string {
	switch d {
	case F32:
		return "f32"
	case BF16:
		return "bf16"
	}
	return fmt.Sprintf("DType(%d)", int32(d))
}

// Size returns the element size in bytes.
func (d DType) Size() int64 {
	if d == BF16 {
		return 2
	}
	return 4
}

// Act is samk_act. GELU is the exact erf form.
type Act int32

const (
	ActNone Act = C.SAMK_ACT_NONE
	ActGELU Act = C.SAMK_ACT_GELU
	ActReLU Act = C.SAMK_ACT_RELU
)

// Status is samk_status. It implements error (as go-nvml's Return does);
// a failed launcher returns an *Error that wraps it, so
// errors.Is(err, bindings.ErrUnsupported) works.
type Status int32

const (
	OK             Status = C.SAMK_OK
	ErrInvalidArg  Status = C.SAMK_ERR_INVALID_ARG
	ErrUnsupported Status = C.SAMK_ERR_UNSUPPORTED
	ErrCUDA        Status = C.SAMK_ERR_CUDA
	ErrCUBLAS      Status = C.SAMK_ERR_CUBLAS
	ErrWorkspace   Status = C.SAMK_ERR_WORKSPACE
	// ErrOutOfMemory: the device ran out of memory during the call (a
	// launch failing with cudaErrorMemoryAllocation, cuBLASLt's
	// ALLOC_FAILED). sam/nn/gpu reports it as nn.ErrOutOfMemory, so that
	// callers split their work and retry.
	ErrOutOfMemory Status = C.SAMK_ERR_OUT_OF_MEMORY
)

// String returns samk_status_string ("invalid argument", ...).
func (s Status) String() string { return C.GoString(C.samk_status_string(C.samk_status(s))) }

func (s Status) Error() string { return "samk: " + s.String() }

// Error is a failed launch: the launcher, its status and the detail of
// samk_last_error (e.g. "samk_attention: head_dim 96 unsupported").
type Error struct {
	Op     string
	Status Status
	Detail string
}

func (e *Error) Error() string {
	if e.Detail == "" {
		return fmt.Sprintf("%s: %s", e.Op, e.Status)
	}
	return fmt.Sprintf("%s: %s: %s", e.Op, e.Status, e.Detail)
}

func (e *Error) Unwrap() error { return e.Status }

// call runs a launcher and turns its status into an error. samk_last_error
// is thread-local, so the goroutine stays on its thread from the launch
// to reading it.
func call(op string, launch func() C.samk_status) error {
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	st := launch()
	if st == C.SAMK_OK {
		return nil
	}
	return &Error{Op: op, Status: Status(st), Detail: C.GoString(C.samk_last_error())}
}

// argError reports an argument that does not fit the C ABI's types.
func argError(op, what string, v int64) error {
	return &Error{Op: op, Status: ErrInvalidArg, Detail: fmt.Sprintf("%s = %d does not fit a C int", what, v)}
}

// cint converts v to a C int, recording the first overflow in *err.
func cint(op, what string, v int, err *error) C.int {
	if v < math.MinInt32 || v > math.MaxInt32 {
		if *err == nil {
			*err = argError(op, what, int64(v))
		}
		return 0
	}
	return C.int(v)
}

func cbool(b bool) C.int {
	if b {
		return 1
	}
	return 0
}

func stream(s unsafe.Pointer) C.samk_stream { return C.samk_stream(s) }

// Version returns samk_version(): the library's version and the CUDA
// version it was built with.
func Version() string { return C.GoString(C.samk_version()) }

// Convert: dst[i] = dstType(src[i]), i < n (f32 → bf16 rounds to nearest
// even).
func Convert(src unsafe.Pointer, srcType DType, dst unsafe.Pointer, dstType DType, n int64, s unsafe.Pointer) error {
	return call("samk_convert", func() C.samk_status {
		return C.samk_convert(src, C.samk_dtype(srcType), dst, C.samk_dtype(dstType), C.int64_t(n), stream(s))
	})
}

// GemmParams mirrors samk_gemm_params: row-major
// C[b] = alpha·op(A[b])·op(B[b]) + beta·C[b] (+ bias, then act); op(A) is
// M×K, op(B) K×N (a torch Linear weight (N, K) is B with TransB).
type GemmParams struct {
	DType          DType
	TransA, TransB bool
	M, N, K        int64
	Batch          int
	A              unsafe.Pointer
	LDA, StrideA   int64
	B              unsafe.Pointer
	LDB, StrideB   int64
	C              unsafe.Pointer
	LDC, StrideC   int64
	Bias           unsafe.Pointer // N elements or nil
	Act            Act
	Alpha, Beta    float32
}

// GemmWorkspaceBytes returns samk_gemm_workspace_bytes().
func GemmWorkspaceBytes() int64 { return int64(C.samk_gemm_workspace_bytes()) }

// Gemm runs samk_gemm with the cuBLASLt handle lt and its workspace.
func Gemm(lt, workspace unsafe.Pointer, workspaceBytes int64, p *GemmParams, s unsafe.Pointer) error {
	const op = "samk_gemm"
	c, err := p.c(op)
	if err != nil {
		return err
	}
	return call(op, func() C.samk_status {
		return C.samk_gemm(lt, workspace, C.size_t(workspaceBytes), &c, stream(s))
	})
}

// GemmReference runs samk_gemm_reference: the same GEMM by our own SIMT
// kernel, without cuBLASLt (the GPU simulator's GEMM, and the yardstick
// for cuBLASLt on a real GPU).
func GemmReference(p *GemmParams, s unsafe.Pointer) error {
	const op = "samk_gemm_reference"
	c, err := p.c(op)
	if err != nil {
		return err
	}
	return call(op, func() C.samk_status { return C.samk_gemm_reference(&c, stream(s)) })
}

// GemmFallbacks returns samk_gemm_fallbacks(): how many samk_gemm calls of
// this process cuBLASLt could not take and the reference kernel computed.
func GemmFallbacks() int64 { return int64(C.samk_gemm_fallbacks()) }

func (p *GemmParams) c(op string) (C.samk_gemm_params, error) {
	var err error
	c := C.samk_gemm_params{
		dtype:   C.samk_dtype(p.DType),
		trans_a: cbool(p.TransA), trans_b: cbool(p.TransB),
		m: C.int64_t(p.M), n: C.int64_t(p.N), k: C.int64_t(p.K),
		batch: cint(op, "batch", p.Batch, &err),
		a:     p.A, lda: C.int64_t(p.LDA), stride_a: C.int64_t(p.StrideA),
		b: p.B, ldb: C.int64_t(p.LDB), stride_b: C.int64_t(p.StrideB),
		c: p.C, ldc: C.int64_t(p.LDC), stride_c: C.int64_t(p.StrideC),
		bias: p.Bias, act: C.samk_act(p.Act),
		alpha: C.float(p.Alpha), beta: C.float(p.Beta),
	}
	return c, err
}

// AttentionParams mirrors samk_attention_params: per batch b, head h and
// query i, out = softmax_j(Scale·q_i·k_j + bias_ij)·V, bias the decomposed
// relative-position term on a QH×QW grid when RelH != nil. Strides are in
// elements; heads are contiguous chunks of HeadDim (q, k) or HeadDimV (v,
// out) channels.
type AttentionParams struct {
	DType                        DType
	Batch, Heads, NQ, NK         int
	HeadDim, HeadDimV            int
	Q                            unsafe.Pointer
	QBatchStride, QRowStride     int64
	K                            unsafe.Pointer
	KBatchStride, KRowStride     int64
	V                            unsafe.Pointer
	VBatchStride, VRowStride     int64
	Out                          unsafe.Pointer
	OutBatchStride, OutRowStride int64
	Scale                        float32
	RelH, RelW                   unsafe.Pointer
	QH, QW                       int
	// BiasTable (Heads, BiasWS²) is TinyViT's offset bias, exclusive with
	// RelH/RelW: NQ = NK = BiasWS².
	BiasTable unsafe.Pointer
	BiasWS    int
}

// AttentionSupports reports whether samk_attention has a kernel for head
// dims (d, dv) (samk_attention_supports).
func AttentionSupports(d, dv int) bool {
	if d < 0 || dv < 0 || d > math.MaxInt32 || dv > math.MaxInt32 {
		return false
	}
	return C.samk_attention_supports(C.int(d), C.int(dv)) != 0
}

// Attention runs samk_attention.
func Attention(p *AttentionParams, s unsafe.Pointer) error {
	const op = "samk_attention"
	var err error
	c := C.samk_attention_params{
		dtype: C.samk_dtype(p.DType),
		batch: cint(op, "batch", p.Batch, &err), heads: cint(op, "heads", p.Heads, &err),
		nq: cint(op, "nq", p.NQ, &err), nk: cint(op, "nk", p.NK, &err),
		head_dim: cint(op, "head_dim", p.HeadDim, &err), head_dim_v: cint(op, "head_dim_v", p.HeadDimV, &err),
		q: p.Q, q_batch_stride: C.int64_t(p.QBatchStride), q_row_stride: C.int64_t(p.QRowStride),
		k: p.K, k_batch_stride: C.int64_t(p.KBatchStride), k_row_stride: C.int64_t(p.KRowStride),
		v: p.V, v_batch_stride: C.int64_t(p.VBatchStride), v_row_stride: C.int64_t(p.VRowStride),
		out: p.Out, out_batch_stride: C.int64_t(p.OutBatchStride), out_row_stride: C.int64_t(p.OutRowStride),
		scale: C.float(p.Scale),
		rel_h: p.RelH, rel_w: p.RelW,
		qh: cint(op, "qh", p.QH, &err), qw: cint(op, "qw", p.QW, &err),
		bias_table: p.BiasTable, bias_ws: cint(op, "bias_ws", p.BiasWS, &err),
	}
	if err != nil {
		return err
	}
	return call(op, func() C.samk_status { return C.samk_attention(&c, stream(s)) })
}

// LayerNormParams mirrors samk_layernorm_params: out = LN(x (+ residual))
// over rows of Cols, the sum written to Sum when not nil.
type LayerNormParams struct {
	DType        DType
	Rows         int64
	Cols         int
	X, Residual  unsafe.Pointer
	Sum, Out     unsafe.Pointer
	Weight, Bias unsafe.Pointer
	Eps          float32
}

// LayerNorm runs samk_layernorm.
func LayerNorm(p *LayerNormParams, s unsafe.Pointer) error {
	const op = "samk_layernorm"
	var err error
	c := C.samk_layernorm_params{
		dtype: C.samk_dtype(p.DType), rows: C.int64_t(p.Rows), cols: cint(op, "cols", p.Cols, &err),
		x: p.X, residual: p.Residual, sum: p.Sum, out: p.Out,
		weight: p.Weight, bias: p.Bias, eps: C.float(p.Eps),
	}
	if err != nil {
		return err
	}
	return call(op, func() C.samk_status { return C.samk_layernorm(&c, stream(s)) })
}

// Add runs samk_add: out[i] = a[i] + b[i mod nb], i < n.
func Add(dtype DType, a, b, out unsafe.Pointer, n, nb int64, s unsafe.Pointer) error {
	return call("samk_add", func() C.samk_status {
		return C.samk_add(C.samk_dtype(dtype), a, b, out, C.int64_t(n), C.int64_t(nb), stream(s))
	})
}

// BiasAct runs samk_bias_act in place on a (rows, cols) matrix:
// x = act(x + bias[col]); bias may be nil.
func BiasAct(dtype DType, x, bias unsafe.Pointer, rows int64, cols int, act Act, s unsafe.Pointer) error {
	const op = "samk_bias_act"
	var err error
	cc := cint(op, "cols", cols, &err)
	if err != nil {
		return err
	}
	return call(op, func() C.samk_status {
		return C.samk_bias_act(C.samk_dtype(dtype), x, bias, C.int64_t(rows), cc, C.samk_act(act), stream(s))
	})
}

// WindowParams mirrors samk_window_params: Reverse false is
// window_partition of In (B, H, W, C), true its inverse into (B, H, W, C).
type WindowParams struct {
	DType       DType
	In, Out     unsafe.Pointer
	Batch, H, W int
	C, Win      int
	Reverse     bool
}

// Window runs samk_window.
func Window(p *WindowParams, s unsafe.Pointer) error {
	const op = "samk_window"
	var err error
	c := C.samk_window_params{
		dtype: C.samk_dtype(p.DType), in: p.In, out: p.Out,
		batch: cint(op, "batch", p.Batch, &err), h: cint(op, "h", p.H, &err), w: cint(op, "w", p.W, &err),
		c: cint(op, "c", p.C, &err), win: cint(op, "win", p.Win, &err), reverse: cbool(p.Reverse),
	}
	if err != nil {
		return err
	}
	return call(op, func() C.samk_status { return C.samk_window(&c, stream(s)) })
}

// Transpose runs samk_transpose: (batch, rows, cols) → (batch, cols, rows).
func Transpose(dtype DType, in, out unsafe.Pointer, batch, rows, cols int, s unsafe.Pointer) error {
	const op = "samk_transpose"
	var err error
	b, r, c := cint(op, "batch", batch, &err), cint(op, "rows", rows, &err), cint(op, "cols", cols, &err)
	if err != nil {
		return err
	}
	return call(op, func() C.samk_status {
		return C.samk_transpose(C.samk_dtype(dtype), in, out, b, r, c, stream(s))
	})
}

// Im2colParams mirrors samk_im2col_params: In (B, H, W, C) → Out
// (B·OH·OW, C·K·K), columns ordered (c, ky, kx).
type Im2colParams struct {
	DType          DType
	In, Out        unsafe.Pointer
	Batch, H, W, C int
	K, Stride, Pad int
}

// Im2col runs samk_im2col.
func Im2col(p *Im2colParams, s unsafe.Pointer) error {
	const op = "samk_im2col"
	var err error
	c := C.samk_im2col_params{
		dtype: C.samk_dtype(p.DType), in: p.In, out: p.Out,
		batch: cint(op, "batch", p.Batch, &err), h: cint(op, "h", p.H, &err), w: cint(op, "w", p.W, &err),
		c: cint(op, "c", p.C, &err), k: cint(op, "k", p.K, &err),
		stride: cint(op, "stride", p.Stride, &err), pad: cint(op, "pad", p.Pad, &err),
	}
	if err != nil {
		return err
	}
	return call(op, func() C.samk_status { return C.samk_im2col(&c, stream(s)) })
}

// DepthwiseParams mirrors samk_depthwise_params: In (B, H, W, C) →
// Out (B, OH, OW, C), Out[n, i, j, c] = act(Bias[c] + Σ In[n, i·s+ky−pad,
// j·s+kx−pad, c]·W[c, 0, ky, kx]).
type DepthwiseParams struct {
	DType            DType
	In, W, Bias, Out unsafe.Pointer
	Batch, H, Win, C int
	K, Stride, Pad   int
	Act              Act
}

// DepthwiseConv runs samk_depthwise_conv.
func DepthwiseConv(p *DepthwiseParams, s unsafe.Pointer) error {
	const op = "samk_depthwise_conv"
	var err error
	c := C.samk_depthwise_params{
		dtype: C.samk_dtype(p.DType), in: p.In, w: p.W, bias: p.Bias, out: p.Out,
		batch: cint(op, "batch", p.Batch, &err), h: cint(op, "h", p.H, &err), w_in: cint(op, "w", p.Win, &err),
		c: cint(op, "c", p.C, &err), k: cint(op, "k", p.K, &err), stride: cint(op, "stride", p.Stride, &err),
		pad: cint(op, "pad", p.Pad, &err), act: C.samk_act(p.Act),
	}
	if err != nil {
		return err
	}
	return call(op, func() C.samk_status { return C.samk_depthwise_conv(&c, stream(s)) })
}

// ConvTScatterParams mirrors samk_convt_scatter_params: the scatter (and
// bias, act) after the GEMM of a ConvTranspose2d with kernel == stride == K.
type ConvTScatterParams struct {
	DType         DType
	In, Bias, Out unsafe.Pointer
	Batch, H, W   int
	Cout, K       int
	Act           Act
}

// ConvTScatter runs samk_convt_scatter.
func ConvTScatter(p *ConvTScatterParams, s unsafe.Pointer) error {
	const op = "samk_convt_scatter"
	var err error
	c := C.samk_convt_scatter_params{
		dtype: C.samk_dtype(p.DType), in: p.In, bias: p.Bias, out: p.Out,
		batch: cint(op, "batch", p.Batch, &err), h: cint(op, "h", p.H, &err), w: cint(op, "w", p.W, &err),
		cout: cint(op, "cout", p.Cout, &err), k: cint(op, "k", p.K, &err), act: C.samk_act(p.Act),
	}
	if err != nil {
		return err
	}
	return call(op, func() C.samk_status { return C.samk_convt_scatter(&c, stream(s)) })
}

// MaskDownsampleParams mirrors samk_mask_downsample_params: Mask (B, H, W)
// → Out (B, H/4, W/4, C) through conv 2×2/2 → LN2d → GELU → conv 2×2/2 →
// LN2d → GELU → conv 1×1, weights in torch layout.
type MaskDownsampleParams struct {
	DType                      DType
	Mask, Out                  unsafe.Pointer
	Batch, H, W, C1, C2, C     int
	Conv1W, Conv1B, LN1W, LN1B unsafe.Pointer
	Conv2W, Conv2B, LN2W, LN2B unsafe.Pointer
	Conv3W, Conv3B             unsafe.Pointer
	Eps                        float32
}

func (p *MaskDownsampleParams) c(op string) (C.samk_mask_downsample_params, error) {
	var err error
	c := C.samk_mask_downsample_params{
		dtype: C.samk_dtype(p.DType), mask: p.Mask, out: p.Out,
		batch: cint(op, "batch", p.Batch, &err), h: cint(op, "h", p.H, &err), w: cint(op, "w", p.W, &err),
		c1: cint(op, "c1", p.C1, &err), c2: cint(op, "c2", p.C2, &err), c: cint(op, "c", p.C, &err),
		conv1_w: p.Conv1W, conv1_b: p.Conv1B, ln1_w: p.LN1W, ln1_b: p.LN1B,
		conv2_w: p.Conv2W, conv2_b: p.Conv2B, ln2_w: p.LN2W, ln2_b: p.LN2B,
		conv3_w: p.Conv3W, conv3_b: p.Conv3B, eps: C.float(p.Eps),
	}
	return c, err
}

// MaskDownsampleWorkspaceBytes returns samk_mask_downsample_workspace_bytes.
func MaskDownsampleWorkspaceBytes(p *MaskDownsampleParams) (int64, error) {
	c, err := p.c("samk_mask_downsample_workspace_bytes")
	if err != nil {
		return 0, err
	}
	return int64(C.samk_mask_downsample_workspace_bytes(&c)), nil
}

// MaskDownsample runs samk_mask_downsample.
func MaskDownsample(p *MaskDownsampleParams, workspace unsafe.Pointer, workspaceBytes int64, s unsafe.Pointer) error {
	const op = "samk_mask_downsample"
	c, err := p.c(op)
	if err != nil {
		return err
	}
	return call(op, func() C.samk_status {
		return C.samk_mask_downsample(&c, workspace, C.size_t(workspaceBytes), stream(s))
	})
}

// UpscaleParams mirrors samk_upscale_params: planes (h, w) resized
// bilinearly to (Pad, Pad), cropped to (InH, InW), resized to (OutH, OutW);
// OutMode 0 writes float32 logits, 1 uint8 (logit > Threshold).
type UpscaleParams struct {
	DType                DType // of In
	In, Out              unsafe.Pointer
	Planes, H, W, Pad    int
	InH, InW, OutH, OutW int
	OutMode              int
	Threshold            float32
}

func (p *UpscaleParams) c(op string) (C.samk_upscale_params, error) {
	var err error
	c := C.samk_upscale_params{
		dtype: C.samk_dtype(p.DType), in: p.In, out: p.Out,
		planes: cint(op, "planes", p.Planes, &err), h: cint(op, "h", p.H, &err), w: cint(op, "w", p.W, &err),
		pad: cint(op, "pad", p.Pad, &err), in_h: cint(op, "in_h", p.InH, &err), in_w: cint(op, "in_w", p.InW, &err),
		out_h: cint(op, "out_h", p.OutH, &err), out_w: cint(op, "out_w", p.OutW, &err),
		out_mode: cint(op, "out_mode", p.OutMode, &err), threshold: C.float(p.Threshold),
	}
	return c, err
}

// UpscaleMasksWorkspaceBytes returns samk_upscale_masks_workspace_bytes.
func UpscaleMasksWorkspaceBytes(p *UpscaleParams) (int64, error) {
	c, err := p.c("samk_upscale_masks_workspace_bytes")
	if err != nil {
		return 0, err
	}
	return int64(C.samk_upscale_masks_workspace_bytes(&c)), nil
}

// UpscaleMasks runs samk_upscale_masks.
func UpscaleMasks(p *UpscaleParams, workspace unsafe.Pointer, workspaceBytes int64, s unsafe.Pointer) error {
	const op = "samk_upscale_masks"
	c, err := p.c(op)
	if err != nil {
		return err
	}
	return call(op, func() C.samk_status {
		return C.samk_upscale_masks(&c, workspace, C.size_t(workspaceBytes), stream(s))
	})
}
