package sgemm

import (
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
	"testing"

	"github.com/stretchr/testify/require"
)

// gemmCase is one product to check against the float64 reference.
type gemmCase struct {
	transA, transB bool
	m, n, k        int
	alpha, beta    float32
	pad            int // extra columns in lda, ldb, ldc beyond the minimum
}

func (tc gemmCase) String() string {
	t := func(b bool) string {
		if b {
			return "T"
		}
		return "N"
	}
	return fmt.Sprintf("%s%s/m=%d,n=%d,k=%d/alpha=%g,beta=%g/pad=%d", t(tc.transA), t(tc.transB), tc.m, tc.n, tc.k, tc.alpha, tc.beta, tc.pad)
}

// operands builds A, B and C for tc with random values in [-1, 1). The
// padding columns of A and B hold NaN (the product must not read them) and
// those of C hold a sentinel (the product must not write them). When
// beta == 0, C itself is NaN: it must not be read.
type operands struct {
	a, b, c       []float32
	lda, ldb, ldc int
	c0            []float32 // C before the product
}

const cSentinel = 12345.0

func newOperands(rng *rand.Rand, tc gemmCase) operands {
	ar, ac := tc.m, tc.k
	if tc.transA {
		ar, ac = tc.k, tc.m
	}
	br, bc := tc.k, tc.n
	if tc.transB {
		br, bc = tc.n, tc.k
	}
	o := operands{lda: max(1, ac) + tc.pad, ldb: max(1, bc) + tc.pad, ldc: max(1, tc.n) + tc.pad}
	// Each matrix is followed by a guard row of padding, inside the
	// slice's capacity but past its length: the kernels work on raw
	// pointers, and this catches reads (NaN in A, B) and writes (the C
	// sentinel) past the last row.
	fill := func(rows, cols, ld int, pad float32, val func() float32) []float32 {
		x := make([]float32, (rows+1)*ld)
		for i := range x {
			if i%ld < cols && i < rows*ld {
				x[i] = val()
			} else {
				x[i] = pad
			}
		}
		return x[:rows*ld]
	}
	rnd := func() float32 { return rng.Float32()*2 - 1 }
	nan := float32(math.NaN())
	o.a = fill(ar, ac, o.lda, nan, rnd)
	o.b = fill(br, bc, o.ldb, nan, rnd)
	if tc.beta == 0 {
		o.c = fill(tc.m, tc.n, o.ldc, cSentinel, func() float32 { return nan })
	} else {
		o.c = fill(tc.m, tc.n, o.ldc, cSentinel, rnd)
	}
	o.c0 = append([]float32(nil), o.c...)
	return o
}

// check compares o.c after the product with the float64 reference. The
// bound is a float32 accumulation error bound, k-dependent and relative to
// Σ|a||b|: |ĉ - c| ≤ 4·(k+2)·2⁻²⁴·(|alpha|·Σ_p |a_ip||b_pj| + |beta|·|c0|).
func check(t *testing.T, tc gemmCase, o operands) {
	t.Helper()
	// op(A) (m×k) and op(B) (k×n) in float64.
	opA := make([]float64, tc.m*tc.k)
	for i := 0; i < tc.m; i++ {
		for p := 0; p < tc.k; p++ {
			if tc.transA {
				opA[i*tc.k+p] = float64(o.a[p*o.lda+i])
			} else {
				opA[i*tc.k+p] = float64(o.a[i*o.lda+p])
			}
		}
	}
	opB := make([]float64, tc.k*tc.n)
	for p := 0; p < tc.k; p++ {
		for j := 0; j < tc.n; j++ {
			if tc.transB {
				opB[p*tc.n+j] = float64(o.b[j*o.ldb+p])
			} else {
				opB[p*tc.n+j] = float64(o.b[p*o.ldb+j])
			}
		}
	}
	for _, v := range o.c[len(o.c):cap(o.c)] {
		require.Equal(t, float32(cSentinel), v, "%v: guard row after C was written", tc)
	}
	const eps = 1.0 / (1 << 24)
	sum := make([]float64, tc.n)
	mag := make([]float64, tc.n)
	for i := 0; i < tc.m; i++ {
		clear(sum)
		clear(mag)
		for p := 0; p < tc.k; p++ {
			av := opA[i*tc.k+p]
			for j, bv := range opB[p*tc.n : (p+1)*tc.n] {
				sum[j] += av * bv
				mag[j] += math.Abs(av * bv)
			}
		}
		for j := 0; j < o.ldc; j++ {
			idx := i*o.ldc + j
			got := o.c[idx]
			if j >= tc.n {
				require.Equal(t, float32(cSentinel), got, "%v: padding C[%d][%d] was written", tc, i, j)
				continue
			}
			want := float64(tc.alpha) * sum[j]
			bound := math.Abs(float64(tc.alpha)) * mag[j]
			if tc.beta != 0 {
				want += float64(tc.beta) * float64(o.c0[idx])
				bound += math.Abs(float64(tc.beta) * float64(o.c0[idx]))
			}
			tol := 4 * float64(tc.k+2) * eps * bound
			if math.Abs(float64(got)-want) > tol || math.IsNaN(float64(got)) {
				require.Failf(t, "wrong element", "%v: C[%d][%d] = %v, want %v ± %.3g", tc, i, j, got, want, tol)
			}
		}
	}
}

// quick reports whether to run the reduced test set: under -short, and
// under -race, whose 10× slowdown would otherwise take minutes. Tests that
// reduce or skip say so in their doc comment; CI's non-race pass runs them
// in full.
func quick() bool { return testing.Short() || raceEnabled }

type gemmFunc func(transA, transB bool, m, n, k int, alpha float32, a []float32, lda int, b []float32, ldb int, beta float32, c []float32, ldc int)

func runCase(t *testing.T, rng *rand.Rand, f gemmFunc, tc gemmCase) {
	t.Helper()
	o := newOperands(rng, tc)
	f(tc.transA, tc.transB, tc.m, tc.n, tc.k, tc.alpha, o.a, o.lda, o.b, o.ldb, tc.beta, o.c, o.ldc)
	check(t, tc, o)
}

// forEachKernel runs fn with each micro-kernel this CPU supports made the
// active one. The portable kernel also runs with the portable packing, as
// on a CPU without AVX. Not safe for parallel tests.
func forEachKernel(t *testing.T, fn func(t *testing.T)) {
	savedKernel, savedAVX := active, haveAVX
	defer func() { active, haveAVX = savedKernel, savedAVX }()
	for _, kn := range kernels {
		active = kn
		haveAVX = savedAVX && kn != goKernel
		t.Run(kn.name, fn)
	}
}

var (
	transCombos = [][2]bool{{false, false}, {false, true}, {true, false}, {true, true}}
	alphas      = []float32{1, 0.5}
	betas       = []float32{0, 1, -0.25}
)

// TestGemmSmallShapes sweeps every m, n, k in 1..maxDim with each
// transposition, cycling through alpha, beta and padding so that every
// combination occurs many times. These shapes exercise the naive path, the
// short kernels and the ragged-edge tiles.
func TestGemmSmallShapes(t *testing.T) {
	maxDim := 20
	if quick() {
		maxDim = 13
	}
	forEachKernel(t, func(t *testing.T) {
		rng := rand.New(rand.NewPCG(1, 2))
		i := 0
		for _, tr := range transCombos {
			for m := 1; m <= maxDim; m++ {
				for n := 1; n <= maxDim; n++ {
					for k := 1; k <= maxDim; k++ {
						i++
						tc := gemmCase{
							transA: tr[0], transB: tr[1], m: m, n: n, k: k,
							alpha: alphas[i%len(alphas)],
							beta:  betas[(i/2)%len(betas)],
							pad:   (i / 6) % 3,
						}
						runCase(t, rng, GemmSerial, tc)
					}
				}
			}
		}
	})
}

// TestGemmOddShapes covers sizes around the block boundaries (kernel
// tiles, kc) with every transposition, alpha and beta.
//
// Under -race (10× slower; the CPU suite of make test) and -short it
// drops the shapes not marked quick and keeps the tile edges plus one
// shape past kc on every kernel (k = 401: blocks of 384 + 17 and
// 256 + 145, so the first k block applies beta and the second
// accumulates). CI's non-race pass (.ci/run runs it without -race or
// -short) runs every shape.
func TestGemmOddShapes(t *testing.T) {
	type shape struct {
		m, n, k int
		quick   bool // kept under -short and -race
	}
	shapes := []shape{
		{31, 33, 64, true}, {33, 31, 65, true}, {64, 64, 64, true}, {65, 97, 33, true},
		{97, 65, 255, true}, {7, 256, 256, true}, {29, 35, 401, true},
		{13, 255, 257, false}, {255, 17, 31, false}, {257, 33, 1025, false},
		{25, 1025, 9, false}, {100, 100, 400, false},
	}
	if quick() {
		var kept []shape
		for _, s := range shapes {
			if s.quick {
				kept = append(kept, s)
			}
		}
		shapes = kept
	}
	maxKC := 0
	for _, kn := range kernels {
		maxKC = max(maxKC, kn.kc)
	}
	require.True(t, slices.ContainsFunc(shapes, func(s shape) bool { return s.k > maxKC }),
		"no shape with k > kc = %d", maxKC)
	forEachKernel(t, func(t *testing.T) {
		rng := rand.New(rand.NewPCG(3, 4))
		for _, s := range shapes {
			for _, tr := range transCombos {
				for _, alpha := range alphas {
					for bi, beta := range betas {
						tc := gemmCase{transA: tr[0], transB: tr[1], m: s.m, n: s.n, k: s.k, alpha: alpha, beta: beta, pad: bi * 3}
						runCase(t, rng, GemmSerial, tc)
					}
				}
			}
		}
	})
}

// TestGemmLargeShapes runs products big enough for several cache blocks in
// every dimension (m > mc, k > kc, n > nc) through the parallel Gemm.
//
// It skips entirely under -race (minutes with the race detector) and
// -short. CI's non-race pass (.ci/run runs it without -race or -short)
// runs it in full.
func TestGemmLargeShapes(t *testing.T) {
	if quick() {
		t.Skip("large shapes skipped under -short and -race; CI's non-race pass runs them")
	}
	shapes := []gemmCase{
		{m: 2500, n: 97, k: 40, alpha: 1, beta: 0, pad: 1},
		{transB: true, m: 40, n: 1100, k: 800, alpha: 0.5, beta: 1, pad: 3},
		{transA: true, m: 130, n: 530, k: 1025, alpha: 1, beta: -0.25},
		{transA: true, transB: true, m: 301, n: 129, k: 770, alpha: 1, beta: 0, pad: 2},
	}
	rng := rand.New(rand.NewPCG(5, 6))
	forEachKernel(t, func(t *testing.T) {
		for _, tc := range shapes {
			runCase(t, rng, Gemm, tc)
		}
	})
}

// TestGemmParallelMatchesSerial checks that splitting the product over
// goroutines changes nothing: stripes are aligned to the kernel tile and
// the k blocking is the same, so the results must be bit-identical. It
// calls the splitter directly so that small shapes (quick under -race)
// still split.
func TestGemmParallelMatchesSerial(t *testing.T) {
	shapes := []gemmCase{
		{m: 400, n: 70, k: 100, alpha: 1, beta: 0},                 // split along m
		{transB: true, m: 50, n: 1500, k: 64, alpha: 0.5, beta: 1}, // split along n
		{transA: true, transB: true, m: 233, n: 200, k: 65, alpha: 1, beta: -0.25},
		{transA: true, m: 7, n: 2000, k: 100, alpha: 1, beta: 0}, // short kernel
		{m: 1000, n: 10, k: 50, alpha: 1, beta: -0.25, pad: 1},   // narrow kernel
	}
	rng := rand.New(rand.NewPCG(7, 8))
	forEachKernel(t, func(t *testing.T) {
		for _, tc := range shapes {
			o := newOperands(rng, tc)
			par := append([]float32(nil), o.c...)
			gemmParallel(active, 3, tc.transA, tc.transB, tc.m, tc.n, tc.k, tc.alpha, o.a, o.lda, o.b, o.ldb, tc.beta, par, o.ldc)
			GemmSerial(tc.transA, tc.transB, tc.m, tc.n, tc.k, tc.alpha, o.a, o.lda, o.b, o.ldb, tc.beta, o.c, o.ldc)
			require.Equal(t, o.c, par, "%v", tc)
			check(t, tc, o)
		}
	})
}

// TestGemmConcurrentSerial runs GemmSerial from many goroutines at once,
// as attention does per head, to exercise the shared workspace pool.
func TestGemmConcurrentSerial(t *testing.T) {
	rng := rand.New(rand.NewPCG(9, 10))
	tc := gemmCase{transB: true, m: 49, n: 49, k: 64, alpha: 0.125, beta: 0}
	const heads = 8
	ops := make([]operands, heads)
	for h := range ops {
		ops[h] = newOperands(rng, tc)
	}
	done := make(chan struct{})
	for h := range ops {
		go func(o operands) {
			defer func() { done <- struct{}{} }()
			GemmSerial(tc.transA, tc.transB, tc.m, tc.n, tc.k, tc.alpha, o.a, o.lda, o.b, o.ldb, tc.beta, o.c, o.ldc)
		}(ops[h])
	}
	for range ops {
		<-done
	}
	for _, o := range ops {
		check(t, tc, o)
	}
}

// TestGemmDegenerate covers k == 0, alpha == 0 and empty products: C must
// become beta·C (zero when beta == 0, even over NaN).
func TestGemmDegenerate(t *testing.T) {
	rng := rand.New(rand.NewPCG(11, 12))
	tests := []gemmCase{
		{m: 3, n: 4, k: 0, alpha: 1, beta: 0},
		{m: 3, n: 4, k: 0, alpha: 1, beta: -0.25, pad: 2},
		{m: 30, n: 40, k: 50, alpha: 0, beta: 0},
		{transA: true, m: 30, n: 40, k: 50, alpha: 0, beta: 1, pad: 1},
		{m: 0, n: 4, k: 5, alpha: 1, beta: 1},
		{m: 4, n: 0, k: 5, alpha: 1, beta: 1},
	}
	for _, tc := range tests {
		t.Run(tc.String(), func(t *testing.T) {
			runCase(t, rng, Gemm, tc)
			runCase(t, rng, GemmSerial, tc)
		})
	}
}

func TestGemmRejectsBadArguments(t *testing.T) {
	a := make([]float32, 12)
	b := make([]float32, 12)
	c := make([]float32, 9)
	tests := []struct {
		name string
		call func()
	}{
		{"short A", func() { Gemm(false, false, 3, 3, 5, 1, a, 5, b, 3, 0, c, 3) }},
		{"short B", func() { Gemm(false, false, 3, 3, 4, 1, a, 4, b[:11], 3, 0, c, 3) }},
		{"short C", func() { Gemm(false, false, 3, 3, 4, 1, a, 4, b, 3, 0, c[:8], 3) }},
		{"small lda", func() { Gemm(false, false, 3, 3, 4, 1, a, 3, b, 3, 0, c, 3) }},
		{"small ldb transposed", func() { Gemm(false, true, 3, 3, 4, 1, a, 4, b, 3, 0, c, 3) }},
		{"negative m", func() { GemmSerial(false, false, -1, 3, 4, 1, a, 4, b, 3, 0, c, 3) }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			require.Panics(t, tt.call)
		})
	}
	require.NotPanics(t, func() { Gemm(false, false, 3, 3, 4, 1, a, 4, b, 3, 0, c, 3) })
}

// TestGemmDoesNotAllocate: after a warm-up the workspace pool serves the
// packing buffers.
//
// It skips under -race, where allocation counts are not meaningful (the
// race detector makes sync.Pool drop a quarter of the items put back),
// and under -short. CI's non-race pass (.ci/run runs it without -race or
// -short) runs it.
func TestGemmDoesNotAllocate(t *testing.T) {
	if quick() {
		t.Skip("allocation counts are not meaningful under -race (skipped under -short too); CI's non-race pass runs it")
	}
	m, n, k := 200, 150, 300
	a := make([]float32, m*k)
	b := make([]float32, k*n)
	c := make([]float32, m*n)
	GemmSerial(false, true, m, n, k, 1, a, k, b, k, 0, c, n)
	allocs := testing.AllocsPerRun(10, func() {
		GemmSerial(false, true, m, n, k, 1, a, k, b, k, 0, c, n)
	})
	require.Zero(t, allocs)
}
