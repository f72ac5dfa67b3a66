package nn_test

import (
	"errors"
	"fmt"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/samgo/samgo/sam/nn"
	"github.com/samgo/samgo/sam/nn/nntest"
)

// s builds a shape.
func s(dims ...int) []int { return append([]int{}, dims...) }

// r collects a rule's results for comparison.
func r(vals ...any) []any { return vals }

// maskShapes are the MaskDownsampler shapes for channel counts c1, c2, C.
func maskShapes(c1, c2, C int) nn.MaskDownsamplerShapes {
	return nn.MaskDownsamplerShapes{
		Conv1W: s(c1, 1, 2, 2), Conv1B: s(c1), LN1W: s(c1), LN1B: s(c1),
		Conv2W: s(c2, c1, 2, 2), Conv2B: s(c2), LN2W: s(c2), LN2B: s(c2),
		Conv3W: s(C, c2, 1, 1), Conv3B: s(C),
	}
}

func TestShapeString(t *testing.T) {
	require.Equal(t, "()", nn.ShapeString(nil))
	require.Equal(t, "(7)", nn.ShapeString(s(7)))
	require.Equal(t, "(2, 0, 3)", nn.ShapeString(s(2, 0, 3)))
}

// TestShapeRulesAccept runs each rule on shapes its op takes and checks
// what it returns.
func TestShapeRulesAccept(t *testing.T) {
	rel23 := &nn.RelPos{QH: 2, QW: 3}
	win := nn.WindowDims{B: 2, H: 5, W: 11, C: 3, Win: 4, NH: 2, NW: 3}
	for _, tc := range []struct {
		name string
		got  func() []any
		want []any
	}{
		{"CheckRank", func() []any { nn.CheckRank("Op", "x", s(2, 3), 2); return nil }, nil},
		{"CheckShape", func() []any { nn.CheckShape("Op", "b", s(4), 4); return nil }, nil},
		{"CheckShape scalar", func() []any { nn.CheckShape("Op", "b", nil); return nil }, nil},
		{"CheckSameShape", func() []any { nn.CheckSameShape("Op", "x", s(2, 3), "r", s(2, 3)); return nil }, nil},
		{"CheckDims", func() []any { nn.CheckDims("Op", s(0, 2)); return nil }, nil},
		{"CheckAct", func() []any { nn.CheckAct("Op", nn.ActReLU); return nil }, nil},
		{"Upload", func() []any { nn.UploadShape("Upload", 6, s(2, 3)); return nil }, nil},
		{"Upload scalar", func() []any { nn.UploadShape("UploadWeight", 1, nil); return nil }, nil},
		{"Upload empty", func() []any { nn.UploadShape("Upload", 0, s(3, 0)); return nil }, nil},
		{"Reshape", func() []any { nn.ReshapeShape(s(2, 3), s(3, 1, 2)); return nil }, nil},

		{"Linear", func() []any { return r(nn.LinearShape(s(2, 3, 4), s(5, 4))) }, r(s(2, 3, 5), 6, 4, 5)},
		{"Linear vector", func() []any { return r(nn.LinearShape(s(4), s(0, 4))) }, r(s(0), 1, 4, 0)},
		{"Linear no rows", func() []any { return r(nn.LinearShape(s(0, 4), s(2, 4))) }, r(s(0, 2), 0, 4, 2)},
		{"MatMulT", func() []any { return r(nn.MatMulTShape(s(2, 3, 4), s(2, 5, 4))) }, r(s(2, 3, 5), 2, 3, 5, 4)},
		{"Conv2D", func() []any { return r(nn.Conv2DShape(s(1, 16, 15, 3), s(8, 3, 3, 3), 2, 1)) }, r(s(1, 8, 8, 8), 8, 3)},
		{"Conv2D kernel = padded map", func() []any { return r(nn.Conv2DShape(s(2, 2, 2, 1), s(4, 1, 4, 4), 1, 1)) }, r(s(2, 1, 1, 4), 4, 4)},
		{"Conv2D 1x1", func() []any { return r(nn.Conv2DShape(s(1, 5, 7, 6), s(2, 6, 1, 1), 1, 0)) }, r(s(1, 5, 7, 2), 2, 1)},
		{"ConvTranspose2D", func() []any { return r(nn.ConvTranspose2DShape(s(2, 4, 5, 8), s(8, 3, 2, 2), 2)) }, r(s(2, 8, 10, 3), 3)},
		{"LayerNorm", func() []any { return r(nn.LayerNormShape("LayerNorm", s(2, 5, 8), s(8), s(8))) }, r(8)},
		{"Attention", func() []any { return r(nn.AttentionShape(s(2, 6, 8), s(2, 7, 8), s(2, 7, 4), 2)) }, r(2, 6, 7, 4, 2)},
		{"Attention no keys", func() []any { return r(nn.AttentionShape(s(1, 3, 4), s(1, 0, 4), s(1, 0, 6), 2)) }, r(1, 3, 0, 2, 3)},
		{"AttentionQKV", func() []any { return r(nn.AttentionQKVShape(s(2, 6, 12), 2)) }, r(2, 6, 2)},
		{"RelPos", func() []any { nn.RelPosShape("Attention", rel23, s(3, 4), s(5, 4), 6, 6, 4); return nil }, nil},
		{"WindowPartition", func() []any { return r(nn.WindowPartitionShape(s(2, 5, 11, 3), 4)) }, r(win)},
		{"WindowUnpartition", func() []any { return r(nn.WindowUnpartitionShape(s(12, 16, 3), 4, 5, 11)) }, r(win)},
		{"WindowDims", func() []any { return r(win.Windows(), win.Map()) }, r(s(12, 16, 3), s(2, 5, 11, 3))},
		{"Add same", func() []any { return r(nn.AddShape(s(2, 3, 4), s(2, 3, 4))) }, r(s(2, 3, 4))},
		{"Add dropped", func() []any { return r(nn.AddShape(s(2, 3, 4), s(3, 4))) }, r(s(2, 3, 4))},
		{"Add ones", func() []any { return r(nn.AddShape(s(2, 3, 4), s(1, 1, 4))) }, r(s(2, 3, 4))},
		{"Add scalar", func() []any { return r(nn.AddShape(s(2, 3), nil)) }, r(s(2, 3))},
		{"Concat", func() []any { return r(nn.ConcatShape(1, s(2, 3), s(2, 5), s(2, 0))) }, r(s(2, 8))},
		{"Concat one", func() []any { return r(nn.ConcatShape(0, s(2, 3))) }, r(s(2, 3))},
		{"Slice", func() []any { return r(nn.SliceShape(s(2, 6, 3), 1, 2, 5)) }, r(s(2, 3, 3))},
		{"Slice empty", func() []any { return r(nn.SliceShape(s(2, 6), 1, 6, 6)) }, r(s(2, 0))},
		{"Repeat", func() []any { return r(nn.RepeatShape(s(1, 3, 2), 4)) }, r(s(4, 3, 2))},
		{"Repeat none", func() []any { return r(nn.RepeatShape(s(1), 0)) }, r(s(0))},
		{"Transpose", func() []any { return r(nn.TransposeShape(s(2, 3, 5))) }, r(s(2, 5, 3), 3, 5)},
		{"MaskDownsample", func() []any { return r(nn.MaskDownsampleShape(s(2, 16, 13), maskShapes(4, 16, 32))) }, r(s(2, 4, 3, 32), 4, 16, 32)},
		{"UpscaleMasks", func() []any {
			return r(nn.UpscaleMasksShape(s(1, 3, 64, 48), nn.MaskUpscale{Pad: 256, InH: 256, InW: 192, OutH: 480, OutW: 360}))
		}, r(s(1, 3, 480, 360))},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var got []any
			require.NoError(t, nntest.OpError(t, func() { got = tc.got() }))
			require.Equal(t, tc.want, got)
		})
	}
}

// TestShapeRulesReject runs each rule on shapes its op cannot take: it
// must fail with an *nn.Error for the right op wrapping nn.ErrShape, and
// the message must say what is wrong (msg, where given, is part of it).
func TestShapeRulesReject(t *testing.T) {
	rel := func(QH, QW int) *nn.RelPos { return &nn.RelPos{QH: QH, QW: QW} }
	up := nn.MaskUpscale{Pad: 16, InH: 16, InW: 12, OutH: 20, OutW: 15}
	// maskWith runs MaskDownsampleShape on (1, 8, 8) masks with weights
	// for (4, 16, 32) channels changed by mod.
	maskWith := func(mod func(p *nn.MaskDownsamplerShapes)) func() {
		return func() {
			p := maskShapes(4, 16, 32)
			mod(&p)
			nn.MaskDownsampleShape(s(1, 8, 8), p)
		}
	}
	for _, tc := range []struct {
		name, op string
		f        func()
		msg      string
	}{
		{"CheckRank", "Op", func() { nn.CheckRank("Op", "x", s(2, 3), 3) }, "x is (2, 3), want rank 3"},
		{"CheckShape", "Op", func() { nn.CheckShape("Op", "b", s(3), 4) }, "b is (3), want (4)"},
		{"CheckShape scalar", "Op", func() { nn.CheckShape("Op", "b", nil, 4) }, "b is (), want (4)"},
		{"CheckSameShape", "Op", func() { nn.CheckSameShape("Op", "x", s(2, 3), "r", s(3, 2)) }, "x (2, 3) and r (3, 2) differ"},
		{"CheckDims", "Op", func() { nn.CheckDims("Op", s(2, -1)) }, "negative dimension in (2, -1)"},
		{"CheckAct", "Op", func() { nn.CheckAct("Op", nn.Act(7)) }, "unsupported activation Act(7)"},
		{"Upload count", "Upload", func() { nn.UploadShape("Upload", 5, s(2, 3)) }, "5 values for shape (2, 3) (6 elements)"},
		{"Upload negative", "UploadWeight", func() { nn.UploadShape("UploadWeight", 0, s(-1)) }, ""},
		{"Reshape count", "Reshape", func() { nn.ReshapeShape(s(2, 3), s(5)) }, "cannot view (2, 3) as (5)"},
		{"Reshape negative", "Reshape", func() { nn.ReshapeShape(s(6), s(-2, -3)) }, "negative dimension"},

		{"Linear scalar", "Linear", func() { nn.LinearShape(nil, s(2, 1)) }, "x is a scalar"},
		{"Linear w rank", "Linear", func() { nn.LinearShape(s(3, 4), s(2, 4, 1)) }, "w is (2, 4, 1), want rank 2"},
		{"Linear K", "Linear", func() { nn.LinearShape(s(3, 4), s(2, 5)) }, "x (3, 4) and w (2, 5): want w (N, 4) with K ≥ 1"},
		{"Linear K 0", "Linear", func() { nn.LinearShape(s(3, 0), s(2, 0)) }, ""},
		{"MatMulT a rank", "MatMulT", func() { nn.MatMulTShape(s(3, 4), s(1, 5, 4)) }, "a is (3, 4), want rank 3"},
		{"MatMulT b rank", "MatMulT", func() { nn.MatMulTShape(s(1, 3, 4), s(5, 4)) }, "b is (5, 4)"},
		{"MatMulT batch", "MatMulT", func() { nn.MatMulTShape(s(2, 3, 4), s(1, 5, 4)) }, "want b (2, N, 4)"},
		{"MatMulT K", "MatMulT", func() { nn.MatMulTShape(s(2, 3, 4), s(2, 5, 3)) }, ""},
		{"MatMulT K 0", "MatMulT", func() { nn.MatMulTShape(s(2, 3, 0), s(2, 5, 0)) }, ""},
		{"Conv2D x rank", "Conv2D", func() { nn.Conv2DShape(s(8, 8, 3), s(4, 3, 3, 3), 1, 0) }, "x is (8, 8, 3), want rank 4"},
		{"Conv2D w rank", "Conv2D", func() { nn.Conv2DShape(s(1, 8, 8, 3), s(4, 3, 3), 1, 0) }, ""},
		{"Conv2D Cin", "Conv2D", func() { nn.Conv2DShape(s(1, 8, 8, 3), s(4, 2, 3, 3), 1, 0) }, "want w (Cout, 3, k, k), k ≥ 1"},
		{"Conv2D not square", "Conv2D", func() { nn.Conv2DShape(s(1, 8, 8, 3), s(4, 3, 3, 2), 1, 0) }, ""},
		{"Conv2D k 0", "Conv2D", func() { nn.Conv2DShape(s(1, 8, 8, 3), s(4, 3, 0, 0), 1, 0) }, ""},
		{"Conv2D Cin 0", "Conv2D", func() { nn.Conv2DShape(s(1, 8, 8, 0), s(4, 0, 3, 3), 1, 0) }, ""},
		{"Conv2D stride", "Conv2D", func() { nn.Conv2DShape(s(1, 8, 8, 3), s(4, 3, 3, 3), 0, 0) }, "stride 0, pad 0: want stride ≥ 1, pad ≥ 0"},
		{"Conv2D pad", "Conv2D", func() { nn.Conv2DShape(s(1, 8, 8, 3), s(4, 3, 3, 3), 1, -1) }, ""},
		{"Conv2D kernel too large", "Conv2D", func() { nn.Conv2DShape(s(1, 2, 8, 3), s(4, 3, 5, 5), 1, 1) }, "kernel 5 larger than the padded map 2x8 (pad 1)"},
		{"ConvTranspose2D x rank", "ConvTranspose2D", func() { nn.ConvTranspose2DShape(s(4, 5, 8), s(8, 3, 2, 2), 2) }, ""},
		{"ConvTranspose2D w rank", "ConvTranspose2D", func() { nn.ConvTranspose2DShape(s(1, 4, 5, 8), s(8, 3, 4), 2) }, ""},
		{"ConvTranspose2D k 0", "ConvTranspose2D", func() { nn.ConvTranspose2DShape(s(1, 4, 5, 8), s(8, 3, 0, 0), 0) }, ""},
		{"ConvTranspose2D Cin", "ConvTranspose2D", func() { nn.ConvTranspose2DShape(s(1, 4, 5, 8), s(7, 3, 2, 2), 2) }, "want w (8, Cout, 2, 2)"},
		{"ConvTranspose2D k", "ConvTranspose2D", func() { nn.ConvTranspose2DShape(s(1, 4, 5, 8), s(8, 3, 2, 2), 3) }, ""},
		{"ConvTranspose2D Cin 0", "ConvTranspose2D", func() { nn.ConvTranspose2DShape(s(1, 4, 5, 0), s(0, 3, 2, 2), 2) }, ""},
		{"LayerNorm scalar", "LayerNorm", func() { nn.LayerNormShape("LayerNorm", nil, s(1), s(1)) }, "x () has no channels to normalise"},
		{"LayerNorm no channels", "AddLayerNorm", func() { nn.LayerNormShape("AddLayerNorm", s(4, 0), s(0), s(0)) }, ""},
		{"LayerNorm w", "LayerNorm", func() { nn.LayerNormShape("LayerNorm", s(4, 8), s(7), s(8)) }, "w is (7), want (8)"},
		{"LayerNorm b", "LayerNorm", func() { nn.LayerNormShape("LayerNorm", s(4, 8), s(8), s(1, 8)) }, "b is (1, 8), want (8)"},
		{"Attention q rank", "Attention", func() { nn.AttentionShape(s(6, 8), s(2, 6, 8), s(2, 6, 4), 2) }, "q is (6, 8), want rank 3"},
		{"Attention k rank", "Attention", func() { nn.AttentionShape(s(2, 6, 8), s(6, 8), s(2, 6, 4), 2) }, ""},
		{"Attention v rank", "Attention", func() { nn.AttentionShape(s(2, 6, 8), s(2, 6, 8), s(6, 4), 2) }, ""},
		{"Attention heads 0", "Attention", func() { nn.AttentionShape(s(2, 6, 8), s(2, 6, 8), s(2, 6, 4), 0) }, "heads = 0"},
		{"Attention batch", "Attention", func() { nn.AttentionShape(s(2, 6, 8), s(1, 6, 8), s(1, 6, 4), 2) }, "want q (B, Nq, C), k (B, Nk, C), v (B, Nk, Cv)"},
		{"Attention k channels", "Attention", func() { nn.AttentionShape(s(2, 6, 8), s(2, 6, 6), s(2, 6, 4), 2) }, ""},
		{"Attention v tokens", "Attention", func() { nn.AttentionShape(s(2, 6, 8), s(2, 6, 8), s(2, 5, 4), 2) }, ""},
		{"Attention heads divisor", "Attention", func() { nn.AttentionShape(s(2, 6, 8), s(2, 6, 8), s(2, 6, 4), 3) }, "q channels 8 and v channels 4 must be positive multiples of heads = 3"},
		{"Attention no channels", "Attention", func() { nn.AttentionShape(s(2, 6, 0), s(2, 6, 0), s(2, 6, 4), 2) }, ""},
		{"AttentionQKV rank", "AttentionQKV", func() { nn.AttentionQKVShape(s(6, 12), 2) }, "qkv is (6, 12), want rank 3"},
		{"AttentionQKV heads 0", "AttentionQKV", func() { nn.AttentionQKVShape(s(2, 6, 12), 0) }, "heads = 0"},
		{"AttentionQKV channels", "AttentionQKV", func() { nn.AttentionQKVShape(s(2, 6, 8), 2) }, "qkv (2, 6, 8): channels must be a positive multiple of 3·heads = 6"},
		{"AttentionQKV no channels", "AttentionQKV", func() { nn.AttentionQKVShape(s(2, 6, 0), 2) }, ""},
		{"RelPos grid 0", "Attention", func() { nn.RelPosShape("Attention", rel(0, 3), s(0, 4), s(5, 4), 0, 0, 4) }, ""},
		{"RelPos grid", "Attention", func() { nn.RelPosShape("Attention", rel(2, 2), s(3, 4), s(3, 4), 6, 6, 4) }, "rel-pos grid 2x2 needs Nq = Nk = 4, have Nq 6, Nk 6"},
		{"RelPos Nq != Nk", "AttentionQKV", func() { nn.RelPosShape("AttentionQKV", rel(2, 3), s(3, 4), s(5, 4), 6, 7, 4) }, ""},
		{"RelPos H rows", "Attention", func() { nn.RelPosShape("Attention", rel(2, 3), s(5, 4), s(5, 4), 6, 6, 4) }, "rel.H is (5, 4), want (3, 4)"},
		{"RelPos W dim", "Attention", func() { nn.RelPosShape("Attention", rel(2, 3), s(3, 4), s(5, 8), 6, 6, 4) }, "rel.W is (5, 8), want (5, 4)"},
		{"WindowPartition rank", "WindowPartition", func() { nn.WindowPartitionShape(s(4, 4, 3), 2) }, "x is (4, 4, 3), want rank 4"},
		{"WindowPartition win", "WindowPartition", func() { nn.WindowPartitionShape(s(1, 4, 4, 3), 0) }, "window 0"},
		{"WindowUnpartition rank", "WindowUnpartition", func() { nn.WindowUnpartitionShape(s(4, 4, 3, 1), 2, 4, 4) }, ""},
		{"WindowUnpartition win", "WindowUnpartition", func() { nn.WindowUnpartitionShape(s(4, 4, 3), 0, 4, 4) }, "window 0, map 4x4"},
		{"WindowUnpartition map", "WindowUnpartition", func() { nn.WindowUnpartitionShape(s(4, 4, 3), 2, 0, 4) }, ""},
		{"WindowUnpartition tokens", "WindowUnpartition", func() { nn.WindowUnpartitionShape(s(4, 5, 3), 2, 4, 4) }, "x (4, 5, 3): want (B·4, 4, C) for window 2 of a 4x4 map"},
		{"WindowUnpartition count", "WindowUnpartition", func() { nn.WindowUnpartitionShape(s(3, 4, 3), 2, 4, 4) }, ""},
		{"Add rank", "Add", func() { nn.AddShape(s(3), s(2, 3)) }, "b (2, 3) does not broadcast to a (3)"},
		{"Add trailing", "Add", func() { nn.AddShape(s(2, 3, 4), s(3, 5)) }, ""},
		{"Add middle", "Add", func() { nn.AddShape(s(2, 3, 4), s(2, 1, 4)) }, ""},
		{"Concat none", "Concat", func() { nn.ConcatShape(0) }, "no tensors"},
		{"Concat axis", "Concat", func() { nn.ConcatShape(2, s(2, 3), s(2, 3)) }, "axis 2 of a rank-2 tensor"},
		{"Concat negative axis", "Concat", func() { nn.ConcatShape(-1, s(2, 3), s(2, 3)) }, ""},
		{"Concat rank", "Concat", func() { nn.ConcatShape(0, s(2, 3), s(2, 3, 1)) }, "ranks differ: (2, 3) and (2, 3, 1)"},
		{"Concat other dim", "Concat", func() { nn.ConcatShape(0, s(2, 3), s(2, 4)) }, "shapes (2, 3) and (2, 4) differ outside axis 0"},
		{"Slice axis", "Slice", func() { nn.SliceShape(s(2, 3), 2, 0, 1) }, "axis 2 of (2, 3)"},
		{"Slice negative axis", "Slice", func() { nn.SliceShape(s(2, 3), -1, 0, 1) }, ""},
		{"Slice range", "Slice", func() { nn.SliceShape(s(2, 3), 1, 2, 4) }, "[2, 4) of axis 1 of (2, 3)"},
		{"Slice reversed", "Slice", func() { nn.SliceShape(s(2, 3), 1, 2, 1) }, ""},
		{"Slice negative", "Slice", func() { nn.SliceShape(s(2, 3), 1, -1, 1) }, ""},
		{"Repeat lead", "Repeat", func() { nn.RepeatShape(s(2, 3), 2) }, "x (2, 3), n 2: want x (1, ...) and n ≥ 0"},
		{"Repeat scalar", "Repeat", func() { nn.RepeatShape(nil, 2) }, ""},
		{"Repeat n", "Repeat", func() { nn.RepeatShape(s(1, 3), -1) }, ""},
		{"Transpose rank", "Transpose", func() { nn.TransposeShape(s(3)) }, "x (3) has fewer than two dims"},
		{"MaskDownsample rank", "MaskDownsample", func() { nn.MaskDownsampleShape(s(2, 16, 16, 1), maskShapes(4, 16, 32)) }, "masks is (2, 16, 16, 1), want rank 3"},
		{"MaskDownsample small", "MaskDownsample", func() { nn.MaskDownsampleShape(s(2, 3, 16), maskShapes(4, 16, 32)) }, "masks (2, 3, 16): want H, W ≥ 4"},
		{"MaskDownsample conv1 rank", "MaskDownsample", maskWith(func(p *nn.MaskDownsamplerShapes) { p.Conv1W = s(4, 1, 2) }), "Conv1W is (4, 1, 2), want rank 4"},
		{"MaskDownsample conv1 in", "MaskDownsample", maskWith(func(p *nn.MaskDownsamplerShapes) { p.Conv1W = s(4, 2, 2, 2) }), "Conv1W is (4, 2, 2, 2), want (4, 1, 2, 2)"},
		{"MaskDownsample conv1 k", "MaskDownsample", maskWith(func(p *nn.MaskDownsamplerShapes) { p.Conv1W = s(4, 1, 3, 3) }), ""},
		{"MaskDownsample conv2 in", "MaskDownsample", maskWith(func(p *nn.MaskDownsamplerShapes) { p.Conv2W = s(16, 3, 2, 2) }), "Conv2W is (16, 3, 2, 2), want (16, 4, 2, 2)"},
		{"MaskDownsample conv3 rank", "MaskDownsample", maskWith(func(p *nn.MaskDownsamplerShapes) { p.Conv3W = s(32, 16) }), ""},
		{"MaskDownsample conv3 k", "MaskDownsample", maskWith(func(p *nn.MaskDownsamplerShapes) { p.Conv3W = s(32, 16, 2, 2) }), ""},
		{"MaskDownsample conv1 b", "MaskDownsample", maskWith(func(p *nn.MaskDownsamplerShapes) { p.Conv1B = s(5) }), "Conv1B is (5), want (4)"},
		{"MaskDownsample ln1 w", "MaskDownsample", maskWith(func(p *nn.MaskDownsamplerShapes) { p.LN1W = s(16) }), "LN1W is (16), want (4)"},
		{"MaskDownsample ln1 b", "MaskDownsample", maskWith(func(p *nn.MaskDownsamplerShapes) { p.LN1B = nil }), "LN1B is (), want (4)"},
		{"MaskDownsample conv2 b", "MaskDownsample", maskWith(func(p *nn.MaskDownsamplerShapes) { p.Conv2B = s(4) }), ""},
		{"MaskDownsample ln2 w", "MaskDownsample", maskWith(func(p *nn.MaskDownsamplerShapes) { p.LN2W = s(32) }), ""},
		{"MaskDownsample ln2 b", "MaskDownsample", maskWith(func(p *nn.MaskDownsamplerShapes) { p.LN2B = s(4) }), "LN2B is (4), want (16)"},
		{"MaskDownsample conv3 b", "MaskDownsample", maskWith(func(p *nn.MaskDownsamplerShapes) { p.Conv3B = s(16) }), "Conv3B is (16), want (32)"},
		{"UpscaleMasks rank", "UpscaleMasks", func() { nn.UpscaleMasksShape(s(1, 4, 4), up) }, "logits is (1, 4, 4), want rank 4"},
		{"UpscaleMasks empty", "UpscaleMasks", func() { nn.UpscaleMasksShape(s(1, 1, 0, 4), up) }, "want h, w ≥ 1, 1 ≤ InH, InW ≤ Pad, OutH, OutW ≥ 1"},
		{"UpscaleMasks InH > Pad", "UpscaleMasks", func() { nn.UpscaleMasksShape(s(1, 1, 4, 4), nn.MaskUpscale{Pad: 8, InH: 9, InW: 8, OutH: 1, OutW: 1}) }, "InH:9"},
		{"UpscaleMasks InW 0", "UpscaleMasks", func() { nn.UpscaleMasksShape(s(1, 1, 4, 4), nn.MaskUpscale{Pad: 8, InH: 8, OutH: 1, OutW: 1}) }, ""},
		{"UpscaleMasks OutH 0", "UpscaleMasks", func() { nn.UpscaleMasksShape(s(1, 1, 4, 4), nn.MaskUpscale{Pad: 8, InH: 8, InW: 8, OutW: 1}) }, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			nntest.RequireFails(t, nn.ErrShape, tc.f)
			err := nntest.OpError(t, tc.f)
			var ne *nn.Error
			require.True(t, errors.As(err, &ne))
			require.Equal(t, tc.op, ne.Op)
			require.Contains(t, err.Error(), fmt.Sprintf("%s: %s", tc.op, nn.ErrShape))
			require.Contains(t, err.Error(), tc.msg)
		})
	}
}

// TestShapeRulesFreshResults checks that a returned shape never aliases an
// argument: a backend keeps it as its result's shape.
func TestShapeRulesFreshResults(t *testing.T) {
	a := s(2, 3, 4)
	for name, out := range map[string][]int{
		"Add":       nn.AddShape(a, s(4)),
		"Concat":    nn.ConcatShape(0, a),
		"Slice":     nn.SliceShape(a, 2, 0, 4),
		"Transpose": func() []int { out, _, _ := nn.TransposeShape(a); return out }(),
		"Linear":    func() []int { out, _, _, _ := nn.LinearShape(a, s(4, 4)); return out }(),
	} {
		for i := range out {
			out[i] = -1
		}
		require.Equal(t, s(2, 3, 4), a, name)
	}
}
