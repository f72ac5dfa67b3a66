//go:build cuda

package gpu

import (
	"fmt"
	"math"
	"math/rand/v2"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/samgo/samgo/cuda/cudatest"
	"github.com/samgo/samgo/sam/nn"
	"github.com/samgo/samgo/sam/nn/cpu"
)

// Every op is run on the CPU reference backend and on the GPU in both
// precisions, from the same host inputs (rounded to bfloat16 for the CPU
// when the GPU runs bf16, so both start from the same values), and the
// results compared:
//
//   - fp32: max |gpu − cpu| ≤ tol·scale elementwise with
//     scale = max(1, max |cpu|); tol is 1e-5 unless a test says otherwise
//     (both sides are fp32 with different summation orders and
//     transcendental functions: a few ulp of the largest value).
//   - bf16: the normalised mean squared error (ggml's test-backend-ops
//     NMSE) Σ(gpu − cpu)² / Σ cpu² ≤ 1e-4. Rounding an output to bfloat16
//     (8 significant bits, relative error ≤ 2⁻⁹) gives about 1e-6, and
//     intermediates stored as bf16 inside an op a few 1e-6; 1e-4 leaves a factor of ~20 for accumulation order and
//     chains of ops while still catching a wrong index, a missing bias or
//     a wrong scale (each gives NMSE ≳ 1e-2).

const (
	tolF32  = 1e-5
	tolNMSE = 1e-4
)

// gpuOrSkip returns a backend on cuda:0 in the given precision, or skips
// the test on machines without a usable GPU (fails it with
// SAMGO_REQUIRE_GPU=1).
func gpuOrSkip(t testing.TB, prec string) *Backend {
	t.Helper()
	cudatest.SkipWithoutDevice(t)
	b, err := New(0, nn.Options{Precision: prec})
	require.NoError(t, err)
	t.Cleanup(func() { require.NoError(t, b.Close()) })
	return b
}

// fullSize marks a case at SAM's real sizes: it runs on GPUs and is
// skipped under the GPU simulator (minutes to hours there), where a
// simulation-sized case of the same table takes the same code paths.
func fullSize(t *testing.T, full bool) {
	t.Helper()
	if full {
		cudatest.SkipOnSimulator(t, "SAM-sized case; the simulation-sized cases beside it take the same code paths")
	}
}

// forPrecisions runs f as a subtest per precision.
func forPrecisions(t *testing.T, f func(t *testing.T, g *Backend)) {
	t.Helper()
	for _, prec := range []string{"fp32", "bf16"} {
		t.Run(prec, func(t *testing.T) { f(t, gpuOrSkip(t, prec)) })
	}
}

func newRNG(seed uint64) *rand.Rand { return rand.New(rand.NewPCG(seed, 0x6a11)) }

// host is an input: data and shape.
type host struct {
	d []float32
	s []int
}

// rnd returns values uniform in [-1, 1).
func rnd(rng *rand.Rand, shape ...int) host {
	d := make([]float32, nn.Numel(shape))
	for i := range d {
		d[i] = 2*rng.Float32() - 1
	}
	return host{d, shape}
}

// scaled returns values uniform in [off − s, off + s).
func scaled(rng *rand.Rand, off, s float32, shape ...int) host {
	h := rnd(rng, shape...)
	for i := range h.d {
		h.d[i] = off + s*h.d[i]
	}
	return h
}

// opFunc runs an op on a backend from uploaded inputs.
type opFunc func(b nn.Backend, in []nn.Tensor) []nn.Tensor

// checkOp runs f on the CPU and on g from the same inputs and compares
// every result (shapes exactly, values as described above; tol overrides
// tolF32 in fp32 when > 0).
func checkOp(t *testing.T, g *Backend, tol float64, f opFunc, ins ...host) {
	t.Helper()
	c := cpu.New()
	upload := func(b nn.Backend, round bool) []nn.Tensor {
		out := make([]nn.Tensor, len(ins))
		for i, h := range ins {
			d := h.d
			if round {
				d = roundedBF16(d)
			}
			out[i] = b.Upload(d, h.s...)
		}
		return out
	}
	// In bf16 the CPU starts from the inputs as the GPU stores them, so
	// that the comparison measures the op, not the rounding of its inputs
	// (which large logits amplify far beyond any kernel error).
	cin, gin := upload(c, g.prec == "bf16"), upload(g, false)
	want := f(c, cin)
	got := runGPU(t, func() []nn.Tensor { return f(g, gin) })
	require.Len(t, got, len(want))
	for i := range want {
		require.Equal(t, want[i].Shape(), got[i].Shape(), "result %d shape", i)
		compareTo(t, g.prec, fmt.Sprintf("result %d", i), c.Download(want[i]), g.Download(got[i]), tol)
	}
	c.Release(append(cin, want...)...)
	g.Release(append(gin, got...)...)
}

// roundedBF16 returns d rounded to bfloat16 (nearest even), as Upload of a
// bf16 backend stores it.
func roundedBF16(d []float32) []float32 {
	out := make([]float32, len(d))
	for i, v := range d {
		b := math.Float32bits(v)
		b += 0x7fff + (b>>16)&1
		out[i] = math.Float32frombits(b &^ 0xffff)
	}
	return out
}

// runGPU runs f, failing the test with the op's error if it panics.
func runGPU(t *testing.T, f func() []nn.Tensor) (out []nn.Tensor) {
	t.Helper()
	var err error
	func() {
		defer nn.Catch(&err)
		out = f()
	}()
	require.NoError(t, err)
	return out
}

// compareTo checks got against the CPU result want in precision prec.
func compareTo(t testing.TB, prec, name string, want, got []float32, tol float64) {
	t.Helper()
	require.Len(t, got, len(want), name)
	if len(want) == 0 {
		return
	}
	if prec == "bf16" {
		nmse := nmseOf(want, got)
		require.LessOrEqual(t, nmse, tolNMSE, "%s: NMSE %.3g", name, nmse)
		if testing.Verbose() {
			t.Logf("%s: NMSE %.2g", name, nmse)
		}
		return
	}
	if tol <= 0 {
		tol = tolF32
	}
	scale := 1.0
	for _, w := range want {
		scale = max(scale, math.Abs(float64(w)))
	}
	worst, at := 0.0, 0
	for i := range want {
		d := math.Abs(float64(got[i]) - float64(want[i]))
		if math.IsNaN(d) {
			worst, at = math.Inf(1), i
			break
		}
		if d > worst {
			worst, at = d, i
		}
	}
	require.LessOrEqual(t, worst, tol*scale, "%s: max |Δ| = %.3g at %d (gpu %g, cpu %g), allowed %.3g (scale %.3g)",
		name, worst, at, got[at], want[at], tol*scale, scale)
	if testing.Verbose() {
		t.Logf("%s: max |Δ|/scale = %.2g", name, worst/scale)
	}
}

// nmseOf is Σ(got − want)² / Σ want² (+Inf on NaN).
func nmseOf(want, got []float32) float64 {
	var num, den float64
	for i := range want {
		d := float64(got[i]) - float64(want[i])
		num += d * d
		den += float64(want[i]) * float64(want[i])
	}
	if math.IsNaN(num) {
		return math.Inf(1)
	}
	if den == 0 {
		if num == 0 {
			return 0
		}
		return math.Inf(1)
	}
	return num / den
}

// foreign is a tensor of some other backend.
type foreign struct{ shape []int }

func (f foreign) Shape() []int { return f.shape }
