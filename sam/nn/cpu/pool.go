package cpu

import (
	"math"
	"sync"
	"sync/atomic"
)

// The free list: released buffers are kept by exact element count and
// handed out again by ops that need the same size, which the ViT does over
// and over (every block allocates the same dozen tensors). This saves the
// runtime's zeroing of fresh memory and most garbage-collector cycles.
//
// The lists are sync.Pools, so idle buffers are dropped by the garbage
// collector (after two cycles): the backend holds no memory for long once
// the model stops running.
//
// A buffer is shared by a tensor and its Reshape views and counts them; it
// returns to the free list when the last of them is released. Memory not
// from the free list (UploadWeight data) has no buffer and is never reused.

// minPooled is the smallest buffer (in float32s) worth recycling.
const minPooled = 1 << 12

type buffer struct {
	data []float32
	refs atomic.Int32 // live tensors (the owner and its views) using data
}

func (u *buffer) retain() {
	if u != nil {
		u.refs.Add(1)
	}
}

// release drops one reference and reports whether it was the last one.
func (u *buffer) release() bool {
	return u.refs.Add(-1) == 0
}

type pool struct {
	mu     sync.Mutex
	bySize map[int]*sync.Pool
	// poison fills every handed-out buffer with NaN (tests: an op that
	// leaves an element unwritten shows up as NaN).
	poison bool
}

func newPool() *pool { return &pool{bySize: map[int]*sync.Pool{}} }

// get returns n float32s (contents undefined) and the buffer that owns them
// (nil for sizes that are not pooled).
func (p *pool) get(n int) ([]float32, *buffer) {
	if p == nil || n < minPooled {
		d := make([]float32, n)
		if p != nil && p.poison {
			fillNaN(d)
		}
		return d, nil
	}
	p.mu.Lock()
	sp := p.bySize[n]
	if sp == nil {
		sp = &sync.Pool{}
		p.bySize[n] = sp
	}
	p.mu.Unlock()
	u, _ := sp.Get().(*buffer)
	if u == nil {
		u = &buffer{data: make([]float32, n)}
	}
	u.refs.Store(1)
	if p.poison {
		fillNaN(u.data)
	}
	return u.data, u
}

// put returns a buffer with no remaining references to the free list.
func (p *pool) put(u *buffer) {
	if p == nil || u == nil {
		return
	}
	p.mu.Lock()
	sp := p.bySize[len(u.data)]
	p.mu.Unlock()
	if sp != nil {
		sp.Put(u)
	}
}

func fillNaN(d []float32) {
	nan := float32(math.NaN())
	for i := range d {
		d[i] = nan
	}
}
