// Package nn is the small set of tensor operations the SAM graph is written
// against. The model (package sam) is written once in terms of Backend; each
// backend (sam/nn/cpu, the pure-Go reference, and sam/nn/gpu, CUDA) implements
// every op. Ops are shaped for fusion: where a GPU kernel fuses several steps
// (linear+bias+activation, residual add+layernorm, attention with the
// decomposed relative-position bias, the mask downsampler, the two-stage mask
// upsampling) the interface exposes the fused op and documents it by the
// unfused code it equals.
//
// Layout conventions (all tensors are dense, row-major, C-contiguous):
//   - feature maps are channels-last, (B, H, W, C), as the ViT works on them;
//   - token sequences are (B, N, C);
//   - mask logits are (B, M, H, W) (planes), as SAM returns them.
//
// Tensors are owned by their backend; the model never sees their memory. Data
// crosses the boundary only through Upload/Download.
//
// Errors: an op that fails (a shape the op does not support, a CUDA error,
// out of memory) panics with an *Error. Public entry points of the model
// recover it with Catch and return it as an ordinary error, so the graph
// code reads like the paper's figure instead of a ladder of `if err != nil`.
package nn

import (
	"errors"
	"fmt"
)

// Act is an activation fused into Linear and available as an elementwise op.
type Act int

const (
	ActNone Act = iota
	ActGELU     // exact GELU: 0.5·x·(1 + erf(x/√2)) (nn.GELU(), SAM's default)
	ActReLU
)

func (a Act) String() string {
	switch a {
	case ActNone:
		return "none"
	case ActGELU:
		return "gelu"
	case ActReLU:
		return "relu"
	}
	return fmt.Sprintf("Act(%d)", int(a))
}

// Tensor is a backend-owned n-dimensional array.
type Tensor interface {
	// Shape returns the dimensions; callers must not modify the slice.
	Shape() []int
}

// RelPos is SAM's decomposed relative-position bias (segment_anything
// modeling/image_encoder.py, add_decomposed_rel_pos). For a query token at
// grid position (qh, qw) and a key at (kh, kw), both on a QH×QW grid, the
// attention logit gains
//
//	rel_h[qh,qw,kh] + rel_w[qh,qw,kw]
//	rel_h[qh,qw,kh] = Σ_c q[qh,qw,c] · H[qh − kh + QH − 1, c]
//	rel_w[qh,qw,kw] = Σ_c q[qh,qw,c] · W[qw − kw + QW − 1, c]
//
// with the *unscaled* per-head q. H is (2·QH−1, headDim) and W (2·QW−1,
// headDim): tables whose length differs in the checkpoint are resized by the
// model (get_rel_pos) before they reach the backend.
type RelPos struct {
	H, W   Tensor
	QH, QW int
}

// MaskDownsampler holds the weights of the prompt encoder's mask_downscaling
// stack: conv 2×2/2 → LayerNorm2d → GELU → conv 2×2/2 → LayerNorm2d → GELU →
// conv 1×1. Conv weights are in torch layout (out, in, kh, kw).
type MaskDownsampler struct {
	Conv1W, Conv1B Tensor // (c1, 1, 2, 2), (c1)
	LN1W, LN1B     Tensor // (c1)
	Conv2W, Conv2B Tensor // (c2, c1, 2, 2), (c2)
	LN2W, LN2B     Tensor // (c2)
	Conv3W, Conv3B Tensor // (C, c2, 1, 1), (C)
	Eps            float32
}

// OffsetBias is TinyViT's learned attention bias (mobile_sam
// tiny_vit_sam.py, Attention.attention_biases gathered by
// attention_bias_idxs): on a WS×WS window of tokens, row-major, the logit
// of query i = (iy, ix) and key j = (jy, jx) gains, after the scale,
//
//	Table[h, |iy − jy|·WS + |ix − jx|]
//
// Table is (heads, WS·WS): the official code numbers the offsets in the
// order it first meets them, which is exactly |Δy|·WS + |Δx|.
type OffsetBias struct {
	Table Tensor
	WS    int
}

// Conv describes ConvAct: stride and zero padding on every side, and a
// depthwise (groups = channels) or full (groups = 1) convolution, with an
// activation applied to conv + bias.
type Conv struct {
	Stride, Pad int
	Depthwise   bool
	Act         Act
}

// MaskUpscale describes SAM's postprocess_masks: low-resolution logits are
// resized (bilinear, align_corners=False, no antialiasing) to the padded
// square Pad×Pad, cropped to the resized image InH×InW (top-left), then
// resized again to the original OutH×OutW. Two separate resizes, exactly as
// the official code does them.
type MaskUpscale struct {
	Pad        int
	InH, InW   int
	OutH, OutW int
}

// Backend implements the ops. Every op allocates its result; Release hands
// tensors back early (a no-op where the garbage collector owns memory).
type Backend interface {
	Name() string

	// Upload copies host float32 data into a new tensor of the given shape.
	Upload(data []float32, shape ...int) Tensor
	// UploadWeight is Upload for data that the caller never modifies again:
	// a host backend may keep a reference instead of copying (for example
	// into a memory-mapped checkpoint).
	UploadWeight(data []float32, shape ...int) Tensor
	// Download copies a tensor to host memory as float32.
	Download(t Tensor) []float32
	// Reshape returns a view with a new shape and the same element count.
	Reshape(t Tensor, shape ...int) Tensor
	// Release frees tensors that are no longer used.
	Release(ts ...Tensor)

	// Linear: x (..., K), w (N, K) in torch layout, b (N) or nil →
	// (..., N) = act(x·wᵀ + b).
	Linear(x, w, b Tensor, act Act) Tensor
	// MatMulT: a (B, M, K), b (B, N, K) → (B, M, N) = a·bᵀ per batch.
	MatMulT(a, b Tensor) Tensor
	// Conv2D: x (B, H, W, Cin) channels-last, w (Cout, Cin, k, k) torch
	// layout, b (Cout) or nil, zero padding pad on every side →
	// (B, (H+2·pad−k)/stride+1, (W+2·pad−k)/stride+1, Cout).
	Conv2D(x, w, b Tensor, stride, pad int) Tensor
	// ConvAct: a convolution with bias and activation fused, as TinyViT's
	// Conv2d_BN (BatchNorm folded into w and b at load) followed by GELU.
	// x (B, H, W, Cin) channels-last, b (Cout) or nil, → (B, OH, OW, Cout)
	// with OH = (H + 2·pad − k)/stride + 1:
	//   full:      w (Cout, Cin, k, k); equals act(Conv2D(x, w, b, stride, pad))
	//   depthwise: w (C, 1, k, k), Cout = Cin = C;
	//     out[n, i, j, c] = act(b[c] + Σ_{ky,kx} x[n, i·s+ky−pad, j·s+kx−pad, c]·w[c, 0, ky, kx])
	ConvAct(x, w, b Tensor, p Conv) Tensor
	// ConvTranspose2D with kernel == stride == k (no overlap), as SAM's
	// output upscaling: x (B, H, W, Cin), w (Cin, Cout, k, k) torch layout,
	// b (Cout) → (B, H·k, W·k, Cout) with
	// out[b, i·k+p, j·k+q, o] = b[o] + Σ_c x[b,i,j,c]·w[c,o,p,q].
	ConvTranspose2D(x, w, b Tensor, k int) Tensor

	// LayerNorm over the last dim: (x − mean)/sqrt(var + eps)·w + b with
	// the biased variance. On channels-last maps this is also LayerNorm2d.
	LayerNorm(x, w, b Tensor, eps float32) Tensor
	// AddLayerNorm: sum = x + r; norm = LayerNorm(sum). Both are returned:
	// the sum is the residual stream, the norm feeds the next sub-layer.
	AddLayerNorm(x, r, w, b Tensor, eps float32) (sum, norm Tensor)

	// Attention with heads split as contiguous channel chunks:
	// q (B, Nq, heads·d), k (B, Nk, heads·d), v (B, Nk, heads·dv) →
	// (B, Nq, heads·dv), per head softmax(q·kᵀ/√d + bias)·v, where bias is
	// the decomposed relative-position term when rel != nil (then
	// Nq = Nk = rel.QH·rel.QW, tokens row-major on that grid).
	Attention(q, k, v Tensor, heads int, rel *RelPos) Tensor
	// AttentionQKV is Attention on a packed projection qkv (B, N, 3·heads·d)
	// whose channels are [q | k | v] (the ViT's fused qkv Linear).
	AttentionQKV(qkv Tensor, heads int, rel *RelPos) Tensor
	// AttentionQKVBias is AttentionQKV on windows of N = bias.WS² tokens
	// with TinyViT's offset bias instead of the rel-pos terms:
	//   softmax(q·kᵀ/√d + Table[h, |Δy|·WS + |Δx|])·v.
	AttentionQKVBias(qkv Tensor, heads int, bias *OffsetBias) Tensor

	// WindowPartition: x (B, H, W, C) is zero-padded bottom/right to
	// multiples of win and cut into windows, row-major →
	// (B·nh·nw, win·win, C).
	WindowPartition(x Tensor, win int) Tensor
	// WindowUnpartition inverts WindowPartition for an h×w map, dropping
	// the padding → (B, h, w, C).
	WindowUnpartition(x Tensor, win, h, w int) Tensor

	// Add: a + b, where b has a's shape or a's shape with leading
	// dimensions dropped or set to 1 (b is broadcast over them).
	Add(a, b Tensor) Tensor
	// Activation applied elementwise.
	Activation(x Tensor, act Act) Tensor
	// Concat along axis; all other dims equal.
	Concat(axis int, ts ...Tensor) Tensor
	// Slice along axis: [start, end).
	Slice(x Tensor, axis, start, end int) Tensor
	// Repeat tiles x (1, ...) n times along a new leading batch → (n, ...).
	Repeat(x Tensor, n int) Tensor
	// Transpose swaps the last two dims: (B, M, N) → (B, N, M).
	Transpose(x Tensor) Tensor

	// MaskDownsample: masks (B, H, W) → (B, H/4, W/4, C), the fused
	// mask_downscaling stack of the prompt encoder.
	MaskDownsample(masks Tensor, p *MaskDownsampler) Tensor
	// UpscaleMasks: logits (B, M, h, w) → (B, M, OutH, OutW).
	UpscaleMasks(logits Tensor, p MaskUpscale) Tensor
}

// IntoDownloader is implemented by backends that can copy a tensor into
// host memory the caller owns, saving the allocation Download makes: the
// predictor brings full-size mask planes home one at a time into one
// buffer. DownloadInto(dst, t) equals copy(dst, Download(t)), with
// len(dst) == Numel(t.Shape()).
type IntoDownloader interface {
	DownloadInto(dst []float32, t Tensor)
}

// DownloadInto copies t into dst, with b's DownloadInto when it has one.
// dst must hold exactly t's elements.
func DownloadInto(b Backend, dst []float32, t Tensor) {
	if len(dst) != Numel(t.Shape()) {
		Fail("DownloadInto", ErrShape, "%d values for %s", len(dst), ShapeString(t.Shape()))
	}
	if d, ok := b.(IntoDownloader); ok {
		d.DownloadInto(dst, t)
		return
	}
	copy(dst, b.Download(t))
}

// MaskThresholder is implemented by backends that can upscale mask logits
// and threshold them in one pass into host memory, never holding the
// full-size float32 planes (4 bytes a pixel where the mask needs 1):
//
//	UpscaleMasksThreshold(logits, p, threshold, dst)
//	  ≡ for i, v := range Download(UpscaleMasks(logits, p)) { dst[i] = v > threshold }
//
// bit for bit, with len(dst) == B·M·OutH·OutW.
type MaskThresholder interface {
	UpscaleMasksThreshold(logits Tensor, p MaskUpscale, threshold float32, dst []bool)
}

// Error is what ops panic with.
type Error struct {
	Op  string
	Err error
}

func (e *Error) Error() string { return e.Op + ": " + e.Err.Error() }
func (e *Error) Unwrap() error { return e.Err }

// ErrShape marks a shape an op cannot take; ErrOutOfMemory an allocation
// the backend could not satisfy (callers may split the work and retry).
var (
	ErrShape       = errors.New("shape mismatch")
	ErrOutOfMemory = errors.New("out of memory")
)

// Fail panics with an *Error for op; backends call it.
func Fail(op string, err error, format string, args ...any) {
	if format != "" {
		err = fmt.Errorf("%w: %s", err, fmt.Sprintf(format, args...))
	}
	panic(&Error{Op: op, Err: err})
}

// Catch converts an *Error panic into *errp; other panics propagate.
// Use as `defer nn.Catch(&err)` in functions that run ops.
func Catch(errp *error) {
	if r := recover(); r != nil {
		if e, ok := r.(*Error); ok {
			*errp = e
			return
		}
		panic(r)
	}
}

// Numel returns the product of dims.
func Numel(shape []int) int {
	n := 1
	for _, d := range shape {
		n *= d
	}
	return n
}

// SameShape reports whether a and b are equal.
func SameShape(a, b []int) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}
