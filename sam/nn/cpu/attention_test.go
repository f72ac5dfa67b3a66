package cpu

import (
	"fmt"
	"math"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/samgo/samgo/sam/nn"
	"github.com/samgo/samgo/sam/nn/nntest"
)

// refAttention is per (batch, head): logits[i, j] = q_i·k_j/√d (+ the
// decomposed rel-pos terms of nn.RelPos, with the unscaled q), softmax over
// j, out_i = Σ_j p[i, j]·v_j; all in float64. It also returns the largest
// |logit|: float32 logits carry an error relative to it, which the softmax
// passes on to the output (a condition number, not an implementation error).
//
// bias, when not nil, adds bias(h, i, j) to the scaled logit (TinyViT's
// offset bias).
func refAttention(q, k, v []float32, B, Nq, Nk, heads, d, dv int, relH, relW []float32, QH, QW int, bias func(h, i, j int) float64) (out []float64, maxLogit float64) {
	out = make([]float64, B*Nq*heads*dv)
	logits := make([]float64, Nk)
	for b := range B {
		for h := range heads {
			qAt := func(n, c int) float64 { return float64(q[(b*Nq+n)*heads*d+h*d+c]) }
			kAt := func(n, c int) float64 { return float64(k[(b*Nk+n)*heads*d+h*d+c]) }
			vAt := func(n, c int) float64 { return float64(v[(b*Nk+n)*heads*dv+h*dv+c]) }
			for i := range Nq {
				mx := math.Inf(-1)
				for j := range Nk {
					s := 0.0
					for c := range d {
						s += qAt(i, c) * kAt(j, c)
					}
					s /= math.Sqrt(float64(d))
					if bias != nil {
						s += bias(h, i, j)
					}
					if relH != nil {
						qh, qw, kh, kw := i/QW, i%QW, j/QW, j%QW
						for c := range d {
							s += qAt(i, c) * float64(relH[(qh-kh+QH-1)*d+c])
							s += qAt(i, c) * float64(relW[(qw-kw+QW-1)*d+c])
						}
					}
					logits[j] = s
					mx = max(mx, s)
					maxLogit = max(maxLogit, math.Abs(s))
				}
				sum := 0.0
				for j := range Nk {
					logits[j] = math.Exp(logits[j] - mx)
					sum += logits[j]
				}
				for c := range dv {
					o := 0.0
					for j := range Nk {
						o += logits[j] / sum * vAt(j, c)
					}
					out[(b*Nq+i)*heads*dv+h*dv+c] = o
				}
			}
		}
	}
	return out, maxLogit
}

type attnCase struct {
	B, Nq, Nk, heads, d, dv int
	QH, QW                  int // rel-pos grid (0: none); Nq = Nk = QH·QW
	scale                   float32
}

func (c attnCase) String() string {
	return fmt.Sprintf("B%d_Nq%d_Nk%d_h%d_d%d_dv%d_rel%dx%d", c.B, c.Nq, c.Nk, c.heads, c.d, c.dv, c.QH, c.QW)
}

var attnCases = []attnCase{
	{B: 1, Nq: 1, Nk: 1, heads: 1, d: 1, dv: 1},
	{B: 2, Nq: 97, Nk: 97, heads: 1, d: 8, dv: 8},
	{B: 1, Nq: 97, Nk: 31, heads: 3, d: 16, dv: 16},
	{B: 3, Nq: 7, Nk: 97, heads: 8, d: 16, dv: 8}, // decoder token→image: dv ≠ d
	{B: 1, Nq: 97, Nk: 5, heads: 2, d: 59, dv: 59},
	{B: 2, Nq: 40, Nk: 41, heads: 4, d: 80, dv: 80},
	{B: 1, Nq: 35, Nk: 35, heads: 2, d: 16, dv: 16, QH: 5, QW: 7}, // rel-pos, QH ≠ QW
	{B: 2, Nq: 99, Nk: 99, heads: 3, d: 8, dv: 8, QH: 11, QW: 9},
	{B: 1, Nq: 49, Nk: 49, heads: 5, d: 59, dv: 59, QH: 7, QW: 7},
	{B: 1, Nq: 30, Nk: 30, heads: 1, d: 80, dv: 80, QH: 1, QW: 30},
	{B: 1, Nq: 64, Nk: 64, heads: 2, d: 16, dv: 16, scale: 30}, // peaked softmax: max subtraction
	{B: 1, Nq: 21, Nk: 21, heads: 2, d: 16, dv: 16, QH: 3, QW: 7, scale: 40},
}

// attnInputs makes q, k, v (and rel tables) for c; scale multiplies q and
// k (large values make the softmax nearly one-hot).
func attnInputs(b *Backend, c attnCase, seed uint64) (q, k, v []float32, relH, relW []float32) {
	rng := newRNG(seed)
	s := c.scale
	if s == 0 {
		s = 1
	}
	q = randData(rng, c.B*c.Nq*c.heads*c.d)
	k = randData(rng, c.B*c.Nk*c.heads*c.d)
	for i := range q {
		q[i] *= s
	}
	for i := range k {
		k[i] *= s
	}
	v = randData(rng, c.B*c.Nk*c.heads*c.dv)
	if c.QH > 0 {
		relH = randData(rng, (2*c.QH-1)*c.d)
		relW = randData(rng, (2*c.QW-1)*c.d)
	}
	return
}

func TestAttention(t *testing.T) {
	forBackends(t, func(t *testing.T, b *Backend) {
		for i, c := range attnCases {
			t.Run(c.String(), func(t *testing.T) {
				q, k, v, relH, relW := attnInputs(b, c, uint64(i))
				var rel *nn.RelPos
				if c.QH > 0 {
					rel = &nn.RelPos{H: b.Upload(relH, 2*c.QH-1, c.d), W: b.Upload(relW, 2*c.QW-1, c.d), QH: c.QH, QW: c.QW}
				}
				out := b.Attention(
					b.Upload(q, c.B, c.Nq, c.heads*c.d),
					b.Upload(k, c.B, c.Nk, c.heads*c.d),
					b.Upload(v, c.B, c.Nk, c.heads*c.dv), c.heads, rel)
				got := download(t, b, out, c.B, c.Nq, c.heads*c.dv)
				want, maxLogit := refAttention(q, k, v, c.B, c.Nq, c.Nk, c.heads, c.d, c.dv, relH, relW, c.QH, c.QW, nil)
				requireClose(t, want, got, 1e-5+2e-7*maxLogit)
			})
		}
	})
}

// TestAttentionQKV checks the packed form against Attention on the split
// tensors: the same numbers exactly (same products, same order).
func TestAttentionQKV(t *testing.T) {
	forBackends(t, func(t *testing.T, b *Backend) {
		for i, c := range attnCases {
			if c.Nq != c.Nk || c.d != c.dv {
				continue
			}
			t.Run(c.String(), func(t *testing.T) {
				q, k, v, relH, relW := attnInputs(b, c, uint64(100+i))
				var rel *nn.RelPos
				if c.QH > 0 {
					rel = &nn.RelPos{H: b.Upload(relH, 2*c.QH-1, c.d), W: b.Upload(relW, 2*c.QW-1, c.d), QH: c.QH, QW: c.QW}
				}
				C := c.heads * c.d
				packed := make([]float32, 0, 3*len(q))
				for n := range c.B * c.Nq {
					packed = append(packed, q[n*C:(n+1)*C]...)
					packed = append(packed, k[n*C:(n+1)*C]...)
					packed = append(packed, v[n*C:(n+1)*C]...)
				}
				got := download(t, b, b.AttentionQKV(b.Upload(packed, c.B, c.Nq, 3*C), c.heads, rel), c.B, c.Nq, C)
				split := b.Download(b.Attention(b.Upload(q, c.B, c.Nq, C), b.Upload(k, c.B, c.Nq, C), b.Upload(v, c.B, c.Nq, C), c.heads, rel))
				require.Equal(t, split, got)
			})
		}
	})
}

func TestAttentionValidate(t *testing.T) {
	b := New()
	up := func(shape ...int) nn.Tensor { return b.Upload(make([]float32, nn.Numel(shape)), shape...) }
	q, k, v := up(2, 6, 8), up(2, 6, 8), up(2, 6, 4)
	rel := func(h, w nn.Tensor, QH, QW int) *nn.RelPos { return &nn.RelPos{H: h, W: w, QH: QH, QW: QW} }
	require.Equal(t, []int{2, 6, 4}, b.Attention(q, k, v, 2, rel(up(3, 4), up(5, 4), 2, 3)).Shape())
	// No keys: torch's softmax of an empty row is empty, times v is 0.
	noKeys := b.Attention(b.Upload(randData(newRNG(1), 48), 2, 6, 4), up(2, 0, 4), up(2, 0, 6), 2, nil)
	require.Equal(t, make([]float32, 2*6*6), download(t, b, noKeys, 2, 6, 6))
	for name, f := range map[string]func(){
		"rank":              func() { b.Attention(up(6, 8), k, v, 2, nil) },
		"heads 0":           func() { b.Attention(q, k, v, 0, nil) },
		"heads not divisor": func() { b.Attention(q, k, v, 3, nil) },
		"k channels":        func() { b.Attention(q, up(2, 6, 6), v, 2, nil) },
		"v tokens":          func() { b.Attention(q, k, up(2, 5, 4), 2, nil) },
		"batch":             func() { b.Attention(q, up(1, 6, 8), up(1, 6, 4), 2, nil) },
		"rel grid":          func() { b.Attention(q, k, v, 2, rel(up(3, 4), up(3, 4), 2, 2)) },
		"rel H rows":        func() { b.Attention(q, k, v, 2, rel(up(5, 4), up(5, 4), 2, 3)) },
		"rel W dim":         func() { b.Attention(q, k, v, 2, rel(up(3, 4), up(5, 8), 2, 3)) },
		"rel Nq != Nk":      func() { b.Attention(q, up(2, 7, 8), up(2, 7, 4), 2, rel(up(3, 4), up(5, 4), 2, 3)) },
		"qkv channels":      func() { b.AttentionQKV(up(2, 6, 8), 2, nil) },
		"qkv rank":          func() { b.AttentionQKV(up(6, 12), 2, nil) },
		"qkv heads":         func() { b.AttentionQKV(up(2, 6, 12), 0, nil) },
		"qkv rel":           func() { b.AttentionQKV(up(2, 6, 12), 2, rel(up(3, 2), up(5, 2), 3, 3)) },
	} {
		nntest.RequireFails(t, nn.ErrShape, f, name)
	}
	nntest.RequireFails(t, ErrTensor, func() { b.Attention(q, k, nil, 2, nil) }, "nil v")
	nntest.RequireFails(t, ErrTensor, func() { b.Attention(q, k, v, 2, rel(nil, up(5, 4), 2, 3)) }, "nil rel.H")
	nntest.RequireFails(t, ErrTensor, func() { b.AttentionQKV(foreign{[]int{2, 6, 12}}, 2, nil) }, "foreign qkv")
}

// Benchmarks at the ViT-B shapes (1024×1024 input, 64×64 tokens, 12 heads
// of 64): a global block and a windowed block (25 windows of 14×14).
func BenchmarkAttention(b *testing.B) {
	for _, bc := range []struct {
		name      string
		B, QH, QW int
	}{
		{"global_4096tok", 1, 64, 64},
		{"window_25x196tok", 25, 14, 14},
	} {
		b.Run(bc.name, func(b *testing.B) {
			be := New()
			const heads, d = 12, 64
			N := bc.QH * bc.QW
			rng := newRNG(9)
			qkv, _ := randTensor(be, rng, bc.B, N, 3*heads*d)
			relH, _ := randTensor(be, rng, 2*bc.QH-1, d)
			relW, _ := randTensor(be, rng, 2*bc.QW-1, d)
			rel := &nn.RelPos{H: relH, W: relW, QH: bc.QH, QW: bc.QW}
			for b.Loop() {
				be.Release(be.AttentionQKV(qkv, heads, rel))
			}
			flops := 4 * float64(bc.B*heads*N*N*d)
			b.ReportMetric(flops*float64(b.N)/b.Elapsed().Seconds()/1e9, "GFLOP/s")
		})
	}
}

// TestAddRelPosVector checks the AVX-512 rel-pos addition against the Go
// loops bit for bit (same additions in the same order), on SAM's window
// (14×14), global (64×64) and ragged shapes.
func TestAddRelPosVector(t *testing.T) {
	if !haveAVX512 {
		t.Skip("no AVX-512 on this CPU")
	}
	rng := newRNG(7)
	for _, sh := range [][2]int{{14, 14}, {64, 64}, {1, 1}, {3, 17}, {5, 33}, {2, 16}} {
		QH, QW := sh[0], sh[1]
		row := make([]float32, QH*QW)
		ph, pw := make([]float32, QH), make([]float32, QW)
		for _, x := range [][]float32{row, ph, pw} {
			for i := range x {
				x[i] = float32(rng.NormFloat64() * 4)
			}
		}
		want := append([]float32(nil), row...)
		rw := make([]float32, QW)
		for kw := range rw {
			rw[kw] = pw[QW-1-kw]
		}
		wantMax := addRelPosGo(want, QH, QW, ph, rw)
		gotMax := addRelPos(row, QH, QW, ph, pw, make([]float32, QW))
		require.Equal(t, want, row, "%d×%d", QH, QW)
		require.Equal(t, wantMax, gotMax, "%d×%d: maximum", QH, QW)
	}
}
