package cpu

import (
	"fmt"
	"math"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/samgo/samgo/sam/nn"
	"github.com/samgo/samgo/sam/nn/nntest"
)

// refLayerNorm normalises rows of C in float64.
func refLayerNorm(x []float64, C int, w, b []float32, eps float32) []float64 {
	out := make([]float64, len(x))
	for r := 0; r < len(x)/C; r++ {
		row := x[r*C : (r+1)*C]
		mean := 0.0
		for _, v := range row {
			mean += v
		}
		mean /= float64(C)
		vr := 0.0
		for _, v := range row {
			vr += (v - mean) * (v - mean)
		}
		vr /= float64(C)
		for c, v := range row {
			out[r*C+c] = (v-mean)/math.Sqrt(vr+float64(eps))*float64(w[c]) + float64(b[c])
		}
	}
	return out
}

func TestLayerNorm(t *testing.T) {
	forBackends(t, func(t *testing.T, b *Backend) {
		rng := newRNG(5)
		for _, tc := range []struct {
			shape  []int
			offset float32 // added to every x: variance numerics
			eps    float32
		}{
			{[]int{1}, 0, 1e-6}, // a single channel: output = b
			{[]int{3, 7}, 0, 1e-5},
			{[]int{2, 4, 5, 96}, 0, 1e-6},
			{[]int{1000, 64}, 1000, 1e-6}, // large common offset
			{[]int{10, 768}, -3e4, 1e-6},
			{[]int{5, 33}, 0, 0.5}, // eps that matters
		} {
			t.Run(fmt.Sprintf("%v%+g", tc.shape, tc.offset), func(t *testing.T) {
				C := tc.shape[len(tc.shape)-1]
				xd := randData(rng, nn.Numel(tc.shape))
				for i := range xd {
					xd[i] += tc.offset
				}
				x := b.Upload(xd, tc.shape...)
				w, wd := randTensor(b, rng, C)
				bias, bd := randTensor(b, rng, C)
				want := refLayerNorm(f64(xd), C, wd, bd, tc.eps)
				got := download(t, b, b.LayerNorm(x, w, bias, tc.eps), tc.shape...)
				requireClose(t, want, got, 1e-5)

				// AddLayerNorm with the offset split between x and r.
				rd := randData(rng, len(xd))
				r := b.Upload(rd, tc.shape...)
				sum, norm := b.AddLayerNorm(x, r, w, bias, tc.eps)
				s := make([]float64, len(xd))
				for i := range s {
					s[i] = float64(xd[i] + rd[i]) // the float32 sum is the residual stream
				}
				requireClose(t, s, download(t, b, sum, tc.shape...), 0)
				requireClose(t, refLayerNorm(s, C, wd, bd, tc.eps), download(t, b, norm, tc.shape...), 1e-5)
			})
		}
	})
}

func TestLayerNormValidate(t *testing.T) {
	b := New()
	up := func(shape ...int) nn.Tensor { return b.Upload(make([]float32, nn.Numel(shape)), shape...) }
	x, w := up(4, 8), up(8)
	for name, f := range map[string]func(){
		"w size":        func() { b.LayerNorm(x, up(7), w, 1e-5) },
		"b size":        func() { b.LayerNorm(x, w, up(8, 1), 1e-5) },
		"scalar x":      func() { b.LayerNorm(up(), up(), up(), 1e-5) },
		"no channels":   func() { b.LayerNorm(up(3, 0), up(0), up(0), 1e-5) },
		"AddLN r shape": func() { b.AddLayerNorm(x, up(8, 4), w, w, 1e-5) },
		"AddLN r bcast": func() { b.AddLayerNorm(x, up(1, 8), w, w, 1e-5) },
		"AddLN w size":  func() { b.AddLayerNorm(x, x, up(4), w, 1e-5) },
	} {
		nntest.RequireFails(t, nn.ErrShape, f, name)
	}
	nntest.RequireFails(t, ErrTensor, func() { b.LayerNorm(x, nil, w, 1e-5) }, "nil w")
	nntest.RequireFails(t, ErrTensor, func() { b.AddLayerNorm(x, foreign{[]int{4, 8}}, w, w, 1e-5) }, "foreign r")
	require.NoError(t, nntest.OpError(t, func() { b.LayerNorm(x, w, w, 1e-5) }))
}
