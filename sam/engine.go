package sam

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math"
	"runtime"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/samgo/samgo/sam/imgproc"
	"github.com/samgo/samgo/sam/nn"
)

// Engine encodes many images on a set of devices. Each device holds one
// model replica (its weights uploaded once); each replica serves one or
// more workers (forks of its backend: separate streams sharing the
// weights). Workers pull batches from a shared queue, so a faster device
// comes back for work sooner; a worker's batch is bounded by what fits in
// its device's memory, and near the end of a run by its share of the
// measured throughput, so no slow device holds the last images. Results
// keep the input order.
//
//	images ──► decode + preprocess (CPU goroutines, ahead of the devices)
//	       ──► queue ──► worker cuda:0 ─┐
//	                 ──► worker cuda:1 ─┼──► results, in input order
//	                 ──► worker cpu ────┘
//
// A batch that runs out of device memory is split in halves and retried
// (and the worker's batch limit lowered); a device that fails otherwise is
// retired and its images go back to the queue for the others.
type Engine struct {
	cfg     Config
	devices []*engineDevice
	workers []*engineWorker
	closed  atomic.Bool
}

type engineDevice struct {
	spec  string
	model *Model
}

type engineWorker struct {
	dev      *engineDevice
	model    *Model // dev.model or a fork of it
	name     string
	maxBatch int

	mu      sync.Mutex
	images  int
	busy    time.Duration
	speed   float64 // images/s, exponentially averaged; 0 until measured
	retired error
}

// EngineOptions configure NewEngine.
type EngineOptions struct {
	// Devices are device specs as nn.Open takes them ("cpu", "cuda:0");
	// ParseDevices turns the CLI's -devices syntax into them. Default: cpu.
	Devices []string
	// Config overrides the config inferred from the checkpoint.
	Config *Config
	// Precision: "fp32" (default) or "bf16" (CUDA, and the CPU where it has
	// AVX512_BF16; elsewhere the CPU computes in fp32).
	Precision string
	// WorkersPerDevice is the number of concurrent workers (streams) per
	// device (default 1).
	WorkersPerDevice int
	// MaxBatch bounds the images in one encoder pass (default: sized from
	// the device's free memory, at most 8; 1 on the CPU).
	MaxBatch int
	// Threads per CPU device (default: the cores divided among the CPU
	// devices).
	Threads int
}

// ParseDevices turns the CLI's device syntax into device specs:
// "cpu" (one CPU device), "cpu:N" (N virtual CPU devices, to exercise the
// sharding anywhere), "all" (every CUDA device), "0,1" (those CUDA devices),
// or explicit specs ("cuda:0,cuda:1"). CUDA indices are as the CUDA runtime
// numbers them, i.e. within CUDA_VISIBLE_DEVICES.
func ParseDevices(spec string) ([]string, error) {
	spec = strings.TrimSpace(spec)
	switch {
	case spec == "" || spec == "cpu":
		return []string{"cpu"}, nil
	case strings.HasPrefix(spec, "cpu:"):
		n, err := strconv.Atoi(spec[4:])
		if err != nil || n < 1 || n > 256 {
			return nil, fmt.Errorf("devices %q: want cpu:N with 1 ≤ N ≤ 256", spec)
		}
		out := make([]string, n)
		for i := range out {
			out[i] = "cpu"
		}
		return out, nil
	case spec == "all":
		devs, err := nn.Devices("cuda")
		if err != nil {
			return nil, fmt.Errorf("devices all: %w", err)
		}
		if len(devs) == 0 {
			return nil, fmt.Errorf("devices all: no CUDA device found (use -devices cpu)")
		}
		var out []string
		for _, d := range devs {
			out = append(out, fmt.Sprintf("cuda:%d", d.Index))
		}
		return out, nil
	}
	var out []string
	for _, p := range strings.Split(spec, ",") {
		p = strings.TrimSpace(p)
		if _, err := strconv.Atoi(p); err == nil {
			p = "cuda:" + p
		}
		if _, _, err := nn.ParseDevice(p); err != nil {
			return nil, fmt.Errorf("devices %q: %w", spec, err)
		}
		out = append(out, p)
	}
	return out, nil
}

// EncoderBytesPerImage estimates the device memory one image's encoder
// pass needs beyond the weights (elem: bytes per activation element): the
// residual stream, the norm output, qkv and the MLP hidden layer at full
// resolution, plus the input.
func (c *Config) EncoderBytesPerImage(elem int) int64 {
	g := int64(c.GridSize())
	D, mlp := int64(c.EncoderEmbedDim), int64(c.EncoderMLPDim)
	S := int64(c.ImgSize)
	return g*g*(6*D+2*mlp)*int64(elem) + S*S*3*4
}

// WeightBytes is the size of the model's weights at elem bytes each.
func (c *Config) WeightBytes(elem int) int64 {
	var n int64
	for _, s := range c.StateDictShapes() {
		n += int64(nn.Numel(s))
	}
	return n * int64(elem)
}

// NewEngine loads the checkpoint on every device of opts.Devices. A CUDA
// device whose free memory cannot hold the weights and one image is
// skipped (with an error only if no device is left).
func NewEngine(checkpoint string, opts EngineOptions) (*Engine, error) {
	devs := opts.Devices
	if len(devs) == 0 {
		devs = []string{"cpu"}
	}
	ncpu := 0
	for _, d := range devs {
		if k, _, _ := nn.ParseDevice(d); k == "cpu" {
			ncpu++
		}
	}
	var models []*Model
	var skipped []string
	fail := func(err error) (*Engine, error) {
		for _, m := range models {
			closeModel(m)
		}
		return nil, err
	}
	// need is what a device must have free: the weights and one image's
	// activations (settled once, on the first GPU).
	var need int64
	for _, spec := range devs {
		threads := opts.Threads
		kind, idx, err := nn.ParseDevice(spec)
		if err != nil {
			return fail(err)
		}
		if kind == "cpu" && threads == 0 {
			threads = max(1, runtime.GOMAXPROCS(0)/ncpu)
		}
		if kind != "cpu" {
			if free, ok := freeMemory(kind, idx); ok {
				if need == 0 {
					cfg, err := engineConfig(checkpoint, opts.Config)
					if err != nil {
						return fail(err)
					}
					elem := 4
					if opts.Precision == "bf16" {
						elem = 2
					}
					need = cfg.WeightBytes(elem) + cfg.EncoderBytesPerImage(elem)
				}
				if free < need {
					skipped = append(skipped, fmt.Sprintf("%s (%d MiB free, needs %d MiB)", spec, free>>20, need>>20))
					continue
				}
			}
		}
		b, err := nn.Open(spec, nn.Options{Precision: opts.Precision, Threads: threads})
		if err != nil {
			return fail(fmt.Errorf("device %s: %w", spec, err))
		}
		m, err := Load(checkpoint, b, LoadOptions{Config: opts.Config})
		if err != nil {
			closeBackend(b)
			return fail(fmt.Errorf("device %s: %w", spec, err))
		}
		models = append(models, m)
	}
	if len(models) == 0 {
		return nil, fmt.Errorf("engine: no usable device: %s", strings.Join(skipped, "; "))
	}
	e, err := NewEngineFromModels(models, opts)
	if err != nil {
		return fail(err)
	}
	return e, nil
}

// engineConfig settles the config without loading weights.
func engineConfig(checkpoint string, cfg *Config) (*Config, error) {
	if cfg != nil {
		return cfg, nil
	}
	info, err := Inspect(checkpoint, nil)
	if err != nil {
		return nil, err
	}
	return &info.Config, nil
}

// freeMemory asks the kind's enumerator for a device's free memory.
func freeMemory(kind string, idx int) (int64, bool) {
	devs, err := nn.Devices(kind)
	if err != nil {
		return 0, false
	}
	for _, d := range devs {
		if d.Index == idx && d.MemoryFree > 0 {
			return d.MemoryFree, true
		}
	}
	return 0, false
}

// NewEngineFromModels builds an engine over already loaded models, one per
// device (they must share a config). The engine owns them from here on.
func NewEngineFromModels(models []*Model, opts EngineOptions) (*Engine, error) {
	if len(models) == 0 {
		return nil, errors.New("engine: no models")
	}
	e := &Engine{cfg: models[0].Config}
	per := max(1, opts.WorkersPerDevice)
	seen := map[string]int{}
	for _, m := range models {
		if !m.HasImageEncoder() {
			return nil, ErrNoEncoder
		}
		if m.Config.ImgSize != e.cfg.ImgSize || m.Config.PromptEmbedDim != e.cfg.PromptEmbedDim || m.Config.EncoderEmbedDim != e.cfg.EncoderEmbedDim {
			return nil, fmt.Errorf("engine: models differ in config")
		}
		d := &engineDevice{spec: m.backend.Name(), model: m}
		e.devices = append(e.devices, d)
		n := seen[d.spec]
		seen[d.spec]++
		for w := range per {
			wm := m
			if w > 0 {
				f, err := m.Fork(0)
				if err != nil {
					return nil, err
				}
				wm = f
			}
			name := d.spec
			if n > 0 {
				name = fmt.Sprintf("%s#%d", d.spec, n)
			}
			if per > 1 {
				name = fmt.Sprintf("%s/w%d", name, w)
			}
			e.workers = append(e.workers, &engineWorker{dev: d, model: wm, name: name, maxBatch: workerBatch(m, opts)})
		}
	}
	return e, nil
}

// backendDevice reads the device of a backend from its name ("cpu",
// "cuda:0 (NVIDIA H200, bf16)") and its activation size in bytes.
func backendDevice(b nn.Backend) (kind string, idx, elem int) {
	name := b.Name()
	if f := strings.Fields(name); len(f) > 0 {
		name = f[0]
	}
	kind, idx, err := nn.ParseDevice(name)
	if err != nil {
		kind = name
	}
	elem = 4
	if nn.PrecisionOf(b) == "bf16" {
		elem = 2
	}
	return kind, idx, elem
}

// workerBatch picks a worker's batch limit.
func workerBatch(m *Model, opts EngineOptions) int {
	if opts.MaxBatch > 0 {
		return opts.MaxBatch
	}
	kind, idx, elem := backendDevice(m.backend)
	if kind == "cpu" {
		return 1 // the CPU gains nothing from batching images
	}
	free, ok := freeMemory(kind, idx)
	if !ok {
		return 1
	}
	per := m.Config.EncoderBytesPerImage(elem)
	return int(min(8, max(1, free/2/per)))
}

// Fork returns a model sharing m's weights whose ops run on a fork of its
// backend (nn.Forker: a second stream on the same device). Closing the fork
// does not close m. A backend that cannot provide the fork's resources
// (a stream, memory) fails it with an *nn.Error, returned here.
func (m *Model) Fork(threads int) (fork *Model, err error) {
	done, err := m.use()
	if err != nil {
		return nil, err
	}
	defer done()
	f, ok := m.backend.(nn.Forker)
	if !ok {
		return nil, fmt.Errorf("backend %s cannot run a second stream", m.backend.Name())
	}
	defer nn.Catch(&err)
	c := *m
	c.backend = f.Fork(threads)
	c.file = nil
	// The fork has its own life, and ends with its parent's too.
	c.lives = append([]*lifetime{newLifetime()}, m.lives...)
	return &c, nil
}

// Config returns the engine's model config.
func (e *Engine) Config() Config { return e.cfg }

// EncoderIdentity is the Model.EncoderIdentity of the engine's models (one
// checkpoint on every device): what its embeddings carry in Embedding.Model.
func (e *Engine) EncoderIdentity() string { return e.devices[0].model.EncoderIdentity() }

// Close releases every worker's and device's model and closes the
// backends (forks first) that implement io.Closer: the engine owns them.
// It waits for the encoder passes in flight; a running EncodeStream then
// reports ErrClosed for the images it had not finished, and later calls
// return ErrClosed.
func (e *Engine) Close() error {
	e.closed.Store(true)
	var errs []error
	for _, w := range e.workers {
		if w.model != w.dev.model {
			errs = append(errs, w.model.Close(), closeBackend(w.model.backend))
		}
	}
	for _, d := range e.devices {
		errs = append(errs, closeModel(d.model))
	}
	return errors.Join(errs...)
}

// closeModel closes a model the engine owns, and its backend.
func closeModel(m *Model) error {
	return errors.Join(m.Close(), closeBackend(m.backend))
}

// closeBackend closes backends that hold resources (GPU memory, streams).
func closeBackend(b nn.Backend) error {
	if c, ok := b.(io.Closer); ok {
		return c.Close()
	}
	return nil
}

// WorkerStats reports one worker's share of the work.
type WorkerStats struct {
	Worker    string  `json:"worker"`
	Images    int     `json:"images"`
	BusySec   float64 `json:"busy_seconds"`
	PerSecond float64 `json:"images_per_second"` // images / busy time
	MaxBatch  int     `json:"max_batch"`
	Retired   string  `json:"retired,omitempty"` // why the worker stopped taking work
}

// Stats reports per-worker throughput since the engine was created.
func (e *Engine) Stats() []WorkerStats {
	var out []WorkerStats
	for _, w := range e.workers {
		w.mu.Lock()
		s := WorkerStats{Worker: w.name, Images: w.images, BusySec: w.busy.Seconds(), MaxBatch: w.maxBatch}
		if w.busy > 0 {
			s.PerSecond = float64(w.images) / w.busy.Seconds()
		}
		if w.retired != nil {
			s.Retired = w.retired.Error()
		}
		w.mu.Unlock()
		out = append(out, s)
	}
	return out
}

// EncodeResult is one image's outcome.
type EncodeResult struct {
	Index     int
	Embedding *Embedding
	Err       error
	Worker    string
	Elapsed   time.Duration // the batch's encoder time
}

// Source yields image i of n; it is called from several goroutines.
type Source func(ctx context.Context, i int) (*imgproc.RGB, error)

// Encode encodes images in memory and returns their embeddings in order;
// the first failure is returned (with the image index).
func (e *Engine) Encode(ctx context.Context, imgs []*imgproc.RGB) ([]*Embedding, error) {
	out := make([]*Embedding, len(imgs))
	var firstErr error
	err := e.EncodeStream(ctx, len(imgs), func(_ context.Context, i int) (*imgproc.RGB, error) { return imgs[i], nil },
		func(r EncodeResult) {
			if r.Err != nil {
				if firstErr == nil {
					firstErr = fmt.Errorf("image %d: %w", r.Index, r.Err)
				}
				return
			}
			out[r.Index] = r.Embedding
		})
	if err != nil {
		return nil, err
	}
	if firstErr != nil {
		return nil, firstErr
	}
	return out, nil
}

// item is one preprocessed image on its way to a device.
type item struct {
	index          int
	input          []float32 // (S, S, 3)
	origH, origW   int
	inputH, inputW int
}

// EncodeStream encodes n images from src. Images are decoded and
// preprocessed on CPU goroutines ahead of the devices; done receives every
// image's result exactly once (from the engine's goroutines, one call at a
// time, in completion order: use Index). It returns when every image is
// done, or early with ctx's error when ctx is cancelled (images not done by
// then get no result).
func (e *Engine) EncodeStream(ctx context.Context, n int, src Source, done func(EncodeResult)) error {
	if e.closed.Load() {
		return ErrClosed
	}
	parent := ctx
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()

	// At most `ahead` images are decoded but not yet finished: a slot is
	// taken before an image is prepared and given back with its result.
	ahead := 0
	for _, w := range e.workers {
		ahead += 2 * w.maxBatch
	}
	slots := make(chan struct{}, max(ahead, 2))
	var doneMu sync.Mutex
	report := func(r EncodeResult) {
		doneMu.Lock()
		done(r)
		doneMu.Unlock()
		<-slots
	}
	q := newQueue(n)

	// Producers: decode and preprocess.
	next := make(chan int)
	go func() {
		defer close(next)
		for i := range n {
			select {
			case next <- i:
			case <-ctx.Done():
				return
			}
		}
	}()
	var prod sync.WaitGroup
	for range max(1, min(runtime.GOMAXPROCS(0), n)) {
		prod.Add(1)
		go func() {
			defer prod.Done()
			for i := range next {
				select {
				case slots <- struct{}{}:
				case <-ctx.Done():
					return
				}
				it, err := e.prepare(ctx, src, i)
				if err != nil {
					report(EncodeResult{Index: i, Err: err})
					q.finish(1)
					continue
				}
				if !q.push(it) {
					report(e.noDevice(i))
				}
			}
		}()
	}

	// Workers.
	var wg sync.WaitGroup
	for _, w := range e.workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			e.work(ctx, w, q, report)
		}()
	}
	wg.Wait()
	if err := parent.Err(); err != nil {
		cancel()
		prod.Wait()
		return err
	}
	// The workers are gone: either every image is done, or every device
	// retired and what is left fails (producers still running report
	// theirs when the closed queue refuses them).
	for _, it := range q.close() {
		report(e.noDevice(it.index))
	}
	prod.Wait()
	return nil
}

func (e *Engine) noDevice(i int) EncodeResult {
	if e.closed.Load() {
		return EncodeResult{Index: i, Err: ErrClosed}
	}
	return EncodeResult{Index: i, Err: fmt.Errorf("no device left to encode it: %w", e.retiredErr())}
}

func (e *Engine) retiredErr() error {
	var errs []error
	for _, w := range e.workers {
		w.mu.Lock()
		if w.retired != nil {
			errs = append(errs, fmt.Errorf("%s: %w", w.name, w.retired))
		}
		w.mu.Unlock()
	}
	return errors.Join(errs...)
}

// prepare decodes and preprocesses image i.
func (e *Engine) prepare(ctx context.Context, src Source, i int) (*item, error) {
	img, err := src(ctx, i)
	if err != nil {
		return nil, err
	}
	if err := img.Validate(); err != nil {
		return nil, err
	}
	S := e.cfg.ImgSize
	r := imgproc.ResizeLongestSide(img, S)
	in, err := imgproc.Normalize(r, S, e.cfg.PixelMean, e.cfg.PixelStd)
	if err != nil {
		return nil, err
	}
	return &item{index: i, input: in, origH: img.H, origW: img.W, inputH: r.H, inputW: r.W}, nil
}

// work is one worker's loop: take a batch, encode it, report, repeat.
func (e *Engine) work(ctx context.Context, w *engineWorker, q *queue, report func(EncodeResult)) {
	for {
		if ctx.Err() != nil {
			return
		}
		batch := q.pop(ctx, w.chunk(e, q))
		if batch == nil {
			return
		}
		if err := e.encodeBatch(ctx, w, batch, report); err != nil {
			w.mu.Lock()
			w.retired = err
			w.mu.Unlock()
			if errors.Is(err, ErrClosed) {
				// Closed under us: no device will take these.
				for _, it := range batch {
					report(EncodeResult{Index: it.index, Err: err, Worker: w.name})
				}
				q.finish(len(batch))
				return
			}
			// The device failed (not the images): hand them to the others.
			q.requeue(batch)
			return
		}
		q.finish(len(batch))
	}
}

// chunk is how many images w takes now: its batch limit, or near the end
// its share of the queue by measured speed.
func (w *engineWorker) chunk(e *Engine, q *queue) int {
	w.mu.Lock()
	limit, mine := w.maxBatch, w.speed
	w.mu.Unlock()
	var total float64
	known := true
	for _, o := range e.workers {
		o.mu.Lock()
		if o.retired == nil {
			if o.speed == 0 {
				known = false
			}
			total += o.speed
		}
		o.mu.Unlock()
	}
	if !known || total == 0 {
		return limit
	}
	share := int(math.Ceil(float64(q.queued()) * mine / total))
	return max(1, min(limit, share))
}

// encodeBatch encodes a batch on w; out-of-memory splits it. A returned
// error means the device is unusable (the batch was not reported).
func (e *Engine) encodeBatch(ctx context.Context, w *engineWorker, batch []*item, report func(EncodeResult)) error {
	S := e.cfg.ImgSize
	in := make([]float32, 0, len(batch)*S*S*3)
	for _, it := range batch {
		in = append(in, it.input...)
	}
	t0 := time.Now()
	feats, err := w.model.EncodeInput(ctx, in, len(batch), nil)
	el := time.Since(t0)
	switch {
	case err == nil:
	case errors.Is(err, nn.ErrOutOfMemory) && len(batch) > 1:
		h := (len(batch) + 1) / 2
		w.mu.Lock()
		w.maxBatch = max(1, min(w.maxBatch, h))
		w.mu.Unlock()
		if err := e.encodeBatch(ctx, w, batch[:h], report); err != nil {
			return err
		}
		return e.encodeBatch(ctx, w, batch[h:], report)
	case errors.Is(err, nn.ErrOutOfMemory):
		report(EncodeResult{Index: batch[0].index, Err: err, Worker: w.name})
		return nil
	case ctx.Err() != nil:
		for _, it := range batch {
			report(EncodeResult{Index: it.index, Err: ctx.Err(), Worker: w.name})
		}
		return nil
	default:
		return err
	}
	w.mu.Lock()
	w.images += len(batch)
	w.busy += el
	rate := float64(len(batch)) / el.Seconds()
	if w.speed == 0 {
		w.speed = rate
	} else {
		w.speed = 0.7*w.speed + 0.3*rate
	}
	w.mu.Unlock()
	for i, it := range batch {
		f := feats[i] // f.Model is set by EncodeInput
		f.ImgSize, f.OriginalH, f.OriginalW, f.InputH, f.InputW = S, it.origH, it.origW, it.inputH, it.inputW
		report(EncodeResult{Index: it.index, Embedding: f, Worker: w.name, Elapsed: el})
	}
	return nil
}

// queue hands preprocessed images to workers. It knows how many images
// are still owed (not yet finished), so workers can tell "wait for the
// producers" from "all done".
type queue struct {
	mu      sync.Mutex
	cond    *sync.Cond
	items   []*item
	pending int  // images not yet finished (queued, being prepared or in flight)
	closed  bool // no worker is left: push refuses
}

func newQueue(n int) *queue {
	q := &queue{pending: n}
	q.cond = sync.NewCond(&q.mu)
	return q
}

// push queues an image; false if the queue is closed.
func (q *queue) push(it *item) bool {
	q.mu.Lock()
	if q.closed {
		q.mu.Unlock()
		return false
	}
	q.items = append(q.items, it)
	q.mu.Unlock()
	q.cond.Broadcast()
	return true
}

// requeue puts a failed worker's batch back at the front, in order.
func (q *queue) requeue(batch []*item) {
	q.mu.Lock()
	q.items = append(append([]*item{}, batch...), q.items...)
	sort.SliceStable(q.items, func(i, j int) bool { return q.items[i].index < q.items[j].index })
	q.mu.Unlock()
	q.cond.Broadcast()
}

// finish marks n images done.
func (q *queue) finish(n int) {
	q.mu.Lock()
	q.pending -= n
	q.mu.Unlock()
	q.cond.Broadcast()
}

// pop takes up to k images, waiting while some are still being prepared;
// nil when everything is done or ctx is cancelled.
func (q *queue) pop(ctx context.Context, k int) []*item {
	stop := context.AfterFunc(ctx, q.cond.Broadcast)
	defer stop()
	q.mu.Lock()
	defer q.mu.Unlock()
	for len(q.items) == 0 {
		if q.pending <= 0 || ctx.Err() != nil {
			return nil
		}
		q.cond.Wait()
	}
	k = min(k, len(q.items))
	out := q.items[:k:k]
	q.items = q.items[k:]
	return out
}

func (q *queue) queued() int {
	q.mu.Lock()
	defer q.mu.Unlock()
	return len(q.items)
}

// close refuses further pushes and returns what is still queued.
func (q *queue) close() []*item {
	q.mu.Lock()
	defer q.mu.Unlock()
	q.closed = true
	out := q.items
	q.items = nil
	return out
}
