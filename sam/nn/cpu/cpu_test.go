package cpu

import (
	"sync"
	"sync/atomic"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/samgo/samgo/sam/nn"
	"github.com/samgo/samgo/sam/nn/cpu/sgemm"
	"github.com/samgo/samgo/sam/nn/nntest"
)

func TestUploadDownload(t *testing.T) {
	b := New()
	require.Equal(t, "cpu", b.Name())
	d := []float32{1, 2, 3, 4, 5, 6}
	shape := []int{2, 3}
	x := b.Upload(d, shape...)
	shape[0] = 7 // the tensor keeps its own shape
	d[0] = 100   // and its own data
	require.Equal(t, []int{2, 3}, x.Shape())
	got := b.Download(x)
	require.Equal(t, []float32{1, 2, 3, 4, 5, 6}, got)
	got[1] = -1 // Download copies
	require.Equal(t, float32(2), b.Download(x)[1])

	// UploadWeight may keep a reference (it does here).
	w := []float32{1, 2, 3}
	wt := b.UploadWeight(w, 3)
	w[0] = 9
	require.Equal(t, []float32{9, 2, 3}, b.Download(wt))

	// Scalars and empty tensors.
	require.Equal(t, []float32{5}, b.Download(b.Upload([]float32{5})))
	require.Empty(t, b.Download(b.Upload(nil, 0, 3)))

	// Large uploads take the parallel copy path.
	big := randData(newRNG(1), 300_001)
	require.Equal(t, big, b.Download(b.Upload(big, len(big))))
}

func TestReshapeRelease(t *testing.T) {
	b := New(WithThreads(2))
	const n = 2 * minPooled
	d := randData(newRNG(2), n)
	x := b.Upload(d, 2, minPooled)
	v := b.Reshape(x, minPooled, 2, 1)
	require.Equal(t, []int{minPooled, 2, 1}, v.Shape())
	require.Equal(t, d, b.Download(v))

	// Releasing the original keeps the view's memory alive: new tensors
	// of the same size must not get it.
	b.Release(x)
	for range 10 {
		b.Upload(make([]float32, n), n)
	}
	require.Equal(t, d, b.Download(v))

	// Use after Release fails cleanly, as does a second Release.
	nntest.RequireFails(t, ErrTensor, func() { b.Download(x) })
	nntest.RequireFails(t, ErrTensor, func() { b.Reshape(x, n) })
	nntest.RequireFails(t, ErrTensor, func() { b.Add(v, x) })
	b.Release(x, nil, foreign{}, v, v)
	nntest.RequireFails(t, ErrTensor, func() { b.Download(v) })

	// Released memory is recycled (same size), and recycled buffers are
	// fully overwritten by the op that gets them.
	y := b.Upload(d, n)
	b.Release(y)
	z := b.Activation(b.Upload(make([]float32, n), n), nn.ActNone)
	require.Equal(t, make([]float32, n), b.Download(z))

	// Without the pool, everything still works.
	np := New(WithoutPool())
	x = np.Upload(d, n)
	np.Release(np.Reshape(x, 2, minPooled))
	require.Equal(t, d, np.Download(x))
	np.Release(x)
}

func TestRegistry(t *testing.T) {
	b, err := nn.Open("cpu", nn.Options{Threads: 3})
	require.NoError(t, err)
	require.Equal(t, 3, b.(*Backend).Threads())
	b, err = nn.Open("cpu", nn.Options{Precision: "bf16"})
	require.NoError(t, err)
	want := "fp32" // where the CPU lacks AVX512_BF16
	if sgemm.HasBF16() {
		want = "bf16"
	}
	require.Equal(t, want, b.(*Backend).Precision())
	_, err = nn.Open("cpu", nn.Options{Precision: "fp16"})
	require.ErrorContains(t, err, "fp32 or bf16")
	_, err = nn.Open("cpu:1", nn.Options{})
	require.Error(t, err)
	b, err = nn.Open("cpu", nn.Options{Precision: "fp32"})
	require.NoError(t, err)
	require.Equal(t, "cpu", b.Name())
}

func TestParallelFor(t *testing.T) {
	for _, threads := range []int{1, 2, 5} {
		b := New(WithThreads(threads))
		for _, n := range []int{0, 1, 7, 1000, 100_003} {
			for _, grain := range []int{0, 1, 13, 1 << 20} {
				hits := make([]int32, n)
				var maxW atomic.Int32
				b.parallelFor(n, grain, func(w, lo, hi int) {
					for i := lo; i < hi; i++ {
						atomic.AddInt32(&hits[i], 1)
					}
					for {
						m := maxW.Load()
						if int32(w) <= m || maxW.CompareAndSwap(m, int32(w)) {
							break
						}
					}
				})
				for i, h := range hits {
					if h != 1 {
						t.Fatalf("threads %d n %d grain %d: index %d run %d times", threads, n, grain, i, h)
					}
				}
				require.Less(t, int(maxW.Load()), threads)
			}
		}
		// A failing chunk surfaces as the op's error on the caller.
		err := nntest.OpError(t, func() {
			b.parallelChunks(100, 1, func(_, lo, _ int) {
				if lo == 57 {
					nn.Fail("Test", nn.ErrShape, "chunk %d", lo)
				}
			})
		})
		require.ErrorIs(t, err, nn.ErrShape)
	}
}

// TestConcurrentUse runs ops from several goroutines on one backend (run
// with -race to check the pool and the scratch handling).
func TestConcurrentUse(t *testing.T) {
	b := New(WithThreads(2))
	rng := newRNG(3)
	w, wd := randTensor(b, rng, 64, 32)
	xd := randData(rng, 300*32)
	want := refLinear(xd, 300, 32, wd, 64, nil, nn.ActGELU)
	var wg sync.WaitGroup
	for range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range 5 {
				x := b.Upload(xd, 300, 32)
				y := b.Linear(x, w, nil, nn.ActGELU)
				got := b.Download(y)
				b.Release(x, y)
				requireClose(t, want, got, 1e-5)
			}
		}()
	}
	wg.Wait()
}
