package serve

import (
	"context"
	"sync"
)

// queue runs encoder work (image encodings, automatic mask generation,
// which encodes the image and its crops) on a fixed number of workers,
// first come first served, with a bounded backlog: a job that finds the
// backlog full is refused at once (errQueueFull, 503), so no request
// waits long for a slot and a burst of uploads cannot hold the memory of
// an unbounded queue. Decoder work never enters it: predictions run on
// the request's own goroutine, beside whatever the workers do.
type queue struct {
	jobs chan *job
	wg   sync.WaitGroup
	mu   sync.RWMutex // guards closed against sends on a closed channel
	// closed is set by close: later submits get errShuttingDown.
	closed bool
	met    *metrics
}

// job is one unit of encoder work; run is called with the job's context
// (cancelled when nobody waits for the result any more) unless that is
// already cancelled when a worker picks it up.
type job struct {
	ctx  context.Context
	run  func(ctx context.Context) error
	done chan error
}

func newQueue(workers, backlog int, met *metrics) *queue {
	q := &queue{jobs: make(chan *job, backlog), met: met}
	for range workers {
		q.wg.Add(1)
		go q.work()
	}
	return q
}

func (q *queue) work() {
	defer q.wg.Done()
	for j := range q.jobs {
		q.met.queueDepth.Dec()
		if err := j.ctx.Err(); err != nil {
			j.done <- err
			continue
		}
		q.met.encoderBusy.Inc()
		j.done <- j.run(j.ctx)
		q.met.encoderBusy.Dec()
	}
}

// do queues run and waits for it; ctx cancelled while it waits stops the
// job (run sees the cancellation) and returns ctx.Err().
func (q *queue) do(ctx context.Context, run func(ctx context.Context) error) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	j := &job{ctx: ctx, run: run, done: make(chan error, 1)}
	q.mu.RLock()
	if q.closed {
		q.mu.RUnlock()
		return errShuttingDown
	}
	// Counted before the send: a worker may take the job (and decrement)
	// before this goroutine runs again.
	q.met.queueDepth.Inc()
	select {
	case q.jobs <- j:
		q.mu.RUnlock()
	default:
		q.mu.RUnlock()
		q.met.queueDepth.Dec()
		q.met.queueRejected.Inc()
		return errQueueFull
	}
	select {
	case err := <-j.done:
		return err
	case <-ctx.Done():
		// The worker sees the cancellation (before it starts, or in run)
		// and finishes the job; nobody reads done (it has room for one).
		return ctx.Err()
	}
}

// close refuses new jobs and waits for the queued ones to finish.
func (q *queue) close() {
	q.mu.Lock()
	if !q.closed {
		q.closed = true
		close(q.jobs)
	}
	q.mu.Unlock()
	q.wg.Wait()
}

// flights merges concurrent requests for the same result (the embedding
// of one image) into one computation: the first caller starts it, later
// ones wait for it. The computation runs on its own context, cancelled
// when the last waiter goes away, so a work whose every client left
// stops, and one that a client still waits for does not.
type flights[T any] struct {
	mu sync.Mutex
	m  map[string]*flight[T]
}

type flight[T any] struct {
	done    chan struct{}
	val     T
	err     error
	waiters int
	cancel  context.CancelFunc
}

// do returns fn's result for key, computing it once for all concurrent
// callers; shared reports whether this caller joined another's flight.
// base is the parent of the computation's context (the server's life, not
// the request's).
func (f *flights[T]) do(ctx, base context.Context, key string, fn func(ctx context.Context) (T, error)) (val T, shared bool, err error) {
	f.mu.Lock()
	if f.m == nil {
		f.m = map[string]*flight[T]{}
	}
	fl, ok := f.m[key]
	if ok {
		fl.waiters++
	} else {
		fctx, cancel := context.WithCancel(base)
		fl = &flight[T]{done: make(chan struct{}), waiters: 1, cancel: cancel}
		f.m[key] = fl
		go func() {
			defer cancel()
			v, err := fn(fctx)
			f.mu.Lock()
			if f.m[key] == fl {
				delete(f.m, key)
			}
			f.mu.Unlock()
			fl.val, fl.err = v, err
			close(fl.done)
		}()
	}
	f.mu.Unlock()
	select {
	case <-fl.done:
		return fl.val, ok, fl.err
	case <-ctx.Done():
		f.mu.Lock()
		fl.waiters--
		if fl.waiters == 0 {
			// Nobody waits: stop the work, and let the next caller start
			// afresh rather than join a cancelled flight.
			fl.cancel()
			if f.m[key] == fl {
				delete(f.m, key)
			}
		}
		f.mu.Unlock()
		var zero T
		return zero, ok, ctx.Err()
	}
}
