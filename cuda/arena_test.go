package cuda

import (
	"errors"
	"math/rand/v2"
	"sort"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/samgo/samgo/sam/nn"
)

// fakeSource hands out chunk numbers up to a byte limit, failing beyond it
// like cudaMalloc does (an error that wraps nn.ErrOutOfMemory).
type fakeSource struct {
	limit, held int64
	next        int
	live        map[int]int64
	allocs      []int64
}

func newFake(limit int64) *fakeSource { return &fakeSource{limit: limit, live: map[int]int64{}} }

func (f *fakeSource) allocChunk(n int64) (any, error) {
	if f.held+n > f.limit {
		return nil, &Error{Op: "cudaMalloc", Code: 2, Name: "cudaErrorMemoryAllocation", Msg: "out of memory", oom: true}
	}
	f.next++
	f.live[f.next] = n
	f.held += n
	f.allocs = append(f.allocs, n)
	return f.next, nil
}

func (f *fakeSource) freeChunk(mem any) error {
	id := mem.(int)
	n, ok := f.live[id]
	if !ok {
		return errors.New("fake: chunk freed twice")
	}
	delete(f.live, id)
	f.held -= n
	return nil
}

const mib = 1 << 20

func TestPoolBestFitSplitAndMerge(t *testing.T) {
	src := newFake(1 << 40)
	p := newPool(src, 8*mib, false)
	a, err := p.Alloc(1000) // rounded to 1024
	require.NoError(t, err)
	b, err := p.Alloc(3000) // 3072
	require.NoError(t, err)
	c, err := p.Alloc(512)
	require.NoError(t, err)
	require.Equal(t, []int64{8 * mib}, src.allocs, "one shared chunk")
	require.Equal(t, int64(0), a.b.off)
	require.Equal(t, int64(1024), b.b.off)
	require.Equal(t, int64(4096), c.b.off)
	st := p.Stats()
	require.Equal(t, int64(1024+3072+512), st.InUse)
	require.Equal(t, 3, st.Live)
	require.NoError(t, p.checkInvariants())

	// Free the middle block: a 3072-byte hole; a 2000-byte request takes
	// it (best fit) rather than the large tail.
	require.NoError(t, p.Free(b))
	d, err := p.Alloc(2000)
	require.NoError(t, err)
	require.Equal(t, int64(1024), d.b.off, "best fit: the hole, not the tail")
	require.NoError(t, p.checkInvariants())

	// Freeing everything merges the chunk back into one block.
	for _, x := range []Buffer{a, c, d} {
		require.NoError(t, p.Free(x))
	}
	require.NoError(t, p.checkInvariants())
	require.Equal(t, int64(0), p.Stats().InUse)
	require.Len(t, p.a.free, 1)
	require.Equal(t, int64(8*mib), p.a.free[0].size)
	require.Equal(t, int64(1024+3072+512), p.Stats().Peak)
}

func TestPoolStaleAndDoubleFree(t *testing.T) {
	p := newPool(newFake(1<<40), 8*mib, false)
	a, err := p.Alloc(4096)
	require.NoError(t, err)
	require.NoError(t, p.Free(a))
	require.ErrorIs(t, p.Free(a), errDoubleFree)
	b, err := p.Alloc(4096) // the same block again
	require.NoError(t, err)
	require.Equal(t, a.b, b.b)
	require.ErrorIs(t, p.Free(a), errDoubleFree, "a stale handle must not free b")
	require.Equal(t, 1, p.Stats().Live)
	require.NoError(t, p.Free(b))
	require.NoError(t, p.Free(Buffer{}), "the empty buffer")
	require.NoError(t, p.checkInvariants())
}

func TestPoolOversizeTrimAndOOM(t *testing.T) {
	src := newFake(40 * mib)
	p := newPool(src, 8*mib, false)
	small, err := p.Alloc(1 * mib)
	require.NoError(t, err)
	big, err := p.Alloc(9*mib + 1) // > chunk: a dedicated chunk of 10 MiB
	require.NoError(t, err)
	require.Equal(t, []int64{8 * mib, 10 * mib}, src.allocs)
	require.NoError(t, p.Free(big))
	// The dedicated chunk is reused for a request that fits it.
	again, err := p.Alloc(9 * mib)
	require.NoError(t, err)
	require.Len(t, src.allocs, 2)
	require.NoError(t, p.Free(again))

	// 30 MiB does not fit beside the 18 MiB held (limit 40): the pool
	// trims the free 10 MiB chunk and retries.
	huge, err := p.Alloc(30 * mib)
	require.NoError(t, err)
	require.Equal(t, int64(8*mib+30*mib), p.Stats().Reserved)
	require.NoError(t, p.checkInvariants())

	// Now nothing more fits: out of memory, as an error.
	_, err = p.Alloc(8 * mib)
	require.Error(t, err)
	require.ErrorIs(t, err, nn.ErrOutOfMemory)
	require.Contains(t, err.Error(), "in use")
	require.NoError(t, p.checkInvariants())

	require.NoError(t, p.Free(huge))
	require.NoError(t, p.Free(small))
	require.NoError(t, p.Trim())
	require.Equal(t, int64(0), p.Stats().Reserved)
	require.Empty(t, src.live)
}

func TestPoolExactMode(t *testing.T) {
	src := newFake(1 << 40)
	p := newPool(src, 8*mib, true)
	a, err := p.Alloc(1000)
	require.NoError(t, err)
	b, err := p.Alloc(3)
	require.NoError(t, err)
	require.Equal(t, []int64{1000, 3}, src.allocs, "one driver allocation each, exact sizes")
	require.NoError(t, p.Free(a))
	require.Len(t, src.live, 1, "freed at once")
	require.NoError(t, p.Free(b))
	require.Empty(t, src.live)
	require.NoError(t, p.checkInvariants())
}

func TestPoolResetAndClose(t *testing.T) {
	src := newFake(1 << 40)
	p := newPool(src, 8*mib, false)
	var bufs []Buffer
	for range 10 {
		b, err := p.Alloc(100 << 10)
		require.NoError(t, err)
		bufs = append(bufs, b)
	}
	require.NoError(t, p.Reset())
	require.Equal(t, int64(0), p.Stats().InUse)
	require.NoError(t, p.checkInvariants())
	require.NoError(t, p.Free(bufs[3]), "stale after Reset: ignored")
	require.Equal(t, int64(0), p.Stats().InUse)
	b, err := p.Alloc(100)
	require.NoError(t, err)
	require.Len(t, src.allocs, 1, "the chunk is reused")
	require.NoError(t, p.Close())
	require.Empty(t, src.live)
	require.NoError(t, p.Free(b))
	_, err = p.Alloc(1)
	require.ErrorIs(t, err, ErrPoolClosed)
}

// TestPoolRandom runs random allocation sequences against the invariants
// and checks that live buffers never overlap.
func TestPoolRandom(t *testing.T) {
	for seed := range uint64(5) {
		rng := rand.New(rand.NewPCG(seed, 1))
		src := newFake(1 << 40)
		p := newPool(src, 4*mib, false)
		var live []Buffer
		for step := range 3000 {
			if len(live) > 0 && rng.IntN(5) < 2 {
				i := rng.IntN(len(live))
				require.NoError(t, p.Free(live[i]))
				live = append(live[:i], live[i+1:]...)
			} else {
				n := int64(rng.IntN(64<<10)) + 1
				if rng.IntN(50) == 0 {
					n = int64(rng.IntN(10*mib)) + 1
				}
				b, err := p.Alloc(n)
				require.NoError(t, err)
				require.GreaterOrEqual(t, b.b.size, n)
				live = append(live, b)
			}
			if step%100 == 0 {
				require.NoError(t, p.checkInvariants(), "seed %d step %d", seed, step)
				spans := make([]*block, len(live))
				for i, b := range live {
					spans[i] = b.b
				}
				sort.Slice(spans, func(i, j int) bool {
					if spans[i].c.id != spans[j].c.id {
						return spans[i].c.id < spans[j].c.id
					}
					return spans[i].off < spans[j].off
				})
				for i := 1; i < len(spans); i++ {
					x, y := spans[i-1], spans[i]
					require.False(t, x.c == y.c && x.off+x.size > y.off, "live blocks overlap")
				}
			}
		}
		for _, b := range live {
			require.NoError(t, p.Free(b))
		}
		require.NoError(t, p.checkInvariants())
		require.NoError(t, p.Trim())
		require.Empty(t, src.live)
	}
}
