package cpu

import (
	"fmt"
	"math"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/samgo/samgo/sam/nn"
	"github.com/samgo/samgo/sam/nn/nntest"
)

func TestWindowPartition(t *testing.T) {
	forBackends(t, func(t *testing.T, b *Backend) {
		rng := newRNG(10)
		for _, tc := range []struct{ B, H, W, C, win int }{
			{1, 16, 16, 3, 7}, // small config: 16 → 21
			{2, 8, 8, 4, 3},   // tiny config: 8 → 9
			{1, 14, 14, 2, 7}, // no padding
			{2, 5, 11, 3, 4},  // non-square, both padded
			{1, 9, 4, 5, 4},   // non-square, rows padded
			{3, 1, 1, 2, 1},
			{1, 3, 2, 2, 5}, // window larger than the map
		} {
			t.Run(fmt.Sprintf("%+v", tc), func(t *testing.T) {
				x, xd := randTensor(b, rng, tc.B, tc.H, tc.W, tc.C)
				win := tc.win
				nh, nw := (tc.H+win-1)/win, (tc.W+win-1)/win
				want := make([]float64, tc.B*nh*nw*win*win*tc.C)
				for bi := range tc.B {
					for i := range nh {
						for j := range nw {
							for p := range win {
								for q := range win {
									y, xx := i*win+p, j*win+q
									for c := range tc.C {
										v := 0.0
										if y < tc.H && xx < tc.W {
											v = float64(xd[((bi*tc.H+y)*tc.W+xx)*tc.C+c])
										}
										want[((((bi*nh+i)*nw+j)*win+p)*win+q)*tc.C+c] = v
									}
								}
							}
						}
					}
				}
				parts := b.WindowPartition(x, win)
				requireClose(t, want, download(t, b, parts, tc.B*nh*nw, win*win, tc.C), 0)
				back := b.WindowUnpartition(parts, win, tc.H, tc.W)
				require.Equal(t, xd, download(t, b, back, tc.B, tc.H, tc.W, tc.C), "round trip")
			})
		}
	})
}

func TestAdd(t *testing.T) {
	forBackends(t, func(t *testing.T, b *Backend) {
		rng := newRNG(11)
		for _, tc := range []struct{ a, b []int }{
			{[]int{2, 3, 4}, []int{2, 3, 4}},
			{[]int{2, 3, 4}, []int{3, 4}},
			{[]int{2, 3, 4}, []int{1, 3, 4}},
			{[]int{2, 3, 4}, []int{1, 1, 4}},
			{[]int{2, 3, 4}, []int{4}},
			{[]int{2, 64, 64, 96}, []int{1, 64, 64, 96}}, // pos_embed
			{[]int{3, 4096, 2}, []int{4096, 2}},
			{[]int{5, 7}, []int{1}},
			{[]int{4, 1, 3}, []int{1, 3}},
		} {
			t.Run(fmt.Sprint(tc.a, tc.b), func(t *testing.T) {
				a, ad := randTensor(b, rng, tc.a...)
				bm, bd := randTensor(b, rng, tc.b...)
				want := make([]float64, len(ad))
				for i := range ad {
					want[i] = float64(ad[i] + bd[i%len(bd)])
				}
				requireClose(t, want, download(t, b, b.Add(a, bm), tc.a...), 0)
			})
		}
		for _, bad := range [][]int{{2, 4}, {3, 1}, {2, 2, 3, 4}, {3, 3, 4}, {2, 1, 4}, {3, 5}} {
			a := b.Upload(make([]float32, 24), 2, 3, 4)
			nntest.RequireFails(t, nn.ErrShape, func() { b.Add(a, b.Upload(make([]float32, nn.Numel(bad)), bad...)) }, bad)
		}
	})
}

func TestActivation(t *testing.T) {
	forBackends(t, func(t *testing.T, b *Backend) {
		xd := randData(newRNG(12), 100_003)
		for i := range xd {
			xd[i] *= 8
		}
		x := b.Upload(xd, len(xd))
		for _, act := range []nn.Act{nn.ActNone, nn.ActReLU, nn.ActGELU} {
			want := make([]float64, len(xd))
			for i, v := range xd {
				want[i] = refAct(float64(v), act)
			}
			requireClose(t, want, download(t, b, b.Activation(x, act), len(xd)), 1e-7, act)
		}
		nntest.RequireFails(t, nn.ErrShape, func() { b.Activation(x, nn.Act(-1)) })
		nan := b.Download(b.Activation(b.Upload([]float32{float32(math.NaN())}, 1), nn.ActReLU))
		require.True(t, math.IsNaN(float64(nan[0])), "relu(NaN)")
	})
}

func TestConcatSlice(t *testing.T) {
	forBackends(t, func(t *testing.T, b *Backend) {
		rng := newRNG(13)
		// Concat along each axis of (2, 3, 4)-like shapes, then slice the
		// parts back out.
		for axis := range 3 {
			shapes := [][]int{{2, 3, 4}, {2, 3, 4}, {2, 3, 4}}
			for i := range shapes {
				shapes[i][axis] = i + 1 // 1, 2, 3 along axis
			}
			var ts []nn.Tensor
			var ds [][]float32
			for _, s := range shapes {
				tt, d := randTensor(b, rng, s...)
				ts, ds = append(ts, tt), append(ds, d)
			}
			out := b.Concat(axis, ts...)
			want := []int{2, 3, 4}
			want[axis] = 6
			got := download(t, b, out, want...)
			// Element check by index arithmetic.
			idx := func(s []int, i, j, k int) int { return (i*s[1]+j)*s[2] + k }
			for i := range want[0] {
				for j := range want[1] {
					for k := range want[2] {
						pos := []int{i, j, k}
						part, off := 0, pos[axis]
						for off >= shapes[part][axis] {
							off -= shapes[part][axis]
							part++
						}
						pos[axis] = off
						require.Equal(t, ds[part][idx(shapes[part], pos[0], pos[1], pos[2])], got[idx(want, i, j, k)])
					}
				}
			}
			start := 0
			for p, s := range shapes {
				sl := b.Slice(out, axis, start, start+s[axis])
				require.Equal(t, ds[p], download(t, b, sl, s...), "slice %d axis %d", p, axis)
				start += s[axis]
			}
		}
		// Empty slice, and concat of a single tensor.
		x, xd := randTensor(b, rng, 3, 5)
		require.Equal(t, []int{3, 0}, b.Slice(x, 1, 2, 2).Shape())
		require.Equal(t, xd, b.Download(b.Concat(0, x)))
		// Large enough for the parallel path.
		big, bd := randTensor(b, rng, 4, 50_000)
		require.Equal(t, bd[50_000+10:50_000+20], b.Download(b.Slice(b.Slice(big, 0, 1, 2), 1, 10, 20)))
	})
}

func TestRepeatTranspose(t *testing.T) {
	forBackends(t, func(t *testing.T, b *Backend) {
		rng := newRNG(14)
		x, xd := randTensor(b, rng, 1, 4096, 3)
		r := download(t, b, b.Repeat(x, 5), 5, 4096, 3)
		for i := range 5 {
			require.Equal(t, xd, r[i*len(xd):(i+1)*len(xd)])
		}
		require.Equal(t, []int{0, 2}, b.Repeat(b.Upload([]float32{1, 2}, 1, 2), 0).Shape())

		for _, s := range [][]int{{1, 1}, {3, 5}, {2, 33, 70}, {2, 3, 64, 31}, {1, 0, 4}} {
			x, xd := randTensor(b, rng, s...)
			r := len(s)
			M, N := s[r-2], s[r-1]
			ts := append([]int(nil), s...)
			ts[r-2], ts[r-1] = N, M
			got := download(t, b, b.Transpose(x), ts...)
			for bi := 0; bi < len(xd)/max(M*N, 1); bi++ {
				for i := range M {
					for j := range N {
						require.Equal(t, xd[bi*M*N+i*N+j], got[bi*M*N+j*M+i])
					}
				}
			}
		}
	})
}

func TestLayoutValidate(t *testing.T) {
	b := New()
	up := func(shape ...int) nn.Tensor { return b.Upload(make([]float32, nn.Numel(shape)), shape...) }
	for name, f := range map[string]func(){
		"partition rank":       func() { b.WindowPartition(up(4, 4, 3), 2) },
		"partition win 0":      func() { b.WindowPartition(up(1, 4, 4, 3), 0) },
		"unpartition rank":     func() { b.WindowUnpartition(up(4, 4, 3, 1), 2, 4, 4) },
		"unpartition tokens":   func() { b.WindowUnpartition(up(4, 5, 3), 2, 4, 4) },
		"unpartition count":    func() { b.WindowUnpartition(up(3, 4, 3), 2, 4, 4) },
		"unpartition map":      func() { b.WindowUnpartition(up(4, 4, 3), 2, 0, 4) },
		"concat none":          func() { b.Concat(0) },
		"concat axis":          func() { b.Concat(2, up(2, 3), up(2, 3)) },
		"concat negative axis": func() { b.Concat(-1, up(2, 3), up(2, 3)) },
		"concat rank":          func() { b.Concat(0, up(2, 3), up(2, 3, 1)) },
		"concat other dim":     func() { b.Concat(0, up(2, 3), up(2, 4)) },
		"slice axis":           func() { b.Slice(up(2, 3), 2, 0, 1) },
		"slice range":          func() { b.Slice(up(2, 3), 1, 2, 4) },
		"slice reversed":       func() { b.Slice(up(2, 3), 1, 2, 1) },
		"slice negative":       func() { b.Slice(up(2, 3), 1, -1, 1) },
		"repeat lead":          func() { b.Repeat(up(2, 3), 2) },
		"repeat scalar":        func() { b.Repeat(up(), 2) },
		"repeat n":             func() { b.Repeat(up(1, 3), -1) },
		"transpose rank":       func() { b.Transpose(up(3)) },
		"reshape count":        func() { b.Reshape(up(2, 3), 5) },
		"reshape negative":     func() { b.Reshape(up(2, 3), -2, -3) },
		"upload count":         func() { b.Upload(make([]float32, 5), 2, 3) },
		"upload negative":      func() { b.Upload(nil, -1) },
		"upload weight count":  func() { b.UploadWeight(make([]float32, 7), 2, 3) },
		"activation act":       func() { b.Activation(up(3), nn.Act(7)) },
		"add rank":             func() { b.Add(up(3), up(2, 3)) },
	} {
		nntest.RequireFails(t, nn.ErrShape, f, name)
	}
	for name, f := range map[string]func(){
		"partition nil":   func() { b.WindowPartition(nil, 2) },
		"concat foreign":  func() { b.Concat(0, up(2, 3), foreign{[]int{2, 3}}) },
		"download nil":    func() { b.Download(nil) },
		"reshape foreign": func() { b.Reshape(foreign{[]int{2}}, 2) },
		"add nil":         func() { b.Add(up(2), nil) },
	} {
		nntest.RequireFails(t, ErrTensor, f, name)
	}
}
