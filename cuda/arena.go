package cuda

import (
	"errors"
	"fmt"
	"sort"
)

// The device memory pool's bookkeeping, kept free of cgo so that it builds
// and is tested without the `cuda` tag (arena_test.go); pool.go backs it
// with cudaMalloc.
//
// Design (a simplified PyTorch caching allocator):
//
//   - Memory is obtained from the driver in chunks of at least chunkBytes
//     (a request larger than that gets a chunk of its own, rounded up to
//     chunkAlign). A chunk is cut into blocks, address-ordered and doubly
//     linked, so a freed block merges with free neighbours at once.
//   - Free blocks sit in one slice sorted by (size, chunk, offset);
//     allocation takes the best fit (the smallest block that is large
//     enough, found by binary search) and splits off the remainder when it
//     is at least minSplit bytes.
//   - Sizes are rounded up to blockAlign (512 bytes; every block offset is
//     therefore 512-byte aligned, more than any kernel's vector loads need).
//   - The arena never calls the driver on Free: memory stays reserved until
//     Trim (whole free chunks back to the driver), Close, or an allocation
//     that fails (Trim and one retry before out-of-memory is reported).
//
// Stream ordering: the pool belongs to one CUDA stream. A block freed on the
// host after the work that uses it has been enqueued may be handed to the
// next allocation at once, because that allocation's work is enqueued on
// the same stream, after the earlier work. Memory used on other streams
// must not be freed before those streams are synchronised.

const (
	blockAlign   = 512
	minSplit     = 512
	chunkAlign   = 2 << 20  // dedicated chunks are rounded to 2 MiB
	defaultChunk = 64 << 20 // the size of a shared chunk
)

// ErrPoolClosed marks an allocation from a closed pool.
var ErrPoolClosed = errors.New("cuda: memory pool is closed")

var errDoubleFree = errors.New("cuda pool: buffer freed twice")

// chunkSource obtains and returns chunks of device memory; pool.go
// implements it with cudaMalloc/cudaFree, the tests with a fake.
type chunkSource interface {
	allocChunk(bytes int64) (any, error) // the chunk's memory handle
	freeChunk(mem any) error
}

type chunk struct {
	id    int64
	mem   any // what the source returned (an unsafe.Pointer for the device)
	size  int64
	first *block
	// dedicated chunks hold a single oversize allocation
	dedicated bool
}

type block struct {
	c          *chunk
	off, size  int64
	free       bool
	serial     uint64 // of the allocation that holds it (Buffer checks it)
	prev, next *block
}

// PoolStats are the pool's counters. Sizes are in bytes; "in use" counts
// the rounded block sizes of live allocations.
type PoolStats struct {
	InUse        int64 `json:"in_use_bytes"`
	Peak         int64 `json:"peak_bytes"`          // max InUse since creation or ResetPeak
	Reserved     int64 `json:"reserved_bytes"`      // obtained from the driver, in chunks
	PeakReserved int64 `json:"peak_reserved_bytes"` // max Reserved
	Live         int   `json:"live_allocations"`
	Allocs       int64 `json:"allocations"`       // allocations served since creation
	Chunks       int   `json:"chunks"`            // chunks held now
	ChunkAllocs  int64 `json:"chunk_allocations"` // driver allocations made
	ChunkFrees   int64 `json:"chunk_frees"`       // driver frees made
}

func (s PoolStats) String() string {
	return fmt.Sprintf("in use %s (peak %s), reserved %s in %d chunks, %d live allocations",
		FormatBytes(s.InUse), FormatBytes(s.Peak), FormatBytes(s.Reserved), s.Chunks, s.Live)
}

// FormatBytes renders n as "12.3 MiB".
func FormatBytes(n int64) string {
	const unit = 1024
	if n < unit {
		return fmt.Sprintf("%d B", n)
	}
	div, exp := int64(unit), 0
	for m := n / unit; m >= unit; m /= unit {
		div *= unit
		exp++
	}
	return fmt.Sprintf("%.1f %ciB", float64(n)/float64(div), "KMGTPE"[exp])
}

// arena is the pool's allocator state. It is not safe for concurrent use;
// Pool guards it with a mutex.
type arena struct {
	src        chunkSource
	chunkBytes int64 // shared chunk size
	// exact gives every allocation a chunk of its own that is returned to
	// the driver when freed: no sub-allocation, so compute-sanitizer's
	// memcheck sees each allocation's bounds (SAMGO_CUDA_POOL=exact).
	exact bool

	free   []*block // free blocks by (size, chunk id, offset)
	chunks map[*chunk]struct{}
	nextID int64
	gen    uint64 // bumped by reset: older handles are stale
	serial uint64 // allocations made
	closed bool
	st     PoolStats
}

func newArena(src chunkSource, chunkBytes int64, exact bool) *arena {
	if chunkBytes <= 0 {
		chunkBytes = defaultChunk
	}
	chunkBytes = roundUp(chunkBytes, chunkAlign)
	return &arena{src: src, chunkBytes: chunkBytes, exact: exact, chunks: map[*chunk]struct{}{}}
}

func roundUp(n, to int64) int64 { return (n + to - 1) / to * to }

func less(a, b *block) bool {
	if a.size != b.size {
		return a.size < b.size
	}
	if a.c.id != b.c.id {
		return a.c.id < b.c.id
	}
	return a.off < b.off
}

func (a *arena) insertFree(b *block) {
	i := sort.Search(len(a.free), func(i int) bool { return !less(a.free[i], b) })
	a.free = append(a.free, nil)
	copy(a.free[i+1:], a.free[i:])
	a.free[i] = b
}

func (a *arena) removeFree(b *block) {
	i := sort.Search(len(a.free), func(i int) bool { return !less(a.free[i], b) })
	if i < len(a.free) && a.free[i] == b {
		a.free = append(a.free[:i], a.free[i+1:]...)
		return
	}
	panic("cuda: pool free list corrupt") // an internal invariant, not a user error
}

// alloc returns a block of at least size bytes (size > 0).
func (a *arena) alloc(size int64) (*block, error) {
	if a.closed {
		return nil, ErrPoolClosed
	}
	size = max(size, 1)
	if !a.exact { // exact: the allocation's own size, so memcheck sees its end
		size = roundUp(size, blockAlign)
		i := sort.Search(len(a.free), func(i int) bool { return a.free[i].size >= size })
		if i < len(a.free) {
			b := a.free[i]
			a.free = append(a.free[:i], a.free[i+1:]...)
			return a.use(b, size), nil
		}
	}
	c, err := a.newChunk(size)
	if err != nil {
		return nil, err
	}
	return a.use(c.first, size), nil
}

// newChunk obtains a chunk with room for size bytes; on failure it
// returns the free chunks to the driver and retries once with the least
// memory that serves the request.
func (a *arena) newChunk(size int64) (*chunk, error) {
	want := roundUp(size, chunkAlign)
	dedicated := a.exact || want >= a.chunkBytes
	if a.exact {
		want = size
	} else if !dedicated {
		want = a.chunkBytes
	}
	mem, err := a.src.allocChunk(want)
	if err != nil && !a.exact {
		a.trim()
		want = roundUp(size, chunkAlign)
		dedicated = true
		mem, err = a.src.allocChunk(want)
	}
	if err != nil {
		return nil, fmt.Errorf("cuda pool: allocating %s (%s): %w", FormatBytes(size), a.st, err)
	}
	c := &chunk{id: a.nextID, mem: mem, size: want, dedicated: dedicated}
	a.nextID++
	c.first = &block{c: c, off: 0, size: want, free: true}
	a.chunks[c] = struct{}{}
	a.st.Reserved += want
	a.st.PeakReserved = max(a.st.PeakReserved, a.st.Reserved)
	a.st.Chunks++
	a.st.ChunkAllocs++
	return c, nil
}

// use marks the free block b (not in the free list) as allocated, keeping
// size bytes of it and returning the rest to the free list.
func (a *arena) use(b *block, size int64) *block {
	if rest := b.size - size; rest >= minSplit && !a.exact {
		r := &block{c: b.c, off: b.off + size, size: rest, free: true, prev: b, next: b.next}
		if b.next != nil {
			b.next.prev = r
		}
		b.next = r
		b.size = size
		a.insertFree(r)
	}
	b.free = false
	a.serial++
	b.serial = a.serial
	a.st.InUse += b.size
	a.st.Peak = max(a.st.Peak, a.st.InUse)
	a.st.Live++
	a.st.Allocs++
	return b
}

// release frees an allocated block, merging it with free neighbours.
func (a *arena) release(b *block) error {
	if b.free {
		return errDoubleFree
	}
	b.free = true
	a.st.InUse -= b.size
	a.st.Live--
	if a.exact {
		return a.dropChunk(b.c)
	}
	if p := b.prev; p != nil && p.free {
		a.removeFree(p)
		p.size += b.size
		p.next = b.next
		if b.next != nil {
			b.next.prev = p
		}
		b = p
	}
	if n := b.next; n != nil && n.free {
		a.removeFree(n)
		b.size += n.size
		b.next = n.next
		if n.next != nil {
			n.next.prev = b
		}
	}
	a.insertFree(b) // an oversize allocation's chunk too: trim returns it
	return nil
}

// dropChunk returns a chunk to the driver (its blocks must all be free and
// out of the free list, or the chunk a single free block).
func (a *arena) dropChunk(c *chunk) error {
	delete(a.chunks, c)
	a.st.Reserved -= c.size
	a.st.Chunks--
	a.st.ChunkFrees++
	return a.src.freeChunk(c.mem)
}

// trim returns every chunk that is one free block to the driver.
func (a *arena) trim() error {
	var first error
	kept := a.free[:0]
	for _, b := range a.free {
		if b.prev == nil && b.next == nil && b.off == 0 && b.size == b.c.size {
			if err := a.dropChunk(b.c); err != nil && first == nil {
				first = err
			}
			continue
		}
		kept = append(kept, b)
	}
	clear(a.free[len(kept):])
	a.free = kept
	return first
}

// reset makes every chunk one free block again, as if every allocation had
// been released; handles from before are stale (their release is ignored).
func (a *arena) reset() error {
	a.gen++
	a.free = a.free[:0]
	a.st.InUse, a.st.Live = 0, 0
	var first error
	for c := range a.chunks {
		if a.exact {
			if err := a.dropChunk(c); err != nil && first == nil {
				first = err
			}
			continue
		}
		c.first = &block{c: c, size: c.size, free: true}
		a.insertFree(c.first)
	}
	return first
}

// close returns every chunk to the driver; the arena refuses allocations
// from then on.
func (a *arena) close() error {
	var first error
	for c := range a.chunks {
		if err := a.dropChunk(c); err != nil && first == nil {
			first = err
		}
	}
	a.free = nil
	a.closed = true
	a.gen++
	a.st.InUse, a.st.Live = 0, 0
	return first
}

// check verifies the arena's invariants (tests): blocks tile every chunk,
// no two free neighbours, the free list holds exactly the free blocks in
// order, and the counters agree.
func (a *arena) check() error {
	var inUse, reserved int64
	live, free := 0, 0
	for c := range a.chunks {
		reserved += c.size
		var off int64
		var prev *block
		for b := c.first; b != nil; b = b.next {
			if b.c != c || b.off != off || b.prev != prev || b.size <= 0 {
				return fmt.Errorf("chunk %d: block at %d (want %d) broken links", c.id, b.off, off)
			}
			if b.free && prev != nil && prev.free {
				return fmt.Errorf("chunk %d: adjacent free blocks at %d", c.id, b.off)
			}
			if b.free {
				free++
			} else {
				inUse += b.size
				live++
			}
			off += b.size
			prev = b
		}
		if off != c.size {
			return fmt.Errorf("chunk %d: blocks cover %d of %d bytes", c.id, off, c.size)
		}
	}
	if free != len(a.free) {
		return fmt.Errorf("%d free blocks, %d in the free list", free, len(a.free))
	}
	for i, b := range a.free {
		if !b.free || (i > 0 && !less(a.free[i-1], b)) {
			return fmt.Errorf("free list out of order at %d", i)
		}
	}
	if inUse != a.st.InUse || live != a.st.Live || reserved != a.st.Reserved || len(a.chunks) != a.st.Chunks {
		return fmt.Errorf("counters: in use %d/%d, live %d/%d, reserved %d/%d, chunks %d/%d",
			inUse, a.st.InUse, live, a.st.Live, reserved, a.st.Reserved, len(a.chunks), a.st.Chunks)
	}
	return nil
}
