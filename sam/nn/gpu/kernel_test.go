//go:build cuda

package gpu

import (
	"fmt"
	"math"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/samgo/samgo/bindings"
	"github.com/samgo/samgo/cuda/cudatest"
	"github.com/samgo/samgo/sam/nn"
	"github.com/samgo/samgo/sam/nn/cpu"
)

// Kernel variants the backend's ops never ask for, called through the
// bindings on the backend's tensors and checked against plain host loops
// (GEMM) or the CPU backend: GEMM with trans_a, beta ≠ 0, batch stride 0,
// an unaligned bias, bias+act and padded leading dimensions; layernorm with
// its outputs aliasing its inputs; the upscale's thresholded uint8 output;
// and, on a real GPU, cuBLASLt against the reference kernel. All are sized
// for the GPU simulator.

// inCall runs f inside an op's critical section of g (device current,
// stream handle, scratch returned afterwards), failing t on an op error.
func inCall(t *testing.T, g *Backend, f func(c *call)) {
	t.Helper()
	var err error
	func() {
		defer nn.Catch(&err)
		c := g.begin("test")
		defer c.end()
		f(c)
	}()
	require.NoError(t, err)
}

type gemmCase struct {
	name           string
	m, n, k, batch int
	transA, transB bool
	alpha, beta    float32
	broadcastA     bool // stride_a = 0: one A for every batch
	broadcastB     bool
	bias           bool
	biasOffset     int // elements: 1 makes the bias 4 (fp32) or 2 (bf16) bytes off 16-byte alignment
	act            nn.Act
	ldPad          int // extra elements per row of A, B and C
}

func gemmCases() []gemmCase {
	return []gemmCase{
		{name: "plain", m: 37, n: 29, k: 53},
		{name: "trans_a", m: 33, n: 17, k: 40, transA: true},
		{name: "trans_a trans_b", m: 20, n: 31, k: 19, transA: true, transB: true},
		{name: "alpha 2 beta 0.5 (C read)", m: 17, n: 23, k: 29, transB: true, alpha: 2, beta: 0.5},
		{name: "batch 3, A broadcast", m: 9, n: 13, k: 21, batch: 3, transB: true, broadcastA: true},
		{name: "batch 3, B broadcast (stride 0)", m: 11, n: 7, k: 18, batch: 3, broadcastB: true},
		{name: "batch 2 beta 1", m: 6, n: 10, k: 12, batch: 2, beta: 1},
		{name: "bias unaligned + gelu (bias kernel)", m: 12, n: 40, k: 24, transB: true, bias: true, biasOffset: 1, act: nn.ActGELU},
		{name: "bias aligned + relu (epilogue)", m: 12, n: 40, k: 24, transB: true, bias: true, act: nn.ActReLU},
		{name: "bias + beta 1", m: 5, n: 16, k: 9, transB: true, bias: true, beta: 1},
		{name: "m = 1 (one prompt token)", m: 1, n: 70, k: 64, transB: true, bias: true},
		{name: "n = 1", m: 40, n: 1, k: 33, transB: true},
		{name: "k = 1", m: 9, n: 11, k: 1},
		{name: "padded leading dims", m: 19, n: 21, k: 17, transA: true, ldPad: 3, bias: true, act: nn.ActGELU},
		{name: "several tiles", m: 130, n: 70, k: 50, transB: true},
	}
}

// gemmOperands are a case's inputs on the device and as the device holds
// them (bf16-rounded in bf16), in storage order.
type gemmOperands struct {
	p                   bindings.GemmParams
	a, b, c, bias       []float32
	ta, tb, tc, tbias   nn.Tensor
	lda, ldb, ldc       int
	sa, sb, sc, batches int
}

func newGemmOperands(t *testing.T, g *Backend, tc gemmCase, seed uint64) *gemmOperands {
	rng := newRNG(seed)
	o := &gemmOperands{batches: max(tc.batch, 1)}
	aRows, aCols := tc.m, tc.k
	if tc.transA {
		aRows, aCols = tc.k, tc.m
	}
	bRows, bCols := tc.k, tc.n
	if tc.transB {
		bRows, bCols = tc.n, tc.k
	}
	o.lda, o.ldb, o.ldc = aCols+tc.ldPad, bCols+tc.ldPad, tc.n+tc.ldPad
	o.sa, o.sb, o.sc = aRows*o.lda, bRows*o.ldb, tc.m*o.ldc
	na, nb := o.sa*o.batches, o.sb*o.batches
	if tc.broadcastA {
		na, o.sa = o.sa, 0
	}
	if tc.broadcastB {
		nb, o.sb = o.sb, 0
	}
	up := func(n int) (nn.Tensor, []float32) {
		h := rnd(rng, n)
		x := g.Upload(h.d, n)
		return x, g.Download(x) // the values the device holds
	}
	o.ta, o.a = up(na)
	o.tb, o.b = up(nb)
	o.tc, o.c = up(o.sc * o.batches)
	alpha := tc.alpha
	if alpha == 0 {
		alpha = 1
	}
	o.p = bindings.GemmParams{
		DType: g.dtype, TransA: tc.transA, TransB: tc.transB,
		M: int64(tc.m), N: int64(tc.n), K: int64(tc.k), Batch: o.batches,
		A: o.ta.(*Tensor).ptr(), LDA: int64(o.lda), StrideA: int64(o.sa),
		B: o.tb.(*Tensor).ptr(), LDB: int64(o.ldb), StrideB: int64(o.sb),
		C: o.tc.(*Tensor).ptr(), LDC: int64(o.ldc), StrideC: int64(o.sc),
		Alpha: alpha, Beta: tc.beta,
	}
	if tc.bias {
		o.tbias, o.bias = up(tc.n + tc.biasOffset)
		o.bias = o.bias[tc.biasOffset:]
		o.p.Bias = o.tbias.(*Tensor).at(int64(tc.biasOffset))
	}
	switch tc.act {
	case nn.ActGELU:
		o.p.Act = bindings.ActGELU
	case nn.ActReLU:
		o.p.Act = bindings.ActReLU
	}
	return o
}

func (o *gemmOperands) release(g *Backend) { g.Release(o.ta, o.tb, o.tc, o.tbias) }

// want is the case in float64 on the host: the whole C buffer, padding
// included (which must come back unchanged).
func (o *gemmOperands) want(tc gemmCase) []float32 {
	out := append([]float32(nil), o.c...)
	for bt := range o.batches {
		for i := range tc.m {
			for j := range tc.n {
				var s float64
				for kk := range tc.k {
					var av, bv float32
					if tc.transA {
						av = o.a[bt*o.sa+kk*o.lda+i]
					} else {
						av = o.a[bt*o.sa+i*o.lda+kk]
					}
					if tc.transB {
						bv = o.b[bt*o.sb+j*o.ldb+kk]
					} else {
						bv = o.b[bt*o.sb+kk*o.ldb+j]
					}
					s += float64(av) * float64(bv)
				}
				at := bt*o.sc + i*o.ldc + j
				v := float64(o.p.Alpha)*s + float64(tc.beta)*float64(o.c[at])
				if o.bias != nil {
					v += float64(o.bias[j])
				}
				switch tc.act {
				case nn.ActGELU:
					v = 0.5 * v * (1 + math.Erf(v/math.Sqrt2))
				case nn.ActReLU:
					v = max(v, 0)
				}
				out[at] = float32(v)
			}
		}
	}
	return out
}

// TestGemmVariants: the backend's GEMM (cuBLASLt with its fallbacks, or
// the reference kernel under SAMGO_GEMM=reference) on every parameter of
// samk_gemm, against float64 loops over the values the device holds.
func TestGemmVariants(t *testing.T) {
	forPrecisions(t, func(t *testing.T, g *Backend) {
		t.Logf("GEMM: %s", g.GEMM())
		for i, tc := range gemmCases() {
			t.Run(tc.name, func(t *testing.T) {
				o := newGemmOperands(t, g, tc, uint64(100+i))
				defer o.release(g)
				inCall(t, g, func(c *call) { c.gemm(o.p) })
				compareTo(t, g.prec, "C", o.want(tc), g.Download(o.tc), 0)
			})
		}
	})
}

// TestGemmCuBLASLtVsReference: on a real GPU, cuBLASLt (samk_gemm, with
// its bias-epilogue and fallback paths) and the reference kernel
// (samk_gemm_reference) agree on every case, in both precisions; the log
// says how many of cuBLASLt's problems fell back to the reference kernel.
func TestGemmCuBLASLtVsReference(t *testing.T) {
	forPrecisions(t, func(t *testing.T, g *Backend) {
		if g.lt == nil {
			t.Skipf("SAMGO_GEMM=%s: no cuBLASLt in this run (the GPU simulator cannot run it)", g.GEMM())
		}
		before := bindings.GemmFallbacks()
		for i, tc := range append(gemmCases(),
			gemmCase{name: "ViT-B qkv", m: 4096, n: 2304, k: 768, transB: true, bias: true},
			gemmCase{name: "decoder MLP, one token", m: 1, n: 2048, k: 256, transB: true, bias: true, act: nn.ActReLU},
		) {
			t.Run(tc.name, func(t *testing.T) {
				lt := newGemmOperands(t, g, tc, uint64(200+i))
				defer lt.release(g)
				ref := newGemmOperands(t, g, tc, uint64(200+i)) // the same values
				defer ref.release(g)
				inCall(t, g, func(c *call) {
					ws, wsBytes := g.lt.Workspace()
					c.check(bindings.Gemm(g.lt.Handle(), ws, wsBytes, &lt.p, c.s))
					c.check(bindings.GemmReference(&ref.p, c.s))
				})
				compareTo(t, g.prec, "cuBLASLt vs reference", g.Download(ref.tc), g.Download(lt.tc), 0)
			})
		}
		t.Logf("%s: %d of these problems fell back from cuBLASLt to the reference kernel", g.prec, bindings.GemmFallbacks()-before)
	})
}

// TestLayerNormAliasing: samk_layernorm with out = x, sum = x,
// sum = residual and out = x with sum = residual (what kernels/samkernels.h
// allows) gives what the CPU's LayerNorm and AddLayerNorm give.
func TestLayerNormAliasing(t *testing.T) {
	forPrecisions(t, func(t *testing.T, g *Backend) {
		rng := newRNG(21)
		const rows, cols = 7, 45
		xh, rh := scaled(rng, 1, 2, rows, cols), rnd(rng, rows, cols)
		wh, bh := scaled(rng, 1, 0.2, cols), rnd(rng, cols)
		c := cpu.New()
		cw, cb := c.Upload(wh.d, cols), c.Upload(bh.d, cols)
		// The CPU computes from the values the device holds.
		gx, gr := g.Upload(xh.d, rows, cols), g.Upload(rh.d, rows, cols)
		xd, rd := g.Download(gx), g.Download(gr)
		g.Release(gx, gr)
		wantSum, wantNorm := c.AddLayerNorm(c.Upload(xd, rows, cols), c.Upload(rd, rows, cols), cw, cb, 1e-5)
		wantLN := c.LayerNorm(c.Upload(xd, rows, cols), cw, cb, 1e-5)
		gw, gb := g.Upload(wh.d, cols), g.Upload(bh.d, cols)
		defer g.Release(gw, gb)

		for _, tc := range []struct {
			name           string
			residual       bool
			sumIs, outIs   string // "x", "residual" or "" (a buffer of its own)
			wantS, wantOut nn.Tensor
		}{
			{name: "out = x", outIs: "x", wantOut: wantLN},
			{name: "sum = x", residual: true, sumIs: "x", wantS: wantSum, wantOut: wantNorm},
			{name: "sum = residual", residual: true, sumIs: "residual", wantS: wantSum, wantOut: wantNorm},
			{name: "out = x, sum = residual", residual: true, sumIs: "residual", outIs: "x", wantS: wantSum, wantOut: wantNorm},
		} {
			t.Run(tc.name, func(t *testing.T) {
				x, r := g.Upload(xd, rows, cols).(*Tensor), g.Upload(rd, rows, cols).(*Tensor)
				own1, own2 := g.Upload(make([]float32, rows*cols), rows, cols).(*Tensor), g.Upload(make([]float32, rows*cols), rows, cols).(*Tensor)
				defer g.Release(x, r, own1, own2)
				pick := func(is string, own *Tensor) *Tensor {
					switch is {
					case "x":
						return x
					case "residual":
						return r
					}
					return own
				}
				out := pick(tc.outIs, own1)
				var res, sum *Tensor
				if tc.residual {
					res, sum = r, pick(tc.sumIs, own2)
				}
				inCall(t, g, func(c *call) {
					c.check(bindings.LayerNorm(&bindings.LayerNormParams{
						DType: g.dtype, Rows: rows, Cols: cols, X: x.ptr(), Residual: optPtr(res), Sum: optPtr(sum),
						Out: out.ptr(), Weight: gw.(*Tensor).ptr(), Bias: gb.(*Tensor).ptr(), Eps: 1e-5,
					}, c.s))
				})
				compareTo(t, g.prec, "out", c.Download(tc.wantOut), g.Download(out), 2e-5)
				if sum != nil {
					compareTo(t, g.prec, "sum", c.Download(tc.wantS), g.Download(sum), 0)
				}
			})
		}
	})
}

// TestUpscaleMasksThreshold: UpscaleMasksThreshold (samk_upscale_masks'
// uint8 output, out_mode 1) is exactly the float logits' (out_mode 0)
// comparison with the threshold, and DownloadInto equals Download.
func TestUpscaleMasksThreshold(t *testing.T) {
	forPrecisions(t, func(t *testing.T, g *Backend) {
		rng := newRNG(22)
		const planes, h, w = 3, 16, 16
		p := nn.MaskUpscale{Pad: 64, InH: 48, InW: 64, OutH: 61, OutW: 83}
		x := g.Upload(scaled(rng, 0, 10, 1, planes, h, w).d, 1, planes, h, w)
		defer g.Release(x)
		logits := g.UpscaleMasks(x, p)
		defer g.Release(logits)
		want := g.Download(logits)
		into := make([]float32, len(want))
		g.DownloadInto(into, logits)
		require.Equal(t, want, into, "DownloadInto")
		for _, thr := range []float32{0, 1.5} {
			t.Run(fmt.Sprint("threshold ", thr), func(t *testing.T) {
				got := make([]bool, len(want))
				var err error
				func() {
					defer nn.Catch(&err)
					g.UpscaleMasksThreshold(x, p, thr, got)
				}()
				require.NoError(t, err)
				for i, v := range want {
					if got[i] != (v > thr) {
						t.Fatalf("pixel %d: mask %v, logit %g vs threshold %g", i, got[i], v, thr)
					}
				}
			})
		}
	})
}

// TestSimulatorGEMM: under the GPU simulator every GEMM runs on the
// reference kernel (a backend that tried cuBLASLt there would fail at its
// creation, so this documents the switch rather than guarding it).
func TestSimulatorGEMM(t *testing.T) {
	g := gpuOrSkip(t, "fp32")
	if !cudatest.Simulated() {
		t.Skipf("a real GPU (%s): GEMM %s", g.Name(), g.GEMM())
	}
	require.Equal(t, GEMMReference, g.GEMM(), "make test-sim sets SAMGO_GEMM=reference")
	require.Nil(t, g.lt)
}
