package nn

import (
	"fmt"
	"strings"
)

// The shape rules of the ops, written once for every backend. Each function
// takes the shapes of an op's (already unwrapped) operands, fails with an
// *Error wrapping ErrShape (through Fail) when the op cannot take them, and
// returns the result's shape and the dims a backend's kernels need. A
// backend first checks that each argument is a usable tensor of its own
// (its ErrTensor), then calls the rule, so that all backends accept and
// reject the same shapes with the same messages. Returned shapes are fresh
// slices the caller may keep.

// ShapeString formats a shape as "(2, 3, 4)".
func ShapeString(s []int) string {
	parts := make([]string, len(s))
	for i, d := range s {
		parts[i] = fmt.Sprint(d)
	}
	return "(" + strings.Join(parts, ", ") + ")"
}

// CheckRank fails op unless the argument name has the given rank.
func CheckRank(op, name string, shape []int, rank int) {
	if len(shape) != rank {
		Fail(op, ErrShape, "%s is %s, want rank %d", name, ShapeString(shape), rank)
	}
}

// CheckShape fails op unless the argument name has exactly the dims want
// (an optional bias, say: CheckShape(op, "b", b, N)).
func CheckShape(op, name string, shape []int, want ...int) {
	if !SameShape(shape, want) {
		Fail(op, ErrShape, "%s is %s, want %s", name, ShapeString(shape), ShapeString(want))
	}
}

// CheckSameShape fails op unless arguments aName and bName have one shape.
func CheckSameShape(op, aName string, a []int, bName string, b []int) {
	if !SameShape(a, b) {
		Fail(op, ErrShape, "%s %s and %s %s differ", aName, ShapeString(a), bName, ShapeString(b))
	}
}

// CheckDims fails op if a shape given by the caller has a negative dim.
func CheckDims(op string, shape []int) {
	for _, d := range shape {
		if d < 0 {
			Fail(op, ErrShape, "negative dimension in %s", ShapeString(shape))
		}
	}
}

// CheckAct fails op on an activation that is not ActNone, ActGELU or
// ActReLU.
func CheckAct(op string, act Act) {
	switch act {
	case ActNone, ActGELU, ActReLU:
	default:
		Fail(op, ErrShape, "unsupported activation %v", act)
	}
}

// UploadShape validates n host values for a tensor of the given shape (op
// is "Upload" or "UploadWeight"): no negative dims, n = Numel(shape).
func UploadShape(op string, n int, shape []int) {
	CheckDims(op, shape)
	if want := Numel(shape); n != want {
		Fail(op, ErrShape, "%d values for shape %s (%d elements)", n, ShapeString(shape), want)
	}
}

// ReshapeShape validates Reshape of a tensor of shape from to shape to:
// no negative dims, the same element count.
func ReshapeShape(from, to []int) {
	const op = "Reshape"
	CheckDims(op, to)
	if Numel(to) != Numel(from) {
		Fail(op, ErrShape, "cannot view %s as %s", ShapeString(from), ShapeString(to))
	}
}

// LinearShape validates Linear's x (..., K) and w (N, K), K ≥ 1, and
// returns the result's shape (..., N) and the product's dims: M rows
// (Numel(x)/K), K, N. A bias must be (N): CheckShape("Linear", "b", b, N).
func LinearShape(x, w []int) (out []int, M, K, N int) {
	const op = "Linear"
	if len(x) < 1 {
		Fail(op, ErrShape, "x is a scalar")
	}
	K = x[len(x)-1]
	CheckRank(op, "w", w, 2)
	N = w[0]
	if w[1] != K || K == 0 {
		Fail(op, ErrShape, "x %s and w %s: want w (N, %d) with K ≥ 1", ShapeString(x), ShapeString(w), K)
	}
	out = append(append([]int(nil), x[:len(x)-1]...), N) // (..., N)
	return out, Numel(x) / K, K, N
}

// MatMulTShape validates MatMulT's a (B, M, K) and b (B, N, K), K ≥ 1, and
// returns the result's shape (B, M, N) and the dims.
func MatMulTShape(a, b []int) (out []int, B, M, N, K int) {
	const op = "MatMulT"
	CheckRank(op, "a", a, 3)
	CheckRank(op, "b", b, 3)
	B, M, K = a[0], a[1], a[2]
	N = b[1]
	if b[0] != B || b[2] != K || K == 0 {
		Fail(op, ErrShape, "a %s and b %s: want b (%d, N, %d) with K ≥ 1", ShapeString(a), ShapeString(b), B, K)
	}
	return []int{B, M, N}, B, M, N, K
}

// Conv2DShape validates Conv2D's x (B, H, W, Cin) and w (Cout, Cin, k, k)
// (Cin, k ≥ 1) with stride ≥ 1 and pad ≥ 0, the kernel no larger than the
// padded map, and returns the result's shape (B, OH, OW, Cout),
// OH = (H + 2·pad − k)/stride + 1 (likewise OW), Cout and k. A bias must be
// (Cout).
func Conv2DShape(x, w []int, stride, pad int) (out []int, Cout, k int) {
	const op = "Conv2D"
	CheckRank(op, "x", x, 4)
	CheckRank(op, "w", w, 4)
	B, H, W, Cin := x[0], x[1], x[2], x[3]
	Cout, k = w[0], w[2]
	if w[1] != Cin || w[3] != k || k < 1 || Cin < 1 {
		Fail(op, ErrShape, "x %s and w %s: want w (Cout, %d, k, k), k ≥ 1", ShapeString(x), ShapeString(w), Cin)
	}
	if stride < 1 || pad < 0 {
		Fail(op, ErrShape, "stride %d, pad %d: want stride ≥ 1, pad ≥ 0", stride, pad)
	}
	if H+2*pad < k || W+2*pad < k {
		Fail(op, ErrShape, "kernel %d larger than the padded map %dx%d (pad %d)", k, H, W, pad)
	}
	return []int{B, (H+2*pad-k)/stride + 1, (W+2*pad-k)/stride + 1, Cout}, Cout, k
}

// ConvActShape validates ConvAct's x (B, H, W, Cin) and w: (Cout, Cin,
// k, k), or (C, 1, k, k) with C = Cin when depthwise; and the result's
// shape and Cout (a bias must be (Cout)).
func ConvActShape(x, w []int, p Conv) (out []int, Cout, k int) {
	const op = "ConvAct"
	CheckAct(op, p.Act)
	if !p.Depthwise {
		return Conv2DShape(x, w, p.Stride, p.Pad)
	}
	CheckRank(op, "x", x, 4)
	CheckRank(op, "w", w, 4)
	B, H, W, C := x[0], x[1], x[2], x[3]
	k = w[2]
	if w[0] != C || w[1] != 1 || w[3] != k || k < 1 || C < 1 {
		Fail(op, ErrShape, "depthwise: x %s and w %s: want w (%d, 1, k, k), k ≥ 1", ShapeString(x), ShapeString(w), C)
	}
	if p.Stride < 1 || p.Pad < 0 {
		Fail(op, ErrShape, "stride %d, pad %d: want stride ≥ 1, pad ≥ 0", p.Stride, p.Pad)
	}
	if H+2*p.Pad < k || W+2*p.Pad < k {
		Fail(op, ErrShape, "kernel %d larger than the padded map %dx%d (pad %d)", k, H, W, p.Pad)
	}
	return []int{B, (H+2*p.Pad-k)/p.Stride + 1, (W+2*p.Pad-k)/p.Stride + 1, C}, C, k
}

// ConvTranspose2DShape validates ConvTranspose2D's x (B, H, W, Cin),
// Cin ≥ 1, and w (Cin, Cout, k, k) with k ≥ 1, and returns the result's
// shape (B, H·k, W·k, Cout) and Cout. A bias must be (Cout).
func ConvTranspose2DShape(x, w []int, k int) (out []int, Cout int) {
	const op = "ConvTranspose2D"
	CheckRank(op, "x", x, 4)
	CheckRank(op, "w", w, 4)
	B, H, W, Cin := x[0], x[1], x[2], x[3]
	Cout = w[1]
	if k < 1 || w[0] != Cin || w[2] != k || w[3] != k || Cin < 1 {
		Fail(op, ErrShape, "x %s, w %s, k %d: want w (%d, Cout, %d, %d)", ShapeString(x), ShapeString(w), k, Cin, k, k)
	}
	return []int{B, H * k, W * k, Cout}, Cout
}

// LayerNormShape validates x (..., C), C ≥ 1, w (C) and b (C) of op
// (LayerNorm, or AddLayerNorm after CheckSameShape of x and r) and returns
// C. The result has x's shape.
func LayerNormShape(op string, x, w, b []int) (C int) {
	if len(x) < 1 || x[len(x)-1] < 1 {
		Fail(op, ErrShape, "x %s has no channels to normalise", ShapeString(x))
	}
	C = x[len(x)-1]
	CheckShape(op, "w", w, C)
	CheckShape(op, "b", b, C)
	return C
}

// AttentionShape validates Attention's q (B, Nq, heads·d), k (B, Nk, heads·d)
// and v (B, Nk, heads·dv) with heads ≥ 1 and d, dv ≥ 1, and returns the
// dims; the result is (B, Nq, heads·dv). A rel-pos bias is checked with
// RelPosShape.
func AttentionShape(q, k, v []int, heads int) (B, Nq, Nk, d, dv int) {
	const op = "Attention"
	CheckRank(op, "q", q, 3)
	CheckRank(op, "k", k, 3)
	CheckRank(op, "v", v, 3)
	if heads < 1 {
		Fail(op, ErrShape, "heads = %d", heads)
	}
	B, Nq, Cq := q[0], q[1], q[2]
	Nk, Cv := k[1], v[2]
	if k[0] != B || v[0] != B || k[2] != Cq || v[1] != Nk {
		Fail(op, ErrShape, "q %s, k %s, v %s: want q (B, Nq, C), k (B, Nk, C), v (B, Nk, Cv)",
			ShapeString(q), ShapeString(k), ShapeString(v))
	}
	if Cq%heads != 0 || Cv%heads != 0 || Cq == 0 || Cv == 0 {
		Fail(op, ErrShape, "q channels %d and v channels %d must be positive multiples of heads = %d", Cq, Cv, heads)
	}
	return B, Nq, Nk, Cq / heads, Cv / heads
}

// AttentionQKVShape validates AttentionQKV's qkv (B, N, 3·heads·d) with
// heads, d ≥ 1 and returns the dims; q, k and v are the channel ranges
// [0, C), [C, 2C), [2C, 3C) with C = heads·d, and the result is (B, N, C).
// A rel-pos bias is checked with RelPosShape.
func AttentionQKVShape(qkv []int, heads int) (B, N, d int) {
	const op = "AttentionQKV"
	CheckRank(op, "qkv", qkv, 3)
	if heads < 1 {
		Fail(op, ErrShape, "heads = %d", heads)
	}
	C3 := qkv[2]
	if C3%(3*heads) != 0 || C3 == 0 {
		Fail(op, ErrShape, "qkv %s: channels must be a positive multiple of 3·heads = %d", ShapeString(qkv), 3*heads)
	}
	return qkv[0], qkv[1], C3 / (3 * heads)
}

// RelPosShape validates the rel-pos bias of op (Attention or AttentionQKV)
// with Nq queries, Nk keys and head dim d: h and w are the shapes of rel.H
// and rel.W, which must be (2·QH−1, d) and (2·QW−1, d), and the tokens
// must be the QH×QW grid, Nq = Nk = QH·QW.
func RelPosShape(op string, rel *RelPos, h, w []int, Nq, Nk, d int) {
	if rel.QH < 1 || rel.QW < 1 || Nq != rel.QH*rel.QW || Nk != Nq {
		Fail(op, ErrShape, "rel-pos grid %dx%d needs Nq = Nk = %d, have Nq %d, Nk %d", rel.QH, rel.QW, rel.QH*rel.QW, Nq, Nk)
	}
	CheckShape(op, "rel.H", h, 2*rel.QH-1, d)
	CheckShape(op, "rel.W", w, 2*rel.QW-1, d)
}

// OffsetBiasShape validates AttentionQKVBias's bias for N tokens and
// heads: N = WS² and Table (heads, WS·WS).
func OffsetBiasShape(op string, bias *OffsetBias, table []int, N, heads int) {
	if bias.WS < 1 || N != bias.WS*bias.WS {
		Fail(op, ErrShape, "offset bias of a %d×%d window needs N = %d tokens, have %d", bias.WS, bias.WS, bias.WS*bias.WS, N)
	}
	CheckShape(op, "bias.Table", table, heads, bias.WS*bias.WS)
}

// WindowDims describe a window partition: the (B, H, W, C) map,
// zero-padded bottom/right to (NH·Win, NW·Win), is cut into NH×NW windows
// of Win×Win tokens, row-major.
type WindowDims struct {
	B, H, W, C int
	Win        int
	NH, NW     int
}

// Map is the map's shape (B, H, W, C).
func (d WindowDims) Map() []int { return []int{d.B, d.H, d.W, d.C} }

// Windows is the partition's shape (B·NH·NW, Win·Win, C).
func (d WindowDims) Windows() []int { return []int{d.B * d.NH * d.NW, d.Win * d.Win, d.C} }

func windowDims(B, H, W, C, win int) WindowDims {
	return WindowDims{B: B, H: H, W: W, C: C, Win: win, NH: (H + win - 1) / win, NW: (W + win - 1) / win}
}

// WindowPartitionShape validates WindowPartition's x (B, H, W, C) and
// win ≥ 1; the result is d.Windows().
func WindowPartitionShape(x []int, win int) WindowDims {
	const op = "WindowPartition"
	CheckRank(op, "x", x, 4)
	if win < 1 {
		Fail(op, ErrShape, "window %d", win)
	}
	return windowDims(x[0], x[1], x[2], x[3], win)
}

// WindowUnpartitionShape validates WindowUnpartition's x (B·nh·nw,
// win·win, C) for an h×w map (win, h, w ≥ 1; nh = ⌈h/win⌉, nw = ⌈w/win⌉);
// the result is d.Map().
func WindowUnpartitionShape(x []int, win, h, w int) WindowDims {
	const op = "WindowUnpartition"
	CheckRank(op, "x", x, 3)
	if win < 1 || h < 1 || w < 1 {
		Fail(op, ErrShape, "window %d, map %dx%d", win, h, w)
	}
	nh, nw := (h+win-1)/win, (w+win-1)/win
	if x[1] != win*win || x[0]%(nh*nw) != 0 {
		Fail(op, ErrShape, "x %s: want (B·%d, %d, C) for window %d of a %dx%d map",
			ShapeString(x), nh*nw, win*win, win, h, w)
	}
	return windowDims(x[0]/(nh*nw), h, w, x[2], win)
}

// AddShape validates Add's broadcast of b over a: b is a's shape, or a's
// shape with leading dims dropped or set to 1. It returns the result's
// shape, a's; then element i of a meets element i mod Numel(b) of b.
func AddShape(a, b []int) []int {
	// b = (1, …, 1, t…) with t a's trailing dims.
	f := 0
	for f < len(b) && b[f] == 1 {
		f++
	}
	off := len(a) - len(b)
	if off < 0 || !SameShape(b[f:], a[off+f:]) {
		Fail("Add", ErrShape, "b %s does not broadcast to a %s", ShapeString(b), ShapeString(a))
	}
	return append([]int(nil), a...)
}

// ConcatShape validates Concat of tensors of the given shapes along axis
// (at least one tensor, 0 ≤ axis < rank, one rank, all dims but axis
// equal) and returns the result's shape.
func ConcatShape(axis int, shapes ...[]int) []int {
	const op = "Concat"
	if len(shapes) == 0 {
		Fail(op, ErrShape, "no tensors")
	}
	ref := shapes[0]
	if axis < 0 || axis >= len(ref) {
		Fail(op, ErrShape, "axis %d of a rank-%d tensor", axis, len(ref))
	}
	out := append([]int(nil), ref...)
	out[axis] = 0
	for _, s := range shapes {
		if len(s) != len(ref) {
			Fail(op, ErrShape, "ranks differ: %s and %s", ShapeString(ref), ShapeString(s))
		}
		for d := range ref {
			if d != axis && s[d] != ref[d] {
				Fail(op, ErrShape, "shapes %s and %s differ outside axis %d", ShapeString(ref), ShapeString(s), axis)
			}
		}
		out[axis] += s[axis]
	}
	return out
}

// SliceShape validates Slice of x along axis (0 ≤ axis < rank) over
// [start, end) (0 ≤ start ≤ end ≤ x[axis]) and returns the result's shape.
func SliceShape(x []int, axis, start, end int) []int {
	const op = "Slice"
	if axis < 0 || axis >= len(x) {
		Fail(op, ErrShape, "axis %d of %s", axis, ShapeString(x))
	}
	if start < 0 || start > end || end > x[axis] {
		Fail(op, ErrShape, "[%d, %d) of axis %d of %s", start, end, axis, ShapeString(x))
	}
	out := append([]int(nil), x...)
	out[axis] = end - start
	return out
}

// RepeatShape validates Repeat of x (1, ...) n ≥ 0 times and returns the
// result's shape (n, ...).
func RepeatShape(x []int, n int) []int {
	if len(x) < 1 || x[0] != 1 || n < 0 {
		Fail("Repeat", ErrShape, "x %s, n %d: want x (1, ...) and n ≥ 0", ShapeString(x), n)
	}
	return append([]int{n}, x[1:]...)
}

// TransposeShape validates Transpose of x (..., M, N) and returns the
// result's shape (..., N, M), M and N.
func TransposeShape(x []int) (out []int, M, N int) {
	r := len(x)
	if r < 2 {
		Fail("Transpose", ErrShape, "x %s has fewer than two dims", ShapeString(x))
	}
	M, N = x[r-2], x[r-1]
	out = append([]int(nil), x...)
	out[r-2], out[r-1] = N, M
	return out, M, N
}

// MaskDownsamplerShapes are the shapes of a MaskDownsampler's tensors,
// field by field.
type MaskDownsamplerShapes struct {
	Conv1W, Conv1B, LN1W, LN1B []int
	Conv2W, Conv2B, LN2W, LN2B []int
	Conv3W, Conv3B             []int
}

// MaskDownsampleShape validates MaskDownsample's masks (B, H, W), H, W ≥ 4,
// and weights p: Conv1W (c1, 1, 2, 2), Conv2W (c2, c1, 2, 2),
// Conv3W (C, c2, 1, 1), each bias and LayerNorm vector the length of its
// conv's output. It returns the result's shape (B, H/4, W/4, C) and the
// channel counts.
func MaskDownsampleShape(masks []int, p MaskDownsamplerShapes) (out []int, c1, c2, C int) {
	const op = "MaskDownsample"
	CheckRank(op, "masks", masks, 3)
	B, H, W := masks[0], masks[1], masks[2]
	if H < 4 || W < 4 {
		Fail(op, ErrShape, "masks %s: want H, W ≥ 4", ShapeString(masks))
	}
	CheckRank(op, "Conv1W", p.Conv1W, 4)
	c1 = p.Conv1W[0]
	CheckShape(op, "Conv1W", p.Conv1W, c1, 1, 2, 2)
	CheckRank(op, "Conv2W", p.Conv2W, 4)
	c2 = p.Conv2W[0]
	CheckShape(op, "Conv2W", p.Conv2W, c2, c1, 2, 2)
	CheckRank(op, "Conv3W", p.Conv3W, 4)
	C = p.Conv3W[0]
	CheckShape(op, "Conv3W", p.Conv3W, C, c2, 1, 1)
	CheckShape(op, "Conv1B", p.Conv1B, c1)
	CheckShape(op, "LN1W", p.LN1W, c1)
	CheckShape(op, "LN1B", p.LN1B, c1)
	CheckShape(op, "Conv2B", p.Conv2B, c2)
	CheckShape(op, "LN2W", p.LN2W, c2)
	CheckShape(op, "LN2B", p.LN2B, c2)
	CheckShape(op, "Conv3B", p.Conv3B, C)
	return []int{B, H / 4, W / 4, C}, c1, c2, C
}

// UpscaleMasksShape validates UpscaleMasks' logits (B, M, h, w), h, w ≥ 1,
// with p (1 ≤ InH, InW ≤ Pad; OutH, OutW ≥ 1) and returns the result's
// shape (B, M, OutH, OutW).
func UpscaleMasksShape(logits []int, p MaskUpscale) []int {
	const op = "UpscaleMasks"
	CheckRank(op, "logits", logits, 4)
	h, w := logits[2], logits[3]
	if h < 1 || w < 1 || p.InH < 1 || p.InW < 1 || p.InH > p.Pad || p.InW > p.Pad || p.OutH < 1 || p.OutW < 1 {
		Fail(op, ErrShape, "logits %s with %+v: want h, w ≥ 1, 1 ≤ InH, InW ≤ Pad, OutH, OutW ≥ 1", ShapeString(logits), p)
	}
	return []int{logits[0], logits[1], p.OutH, p.OutW}
}
