package cuda

import (
	"errors"
	"os"
	"sync"
	"unsafe"
)

// Pool is a device memory pool for one device and one stream (see
// arena.go for the design): Alloc hands out sub-blocks of large cudaMalloc
// chunks, Free returns them for reuse without calling the driver, and the
// statistics say how much is in use, reserved and allocated. An allocation
// the device cannot satisfy, even after the pool has returned its unused
// chunks, fails with an error that wraps nn.ErrOutOfMemory; the pool never
// panics on it.
//
// A Pool is safe for concurrent use. Create one with NewPool (cuda builds).
type Pool struct {
	mu sync.Mutex
	a  *arena
}

func newPool(src chunkSource, chunkBytes int64, exact bool) *Pool {
	return &Pool{a: newArena(src, chunkBytes, exact)}
}

// Buffer is an allocation from a Pool. The zero Buffer is the empty
// allocation (no memory, nil pointer).
type Buffer struct {
	b      *block
	gen    uint64 // the arena generation it belongs to
	serial uint64 // the allocation's serial number (stale handles differ)
	size   int64  // as requested
}

// Size returns the requested size in bytes.
func (b Buffer) Size() int64 { return b.size }

// Ptr returns the device address (nil for an empty Buffer).
func (b Buffer) Ptr() unsafe.Pointer {
	if b.b == nil {
		return nil
	}
	base, _ := b.b.c.mem.(unsafe.Pointer)
	return unsafe.Add(base, b.b.off)
}

// Alloc returns a buffer of at least n bytes, 512-byte aligned. n == 0
// gives the empty Buffer.
func (p *Pool) Alloc(n int64) (Buffer, error) {
	if n < 0 {
		return Buffer{}, errors.New("cuda pool: negative size")
	}
	if n == 0 {
		return Buffer{}, nil
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	b, err := p.a.alloc(n)
	if err != nil {
		return Buffer{}, err
	}
	return Buffer{b: b, gen: p.a.gen, serial: b.serial, size: n}, nil
}

// Free returns a buffer to the pool. Freeing the empty Buffer, a buffer
// from before Reset or Close, or a buffer twice (while its block is free)
// is harmless; the double free is reported.
func (p *Pool) Free(b Buffer) error {
	if b.b == nil {
		return nil
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if b.gen != p.a.gen {
		return nil
	}
	if b.b.serial != b.serial {
		return errDoubleFree // the block has since been handed out again
	}
	return p.a.release(b.b)
}

// Stats returns the pool's counters.
func (p *Pool) Stats() PoolStats {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.a.st
}

// ResetPeak sets the peak in-use (and reserved) figures to the current ones.
func (p *Pool) ResetPeak() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.a.st.Peak = p.a.st.InUse
	p.a.st.PeakReserved = p.a.st.Reserved
}

// Trim returns every chunk with no live allocation to the driver.
// cudaFree synchronises the device, so Trim is not for the hot path.
func (p *Pool) Trim() error {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.a.trim()
}

// Reset frees every allocation at once (an arena reset), keeping the chunks
// for reuse. Buffers handed out before are stale: freeing them is a no-op,
// using their memory is the caller's bug. The caller must make sure no
// queued work still uses them (they are reused by the next Alloc).
func (p *Pool) Reset() error {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.a.reset()
}

// Close returns all memory to the driver; later Allocs fail with
// ErrPoolClosed and Frees are no-ops. The caller synchronises first
// (cudaFree also waits for the device).
func (p *Pool) Close() error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.a.closed {
		return nil
	}
	return p.a.close()
}

// checkInvariants verifies the pool's internal structure (tests).
func (p *Pool) checkInvariants() error {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.a.check()
}

// poolExactFromEnv reports whether SAMGO_CUDA_POOL=exact asks every pool
// for one driver allocation per buffer (for compute-sanitizer runs).
func poolExactFromEnv() bool { return os.Getenv("SAMGO_CUDA_POOL") == "exact" }
