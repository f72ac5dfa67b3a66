package cpu

import (
	"fmt"
	"runtime/debug"
	"sync"
	"sync/atomic"

	"github.com/samgo/samgo/sam/nn"
)

// Work sizes below which a loop runs on the calling goroutine: starting a
// goroutine costs about a microsecond, so a chunk should hold at least tens
// of microseconds of work.
const (
	// minWork is the smallest chunk worth a goroutine, in "simple float
	// operations" (about a nanosecond each).
	minWork = 1 << 15
	// copyGrain is minWork for plain copies (elements).
	copyGrain = 1 << 16
)

// grain returns how many loop indices of cost (in simple float operations)
// make a chunk worth running on its own goroutine.
func grain(cost int) int {
	return max(1, minWork/max(cost, 1))
}

// parallelFor runs fn over [0, n) split into chunks of at least grain
// indices, on up to b.threads goroutines (the caller's included). fn gets
// the worker index w ∈ [0, b.threads) (for per-worker scratch; one worker
// runs its chunks one after another) and the chunk [lo, hi). Tiny loops
// run inline.
func (b *Backend) parallelFor(n, grain int, fn func(w, lo, hi int)) {
	if n <= 0 {
		return
	}
	grain = max(grain, 1)
	workers := min(b.threads, (n+grain-1)/grain)
	if workers <= 1 {
		fn(0, 0, n)
		return
	}
	// About four chunks per worker balance uneven progress (other processes
	// share the cores) without much scheduling overhead.
	chunk := max(grain, (n+4*workers-1)/(4*workers))
	b.parallelChunks(n, chunk, fn)
}

// parallelChunks runs fn over [0, n) in chunks of exactly chunk indices
// (the last one shorter), handed out dynamically to up to b.threads
// goroutines. A panic in fn (an nn.Fail) is re-raised on the caller's
// goroutine after all workers stop (any other panic with the worker's
// stack in its message).
func (b *Backend) parallelChunks(n, chunk int, fn func(w, lo, hi int)) {
	if n <= 0 {
		return
	}
	chunk = max(chunk, 1)
	nChunks := (n + chunk - 1) / chunk
	workers := min(b.threads, nChunks)
	if workers <= 1 {
		for lo := 0; lo < n; lo += chunk {
			fn(0, lo, min(lo+chunk, n))
		}
		return
	}
	var (
		next     atomic.Int64
		wg       sync.WaitGroup
		panicked atomic.Value
	)
	work := func(w int) {
		defer func() {
			if r := recover(); r != nil {
				if _, ok := r.(*nn.Error); !ok {
					// A bug: keep the worker's stack, which the
					// re-panic on the caller's goroutine would lose.
					r = fmt.Errorf("panic in a worker of parallelChunks: %v\n%s", r, debug.Stack())
				}
				panicked.CompareAndSwap(nil, panicValue{r})
				next.Store(int64(nChunks)) // stop the others early
			}
		}()
		for {
			c := int(next.Add(1) - 1)
			if c >= nChunks {
				return
			}
			lo := c * chunk
			fn(w, lo, min(lo+chunk, n))
		}
	}
	wg.Add(workers - 1)
	for w := 1; w < workers; w++ {
		go func() {
			defer wg.Done()
			work(w)
		}()
	}
	work(0)
	wg.Wait()
	if p, ok := panicked.Load().(panicValue); ok {
		panic(p.v)
	}
}

// panicValue boxes a recovered value for atomic.Value (which needs one
// concrete type).
type panicValue struct{ v any }

// scratch is per-worker temporary memory for parallel loops.
type scratch struct {
	bufs [][]float32
}

func newScratch(workers int) *scratch { return &scratch{bufs: make([][]float32, workers)} }

// get returns worker w's buffer, grown to at least n elements. Contents are
// undefined.
func (s *scratch) get(w, n int) []float32 {
	if cap(s.bufs[w]) < n {
		s.bufs[w] = make([]float32, n)
	}
	return s.bufs[w][:n]
}
