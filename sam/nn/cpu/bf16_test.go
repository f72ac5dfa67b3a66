package cpu

import (
	"math"
	"runtime"
	"sync"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/samgo/samgo/sam/nn"
	"github.com/samgo/samgo/sam/nn/cpu/sgemm"
)

// bf16Error is the rms of got − want relative to the rms of want.
func bf16Error(want, got []float32) float64 {
	var d2, s2 float64
	for i := range want {
		d := float64(got[i]) - float64(want[i])
		d2 += d * d
		s2 += float64(want[i]) * float64(want[i])
	}
	return math.Sqrt(d2 / s2)
}

// TestBF16Ops runs the ops the bf16 precision changes on a bf16 backend
// and on the fp32 one with the same inputs: the results must differ by
// bf16's rounding (rms error between 1e-4 and 1e-2 of the output's: the
// inputs' relative rounding is ≤ 2⁻⁹ ≈ 2e-3) — close, and really rounded.
// The fp32 ops themselves are checked against float64 loops elsewhere.
func TestBF16Ops(t *testing.T) {
	if !sgemm.HasBF16() {
		t.Skip("no AVX512_BF16 on this CPU")
	}
	f32, b16 := New(), New(WithBF16())
	require.Equal(t, "bf16", b16.Precision())
	rng := newRNG(11)
	type pair struct{ f, b nn.Tensor }
	up := func(weight bool, shape ...int) pair {
		d := randData(rng, nn.Numel(shape))
		if weight {
			return pair{f32.UploadWeight(d, shape...), b16.UploadWeight(d, shape...)}
		}
		return pair{f32.Upload(d, shape...), b16.Upload(d, shape...)}
	}
	check := func(name string, f, b nn.Tensor) {
		t.Helper()
		e := bf16Error(f32.Download(f), b16.Download(b))
		t.Logf("%-34s rms error %.2e", name, e)
		require.Greater(t, e, 1e-4, "%s: not rounded to bf16", name)
		require.Less(t, e, 1e-2, name)
	}

	x, w, bias := up(false, 2, 50, 96), up(true, 70, 96), up(true, 70)
	check("Linear (2, 50, 96)·(70, 96)ᵀ gelu", f32.Linear(x.f, w.f, bias.f, nn.ActGELU), b16.Linear(x.b, w.b, bias.b, nn.ActGELU))
	// The packing is made once and kept with the weight.
	wt := w.b.(*Tensor)
	p := wt.packed.Load()
	require.True(t, p != nil && p.bf != nil, "weight not packed in bf16")
	b16.Release(b16.Linear(x.b, w.b, bias.b, nn.ActNone))
	require.Same(t, p, wt.packed.Load(), "weight packed twice")

	img, cw, cb := up(false, 1, 20, 24, 8), up(true, 16, 8, 3, 3), up(true, 16)
	check("Conv2D 3×3 pad 1", f32.Conv2D(img.f, cw.f, cb.f, 1, 1), b16.Conv2D(img.b, cw.b, cb.b, 1, 1))
	pw := up(true, 32, 8, 4, 4)
	check("Conv2D 4×4 stride 4 (patch embed)", f32.Conv2D(img.f, pw.f, nil, 4, 0), b16.Conv2D(img.b, pw.b, nil, 4, 0))

	// Attention with rel-pos: 2 windows of 6×7 tokens, 3 heads of 16.
	const heads, d, QH, QW = 3, 16, 6, 7
	qkv := up(false, 2, QH*QW, 3*heads*d)
	rh, rw := up(true, 2*QH-1, d), up(true, 2*QW-1, d)
	relF := &nn.RelPos{H: rh.f, W: rw.f, QH: QH, QW: QW}
	relB := &nn.RelPos{H: rh.b, W: rw.b, QH: QH, QW: QW}
	check("AttentionQKV rel-pos", f32.AttentionQKV(qkv.f, heads, relF), b16.AttentionQKV(qkv.b, heads, relB))
	q, k, v := up(false, 1, 9, 2*d), up(false, 1, 40, 2*d), up(false, 1, 40, 2*24)
	check("Attention 9 queries × 40 keys, dv 24", f32.Attention(q.f, k.f, v.f, 2, nil), b16.Attention(q.b, k.b, v.b, 2, nil))
}

// TestWeightPackedOnce: goroutines that use a weight for the first time
// together all get the one stored packing (the others' packings are freed
// by the garbage collector, so none may be in use), and a weight packed
// for one precision is used uncached, correctly, by a backend of the other.
func TestWeightPackedOnce(t *testing.T) {
	f32 := New(WithThreads(1))
	rng := newRNG(12)
	xd, wd := randData(rng, 70*96), randData(rng, 40*96)
	x := f32.Upload(xd, 70, 96)
	want := f32.Download(f32.Linear(x, f32.UploadWeight(wd, 40, 96), nil, nn.ActNone))

	w := f32.UploadWeight(wd, 40, 96)
	const n = 8
	got := make([][]float32, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			got[i] = f32.Download(f32.Linear(x, w, nil, nn.ActNone))
		}()
	}
	wg.Wait()
	for i := range n {
		require.Equal(t, want, got[i], "goroutine %d", i)
	}
	runtime.GC()
	runtime.GC() // the losing packings' cleanups run
	require.Equal(t, want, f32.Download(f32.Linear(x, w, nil, nn.ActNone)))

	if !sgemm.HasBF16() {
		return
	}
	b16 := New(WithThreads(1), WithBF16())
	fresh := b16.Download(b16.Linear(x, b16.UploadWeight(wd, 40, 96), nil, nn.ActNone))
	require.Equal(t, fresh, b16.Download(b16.Linear(x, w, nil, nn.ActNone)), "fp32-packed weight on a bf16 backend")
	require.NotNil(t, w.(*Tensor).packed.Load().f, "the fp32 packing stays cached")
}
