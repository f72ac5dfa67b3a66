package cpu

import (
	"fmt"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/samgo/samgo/sam/nn"
	"github.com/samgo/samgo/sam/nn/cpu/sgemm"
	"github.com/samgo/samgo/sam/nn/nntest"
)

// refLinear: out[m, n] = act(Σ_k x[m, k]·w[n, k] + b[n]).
func refLinear(x []float32, M, K int, w []float32, N int, b []float32, act nn.Act) []float64 {
	out := make([]float64, M*N)
	for m := range M {
		for n := range N {
			s := 0.0
			for k := range K {
				s += float64(x[m*K+k]) * float64(w[n*K+k])
			}
			if b != nil {
				s += float64(b[n])
			}
			out[m*N+n] = refAct(s, act)
		}
	}
	return out
}

func TestLinear(t *testing.T) {
	forBackends(t, func(t *testing.T, b *Backend) {
		rng := newRNG(1)
		for _, tc := range []struct {
			lead    []int
			K, N    int
			bias    bool
			act     nn.Act
			comment string
		}{
			{[]int{1}, 1, 1, true, nn.ActNone, "scalar product"},
			{[]int{7}, 32, 96, true, nn.ActReLU, "decoder-sized"},
			{[]int{2, 5, 3}, 17, 9, false, nn.ActGELU, "leading dims, no bias"},
			{[]int{1000}, 64, 48, true, nn.ActGELU, "many rows: parallel row blocks"},
			{[]int{2, 13, 11}, 96, 384, true, nn.ActGELU, "MLP-like, 286 rows"},
			{[]int{300}, 3, 5, true, nn.ActNone, "tiny K and N"},
			{[]int{0, 4}, 8, 3, true, nn.ActNone, "no rows"},
		} {
			t.Run(tc.comment, func(t *testing.T) {
				M := nn.Numel(tc.lead)
				x, xd := randTensor(b, rng, append(append([]int(nil), tc.lead...), tc.K)...)
				w, wd := randTensor(b, rng, tc.N, tc.K)
				var bias nn.Tensor
				var bd []float32
				if tc.bias {
					bias, bd = randTensor(b, rng, tc.N)
				}
				out := b.Linear(x, w, bias, tc.act)
				got := download(t, b, out, append(append([]int(nil), tc.lead...), tc.N)...)
				requireClose(t, refLinear(xd, M, tc.K, wd, tc.N, bd, tc.act), got, 1e-5)
			})
		}
	})
}

func TestMatMulT(t *testing.T) {
	forBackends(t, func(t *testing.T, b *Backend) {
		rng := newRNG(2)
		for _, s := range [][4]int{{1, 1, 1, 1}, {3, 4, 50, 8}, {2, 200, 33, 17}, {5, 9, 7, 64}, {1, 4, 4096, 32}} {
			B, M, N, K := s[0], s[1], s[2], s[3]
			t.Run(fmt.Sprint(s), func(t *testing.T) {
				a, ad := randTensor(b, rng, B, M, K)
				bm, bd := randTensor(b, rng, B, N, K)
				got := download(t, b, b.MatMulT(a, bm), B, M, N)
				want := make([]float64, 0, B*M*N)
				for i := range B {
					want = append(want, refLinear(ad[i*M*K:], M, K, bd[i*N*K:], N, nil, nn.ActNone)...)
				}
				requireClose(t, want, got, 1e-5)
			})
		}
	})
}

// refConv2D is the convolution by its definition, torch weight layout.
func refConv2D(x []float32, B, H, W, Cin int, w []float32, Cout, k int, bias []float32, stride, pad int) ([]float64, []int) {
	OH, OW := (H+2*pad-k)/stride+1, (W+2*pad-k)/stride+1
	out := make([]float64, B*OH*OW*Cout)
	for b := range B {
		for oy := range OH {
			for ox := range OW {
				for o := range Cout {
					s := 0.0
					if bias != nil {
						s = float64(bias[o])
					}
					for c := range Cin {
						for p := range k {
							for q := range k {
								iy, ix := oy*stride+p-pad, ox*stride+q-pad
								if iy < 0 || iy >= H || ix < 0 || ix >= W {
									continue
								}
								s += float64(x[((b*H+iy)*W+ix)*Cin+c]) * float64(w[((o*Cin+c)*k+p)*k+q])
							}
						}
					}
					out[((b*OH+oy)*OW+ox)*Cout+o] = s
				}
			}
		}
	}
	return out, []int{B, OH, OW, Cout}
}

func TestConv2D(t *testing.T) {
	forBackends(t, func(t *testing.T, b *Backend) {
		rng := newRNG(3)
		for _, tc := range []struct {
			B, H, W, Cin, Cout, k, stride, pad int
			bias                               bool
		}{
			{1, 5, 7, 3, 4, 1, 1, 0, true},      // 1×1: a Linear
			{2, 6, 5, 4, 3, 1, 2, 0, true},      // 1×1 stride 2
			{2, 8, 6, 1, 5, 2, 2, 0, true},      // mask downsampler's first conv (Cin 1)
			{3, 9, 7, 6, 8, 2, 2, 0, false},     // odd map: the last row/col dropped
			{2, 7, 9, 5, 6, 3, 1, 1, false},     // the neck's 3×3 pad 1
			{1, 6, 6, 3, 2, 3, 2, 1, true},      // 3×3 stride 2 pad 1
			{2, 32, 48, 3, 10, 16, 16, 0, true}, // patch embedding
			{1, 35, 33, 2, 3, 16, 16, 0, true},  // patch embedding, ragged edge
			{2, 20, 20, 16, 40, 3, 1, 1, true},  // enough rows for parallel blocks
			{1, 2, 2, 3, 2, 3, 1, 1, true},      // kernel larger than the map, padded
		} {
			t.Run(fmt.Sprintf("%+v", tc), func(t *testing.T) {
				x, xd := randTensor(b, rng, tc.B, tc.H, tc.W, tc.Cin)
				w, wd := randTensor(b, rng, tc.Cout, tc.Cin, tc.k, tc.k)
				var bias nn.Tensor
				var bd []float32
				if tc.bias {
					bias, bd = randTensor(b, rng, tc.Cout)
				}
				want, shape := refConv2D(xd, tc.B, tc.H, tc.W, tc.Cin, wd, tc.Cout, tc.k, bd, tc.stride, tc.pad)
				got := download(t, b, b.Conv2D(x, w, bias, tc.stride, tc.pad), shape...)
				requireClose(t, want, got, 1e-5)
			})
		}
	})
}

func TestConvTranspose2D(t *testing.T) {
	forBackends(t, func(t *testing.T, b *Backend) {
		rng := newRNG(4)
		for _, tc := range []struct {
			B, H, W, Cin, Cout, k int
			bias                  bool
		}{
			{1, 1, 1, 1, 1, 1, true},
			{2, 3, 5, 8, 4, 2, true},    // SAM's output upscaling
			{1, 16, 16, 32, 8, 2, true}, // one parallel product
			{2, 16, 16, 8, 4, 2, false}, // parallel row blocks
			{3, 2, 3, 5, 7, 3, false},
		} {
			t.Run(fmt.Sprintf("%+v", tc), func(t *testing.T) {
				x, xd := randTensor(b, rng, tc.B, tc.H, tc.W, tc.Cin)
				w, wd := randTensor(b, rng, tc.Cin, tc.Cout, tc.k, tc.k)
				var bias nn.Tensor
				var bd []float32
				if tc.bias {
					bias, bd = randTensor(b, rng, tc.Cout)
				}
				k := tc.k
				OH, OW := tc.H*k, tc.W*k
				want := make([]float64, tc.B*OH*OW*tc.Cout)
				for bi := range tc.B {
					for y := range OH {
						for xx := range OW {
							i, p, j, q := y/k, y%k, xx/k, xx%k
							for o := range tc.Cout {
								s := 0.0
								if bd != nil {
									s = float64(bd[o])
								}
								for c := range tc.Cin {
									s += float64(xd[((bi*tc.H+i)*tc.W+j)*tc.Cin+c]) * float64(wd[((c*tc.Cout+o)*k+p)*k+q])
								}
								want[((bi*OH+y)*OW+xx)*tc.Cout+o] = s
							}
						}
					}
				}
				got := download(t, b, b.ConvTranspose2D(x, w, bias, k), tc.B, OH, OW, tc.Cout)
				requireClose(t, want, got, 1e-5)
			})
		}
	})
}

func TestGemmOpsValidate(t *testing.T) {
	b := New()
	up := func(shape ...int) nn.Tensor { return b.Upload(make([]float32, nn.Numel(shape)), shape...) }
	x, w, bias := up(4, 8), up(6, 8), up(6)
	require.Equal(t, []int{4, 6}, b.Linear(x, w, bias, nn.ActGELU).Shape())
	for name, f := range map[string]func(){
		"Linear K mismatch":        func() { b.Linear(x, up(6, 7), bias, nn.ActNone) },
		"Linear w rank":            func() { b.Linear(x, up(6, 8, 1), bias, nn.ActNone) },
		"Linear bias":              func() { b.Linear(x, w, up(5), nn.ActNone) },
		"Linear scalar x":          func() { b.Linear(up(), w, bias, nn.ActNone) },
		"Linear K = 0":             func() { b.Linear(up(3, 0), up(2, 0), nil, nn.ActNone) },
		"Linear act":               func() { b.Linear(x, w, bias, nn.Act(42)) },
		"MatMulT rank":             func() { b.MatMulT(up(4, 8), up(4, 8)) },
		"MatMulT batch":            func() { b.MatMulT(up(2, 4, 8), up(3, 4, 8)) },
		"MatMulT K":                func() { b.MatMulT(up(2, 4, 8), up(2, 4, 7)) },
		"Conv2D x rank":            func() { b.Conv2D(up(4, 4, 3), up(2, 3, 1, 1), nil, 1, 0) },
		"Conv2D Cin":               func() { b.Conv2D(up(1, 4, 4, 3), up(2, 4, 1, 1), nil, 1, 0) },
		"Conv2D non-square kernel": func() { b.Conv2D(up(1, 4, 4, 3), up(2, 3, 1, 2), nil, 1, 0) },
		"Conv2D stride 0":          func() { b.Conv2D(up(1, 4, 4, 3), up(2, 3, 1, 1), nil, 0, 0) },
		"Conv2D pad < 0":           func() { b.Conv2D(up(1, 4, 4, 3), up(2, 3, 1, 1), nil, 1, -1) },
		"Conv2D kernel too big":    func() { b.Conv2D(up(1, 4, 4, 3), up(2, 3, 5, 5), nil, 1, 0) },
		"Conv2D bias":              func() { b.Conv2D(up(1, 4, 4, 3), up(2, 3, 1, 1), up(3), 1, 0) },
		"ConvT Cin":                func() { b.ConvTranspose2D(up(1, 4, 4, 3), up(4, 2, 2, 2), nil, 2) },
		"ConvT k":                  func() { b.ConvTranspose2D(up(1, 4, 4, 3), up(3, 2, 2, 2), nil, 3) },
		"ConvT k = 0":              func() { b.ConvTranspose2D(up(1, 4, 4, 3), up(3, 2, 0, 0), nil, 0) },
		"ConvT bias":               func() { b.ConvTranspose2D(up(1, 4, 4, 3), up(3, 2, 2, 2), up(3), 2) },
	} {
		nntest.RequireFails(t, nn.ErrShape, f, name)
	}
	for name, f := range map[string]func(){
		"Linear nil x":     func() { b.Linear(nil, w, bias, nn.ActNone) },
		"Linear foreign w": func() { b.Linear(x, foreign{[]int{6, 8}}, bias, nn.ActNone) },
		"Conv2D nil w":     func() { b.Conv2D(up(1, 4, 4, 3), nil, nil, 1, 0) },
		"ConvT foreign b":  func() { b.ConvTranspose2D(up(1, 4, 4, 3), up(3, 2, 2, 2), foreign{[]int{2}}, 2) },
		"MatMulT nil":      func() { b.MatMulT(up(1, 2, 3), nil) },
	} {
		nntest.RequireFails(t, ErrTensor, f, name)
	}
}

// BenchmarkLinear is the ViT-B MLP's first layer at 1024×1024 input:
// 4096 tokens, 768 → 3072, bias and GELU fused.
func BenchmarkLinear(b *testing.B) {
	be := New()
	rng := newRNG(8)
	const M, K, N = 4096, 768, 3072
	x, _ := randTensor(be, rng, 1, 64, 64, K)
	w, _ := randTensor(be, rng, N, K)
	bias, _ := randTensor(be, rng, N)
	for _, act := range []nn.Act{nn.ActNone, nn.ActGELU} {
		b.Run(act.String(), func(b *testing.B) {
			for b.Loop() {
				be.Release(be.Linear(x, w, bias, act))
			}
			b.ReportMetric(2*M*N*K*float64(b.N)/b.Elapsed().Seconds()/1e9, "GFLOP/s")
		})
		// The unfused alternative, for comparison: one parallel product,
		// then a parallel bias+activation pass over the whole output.
		b.Run(act.String()+"_unfused", func(b *testing.B) {
			xd, wd, bd := x.(*Tensor).data, w.(*Tensor).data, bias.(*Tensor).data
			c := make([]float32, M*N)
			for b.Loop() {
				sgemm.Gemm(false, true, M, N, K, 1, xd, K, wd, K, 0, c, N)
				be.parallelFor(M, grain(N*actCost(act)), func(_, lo, hi int) { biasAct(c, N, lo, hi, bd, act) })
			}
			b.ReportMetric(2*M*N*K*float64(b.N)/b.Elapsed().Seconds()/1e9, "GFLOP/s")
		})
	}
}
