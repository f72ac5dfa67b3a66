package cpu

import (
	"testing"

	"github.com/samgo/samgo/sam/nn"
)

// BenchmarkViTB runs the ops of SAM ViT-B's image encoder at 1024×1024 on
// random weights, as the model calls them (sam/image_encoder.go): the
// patch embedding, one windowed and one global block, and the neck. The
// encoder is patch + 8 windowed + 4 global blocks + neck, which the
// "encoder_s" metric of the full benchmark adds up. Both precisions run
// (fp32, and bf16 where the CPU has AVX512_BF16), so their ratio is
// measured in one run.
func BenchmarkViTB(b *testing.B) {
	b.Run("fp32", func(b *testing.B) { benchViTB(b, New()) })
	if be := New(WithBF16()); be.Precision() == "bf16" {
		b.Run("bf16", func(b *testing.B) { benchViTB(b, be) })
	}
}

func benchViTB(b *testing.B, be *Backend) {
	rng := newRNG(42)
	const (
		g, D, heads, mlp, C, win = 64, 768, 12, 3072, 256, 14
	)
	w := func(shape ...int) nn.Tensor { t, _ := randTensor(be, rng, shape...); return t }
	img := w(1, 1024, 1024, 3)
	patchW, patchB, pos := w(D, 3, 16, 16), w(D), w(1, g, g, D)
	ln1w, ln1b, ln2w, ln2b := w(D), w(D), w(D), w(D)
	qkvW, qkvB, projW, projB := w(3*D, D), w(3*D), w(D, D), w(D)
	lin1W, lin1B, lin2W, lin2B := w(mlp, D), w(mlp), w(D, mlp), w(D)
	relWin := &nn.RelPos{H: w(2*win-1, D/heads), W: w(2*win-1, D/heads), QH: win, QW: win}
	relGlob := &nn.RelPos{H: w(2*g-1, D/heads), W: w(2*g-1, D/heads), QH: g, QW: g}
	neck0, neck2, nlnw, nlnb := w(C, D, 1, 1), w(C, C, 3, 3), w(C), w(C)
	x := w(1, g, g, D)

	block := func(x nn.Tensor, window int) nn.Tensor {
		h := be.LayerNorm(x, ln1w, ln1b, 1e-6)
		var tokens nn.Tensor
		rel := relGlob
		if window > 0 {
			tokens = be.WindowPartition(h, window) // (25, 196, D)
			be.Release(h)
			rel = relWin
		} else {
			tokens = be.Reshape(h, 1, g*g, D)
		}
		qkv := be.Linear(tokens, qkvW, qkvB, nn.ActNone)
		be.Release(tokens)
		a := be.AttentionQKV(qkv, heads, rel)
		be.Release(qkv)
		a2 := be.Linear(a, projW, projB, nn.ActNone)
		be.Release(a)
		if window > 0 {
			a = be.WindowUnpartition(a2, window, g, g)
			be.Release(a2)
		} else {
			a = be.Reshape(a2, 1, g, g, D)
		}
		sum, n := be.AddLayerNorm(x, a, ln2w, ln2b, 1e-6)
		be.Release(a)
		m := be.Linear(n, lin1W, lin1B, nn.ActGELU)
		be.Release(n)
		m2 := be.Linear(m, lin2W, lin2B, nn.ActNone)
		be.Release(m)
		out := be.Add(sum, m2)
		be.Release(sum, m2)
		return out
	}
	var tPatch, tWin, tGlob, tNeck float64
	b.Run("patch_embed", func(b *testing.B) {
		for b.Loop() {
			h := be.Conv2D(img, patchW, patchB, 16, 0)
			be.Release(be.Add(h, pos), h)
		}
		tPatch = b.Elapsed().Seconds() / float64(b.N)
	})
	b.Run("block_windowed", func(b *testing.B) {
		for b.Loop() {
			be.Release(block(x, win))
		}
		tWin = b.Elapsed().Seconds() / float64(b.N)
	})
	b.Run("block_global", func(b *testing.B) {
		for b.Loop() {
			be.Release(block(x, 0))
		}
		tGlob = b.Elapsed().Seconds() / float64(b.N)
	})
	b.Run("neck", func(b *testing.B) {
		for b.Loop() {
			n0 := be.Conv2D(x, neck0, nil, 1, 0)
			n1 := be.LayerNorm(n0, nlnw, nlnb, 1e-6)
			n2 := be.Conv2D(n1, neck2, nil, 1, 1)
			be.Release(be.LayerNorm(n2, nlnw, nlnb, 1e-6), n0, n1, n2)
		}
		tNeck = b.Elapsed().Seconds() / float64(b.N)
	})
	if tPatch > 0 && tWin > 0 && tGlob > 0 && tNeck > 0 {
		b.Logf("ViT-B encoder estimate: %.2f s (patch %.3f + 8×%.3f windowed + 4×%.3f global + neck %.3f)",
			tPatch+8*tWin+4*tGlob+tNeck, tPatch, tWin, tGlob, tNeck)
	}
}
