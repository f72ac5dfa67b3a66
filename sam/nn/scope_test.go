package nn_test

import (
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/samgo/samgo/sam/nn"
	"github.com/samgo/samgo/sam/nn/cpu"
)

// TestScope: what a scope's ops create is freed at Close except what it
// keeps, kept tensors pass to the enclosing scope, and tensors the scope
// did not create are left alone.
func TestScope(t *testing.T) {
	b := cpu.New()
	x := b.Upload([]float32{1, 2, 3, 4, 5, 6}, 2, 3)
	w := b.Upload([]float32{1, 0, 0, 0, 1, 0}, 2, 3)
	base := b.MemoryInUse()

	outer := nn.NewScope(b)
	var kept nn.Tensor
	func() {
		inner := nn.NewScope(outer)
		defer inner.Close()
		h := inner.Linear(x, w, nil, nn.ActNone) // (2, 2)
		g := inner.Activation(h, nn.ActReLU)     // freed
		sum, norm := inner.AddLayerNorm(g, h, b.Upload([]float32{1, 1}, 2), b.Upload([]float32{0, 0}, 2), 1e-5)
		inner.Release(norm)                      // freed at once, and forgotten
		kept = inner.Keep(inner.Reshape(sum, 4)) // to the outer scope
		require.Same(t, x, inner.Keep(x))        // an input: nobody's to free
	}()
	require.Equal(t, []float32{2, 4, 8, 10}, b.Download(kept), "kept survives the inner Close")
	require.Equal(t, []float32{1, 2, 3, 4, 5, 6}, b.Download(x), "inputs are not released")
	outer.Close()
	outer.Close() // twice: nothing more
	// The two uploads inside the inner scope (LayerNorm's w and b) were
	// made on b directly, so they stay; everything else is back.
	require.Equal(t, base+2*2*4, b.MemoryInUse())
}

// TestScopeDone: Done frees the scope's own tensors at once and leaves
// its inputs, and tensors it no longer holds, alone.
func TestScopeDone(t *testing.T) {
	b := cpu.New()
	x := b.Upload([]float32{1, -2, 3}, 3)
	base := b.MemoryInUse()
	s := nn.NewScope(b)
	h := s.Activation(x, nn.ActReLU)
	require.Equal(t, base+3*4, b.MemoryInUse())
	s.Done(x, h) // x is an input: kept; h is freed now
	require.Equal(t, base, b.MemoryInUse())
	require.Equal(t, []float32{1, -2, 3}, b.Download(x))
	k := s.Keep(s.Activation(x, nn.ActReLU))
	s.Done(k) // kept: no longer the scope's
	s.Close()
	require.Equal(t, []float32{1, 0, 3}, b.Download(k))
	b.Release(k)
	require.Equal(t, base, b.MemoryInUse())
}

// TestScopeMarksRanges: a scope forwards profiler ranges to its root.
func TestScopeMarksRanges(t *testing.T) {
	m := &marking{Backend: cpu.New()}
	s := nn.NewScope(nn.NewScope(m))
	nn.Range(s, "block")()
	require.Equal(t, []string{"start block", "end block"}, m.log)
}
