package cpu

import (
	"fmt"
	"math"
	"math/rand/v2"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/samgo/samgo/sam/nn"
)

// Test helpers: backends in the configurations worth covering, random data,
// tolerant comparison against float64 references, and error capture.

// backends returns the configurations every op is tested in: a single
// thread (everything inline), and three threads (more than this machine's
// cores: chunking, dynamic scheduling and per-worker scratch all run).
// Both poison fresh buffers with NaN, so an element an op forgets to write
// shows up.
func backends() map[string]*Backend {
	out := map[string]*Backend{}
	for _, n := range []int{1, 3} {
		b := New(WithThreads(n))
		b.pool.poison = true
		out[fmt.Sprintf("threads=%d", n)] = b
	}
	return out
}

// forBackends runs f as a subtest per backend configuration.
func forBackends(t *testing.T, f func(t *testing.T, b *Backend)) {
	t.Helper()
	for name, b := range backends() {
		t.Run(name, func(t *testing.T) { f(t, b) })
	}
}

func newRNG(seed uint64) *rand.Rand { return rand.New(rand.NewPCG(seed, 0x5a4d)) }

// randData returns n values uniform in [-1, 1).
func randData(rng *rand.Rand, n int) []float32 {
	d := make([]float32, n)
	for i := range d {
		d[i] = 2*rng.Float32() - 1
	}
	return d
}

// randTensor uploads random data of the given shape and returns it with
// its host copy.
func randTensor(b *Backend, rng *rand.Rand, shape ...int) (nn.Tensor, []float32) {
	d := randData(rng, nn.Numel(shape))
	return b.Upload(d, shape...), d
}

// requireClose checks got against the float64 reference want:
// |got − want| ≤ tol·scale elementwise, scale = max(1, max|want|) (the
// errors of float32 sums grow with the size of their terms, which the
// largest result reflects).
func requireClose(t *testing.T, want []float64, got []float32, tol float64, msgAndArgs ...any) {
	t.Helper()
	require.Len(t, got, len(want), msgAndArgs...)
	scale := 1.0
	for _, w := range want {
		scale = max(scale, math.Abs(w))
	}
	worst, at := 0.0, -1
	for i := range want {
		d := math.Abs(float64(got[i]) - want[i])
		if d > worst || math.IsNaN(d) {
			worst, at = d, i
			if math.IsNaN(d) {
				break
			}
		}
	}
	if at >= 0 && !(worst <= tol*scale) {
		require.Failf(t, "values differ", "max |Δ| = %.3g at %d (got %g, want %g), allowed %.3g (scale %.3g) %s",
			worst, at, got[at], want[at], tol*scale, scale, fmt.Sprint(msgAndArgs...))
	}
	if testing.Verbose() {
		t.Logf("max |Δ|/scale = %.2g (scale %.3g)", worst/scale, scale)
	}
}

// download returns t's data and checks its shape.
func download(t *testing.T, b *Backend, x nn.Tensor, shape ...int) []float32 {
	t.Helper()
	require.Equal(t, shape, x.Shape(), "shape")
	return b.Download(x)
}

// foreign is a tensor of some other backend.
type foreign struct{ shape []int }

func (f foreign) Shape() []int { return f.shape }

func f64(d []float32) []float64 {
	out := make([]float64, len(d))
	for i, v := range d {
		out[i] = float64(v)
	}
	return out
}

func refGELU(x float64) float64 { return 0.5 * x * (1 + math.Erf(x/math.Sqrt2)) }

func refAct(x float64, act nn.Act) float64 {
	switch act {
	case nn.ActGELU:
		return refGELU(x)
	case nn.ActReLU:
		return max(x, 0)
	}
	return x
}
