// Package sam is Meta's Segment Anything Model, written once against the ops
// of package sam/nn so that it runs on any backend (sam/nn/cpu, the pure-Go
// reference; sam/nn/gpu, CUDA).
//
// The files mirror segment_anything/modeling: image_encoder.go
// (ImageEncoderViT), prompt_encoder.go (PromptEncoder), mask_decoder.go
// (MaskDecoder), transformer.go (TwoWayTransformer); predictor.go is
// SamPredictor, the API Go programs use.
package sam

import (
	"errors"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"strings"
	"sync"

	"github.com/samgo/samgo/sam/checkpoint"
	"github.com/samgo/samgo/sam/nn"
)

// Model is a loaded SAM: weights resident on one backend. A Model is safe
// for concurrent use only if its backend is; Predictors share it.
//
// Close ends a model's life: every call after it (on the model, its forks
// and its Predictors) returns ErrClosed, and Close first waits for the
// calls in flight, so a server may close a model while requests run.
type Model struct {
	Config  Config
	Path    string // the checkpoint it was loaded from
	Format  checkpoint.Format
	Layout  string // "official" or "huggingface" key names
	backend nn.Backend

	// ConfigSource says where Config came from: "given" (LoadOptions.Config,
	// NewRandom), the path of the config file read, or "shapes" (inferred
	// from the tensor shapes). Assumed lists, as "key=value", the values
	// that neither a config nor the shapes settled and that were given the
	// official value (see CheckpointInfo.Assumed).
	ConfigSource string
	Assumed      []string

	enc encoder // image encoder (ViT or TinyViT); nil for decoder-only checkpoints
	pe  *promptEncoder
	dec *maskDecoder

	id, encID string // Identity, EncoderIdentity

	// lives[0] is this model's own lifetime; a fork also lists its
	// parent's, whose weights it uses.
	lives []*lifetime
	file  *checkpoint.File // kept open: CPU weights may be views into its mapping
}

// ErrClosed marks a call on a closed model (or on a Predictor of one).
var ErrClosed = errors.New("model is closed")

// Backend returns the backend the model runs on.
func (m *Model) Backend() nn.Backend { return m.backend }

// HasImageEncoder reports whether the model can encode images itself.
func (m *Model) HasImageEncoder() bool { return m.enc != nil }

// Identity identifies the model's weights: the first 24 hex digits (96
// bits) of a SHA-256 over its config (every field but Name) and every
// weight tensor's name, shape and float32 values as loaded (so the same
// weights in .pth or .safetensors, under official or Hugging Face names,
// have one identity; F16 or BF16 copies of them another). It names what
// produced an output: masks and AMG records depend on every weight. It is
// computed once, while the weights load.
func (m *Model) Identity() string { return m.id }

// EncoderIdentity identifies what the image encoder computes: the same
// kind of hash over the config fields that shape an embedding (input size,
// patch size, pixel mean/std, the encoder's hyper-parameters and the
// prompt dimension) and the image encoder's weights only, so that models
// sharing an encoder (a fine-tuned decoder) share it. Embedding.Model holds
// it. It is "" for a decoder-only model, which cannot tell which encoder
// its embeddings must come from.
func (m *Model) EncoderIdentity() string { return m.encID }

// Close waits for the calls in flight, then releases the weights and the
// checkpoint mapping; later calls return ErrClosed. Closing a fork (Fork)
// does not close its parent; closing the parent ends its forks too.
// Closing twice is harmless.
func (m *Model) Close() error {
	if m == nil || len(m.lives) == 0 || !m.lives[0].close() {
		return nil
	}
	if m.file == nil {
		return nil
	}
	err := m.file.Close()
	m.file = nil
	return err
}

// use marks a call in flight on m's weights (Close waits for it) and
// returns the function that ends it; ErrClosed once m (or the model it is
// a fork of) is closed.
func (m *Model) use() (done func(), err error) {
	if m == nil || len(m.lives) == 0 {
		return nil, fmt.Errorf("%w: no model (nil, or not made by Load, NewRandom or Fork)", ErrClosed)
	}
	for i, l := range m.lives {
		if !l.enter() {
			for _, e := range m.lives[:i] {
				e.exit()
			}
			return nil, ErrClosed
		}
	}
	return func() {
		for _, l := range m.lives {
			l.exit()
		}
	}, nil
}

// lifetime counts the calls using a model's weights, so that Close can
// wait for them. A count rather than an RWMutex: calls nest (SetImage
// encodes, then uploads), and a nested read lock deadlocks once a Close
// is waiting.
type lifetime struct {
	mu     sync.Mutex
	idle   sync.Cond // signalled when calls drops to 0
	calls  int
	closed bool
}

func newLifetime() *lifetime {
	l := &lifetime{}
	l.idle.L = &l.mu
	return l
}

// enter counts a call in; false once closed.
func (l *lifetime) enter() bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.closed {
		return false
	}
	l.calls++
	return true
}

// exit counts a call out.
func (l *lifetime) exit() {
	l.mu.Lock()
	l.calls--
	if l.calls == 0 {
		l.idle.Broadcast()
	}
	l.mu.Unlock()
}

// close refuses new calls, waits for those in flight and reports whether
// it was the first close.
func (l *lifetime) close() bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	first := !l.closed
	l.closed = true
	for l.calls > 0 {
		l.idle.Wait()
	}
	return first
}

// LoadOptions tune Load. The config is settled in this order: Config if
// set; else ConfigFile if set; else the config.json beside the checkpoint
// if there is one (unless NoConfigFile); else it is inferred from the
// tensor shapes. A config file that cannot be read or names an unknown key
// is an error (it was meant for this checkpoint). The checkpoint must match
// the config exactly.
type LoadOptions struct {
	// Config is used as is (needed for what shapes cannot tell, e.g. the
	// decoder's head count of a non-official model).
	Config *Config
	// ConfigFile is a JSON config (ReadConfig) to use when Config is nil.
	ConfigFile string
	// NoConfigFile ignores a config.json beside the checkpoint.
	NoConfigFile bool
}

// ConfigFileName is the config Load looks for beside a checkpoint.
const ConfigFileName = "config.json"

// Errors callers can branch on.
var (
	ErrCheckpoint = errors.New("bad checkpoint")
	ErrNoEncoder  = errors.New("model has no image encoder (decoder-only checkpoint): set an embedding instead")
)

// Load reads a checkpoint (.pth or .safetensors, official or Hugging Face
// key names, F32/F16/BF16), settles its config (see LoadOptions) and
// uploads the weights to backend b.
func Load(path string, b nn.Backend, opts LoadOptions) (m *Model, err error) {
	ck, err := openCheckpoint(path, opts)
	if err != nil {
		return nil, err
	}
	defer func() {
		if err != nil {
			ck.file.Close()
		}
	}()
	cfg := ck.info.Config
	m, err = build(&cfg, b, path, checkpointSource(ck.tensors))
	if err != nil {
		return nil, err
	}
	m.Format, m.Layout, m.file = ck.file.Format, ck.info.Layout, ck.file
	m.ConfigSource, m.Assumed = ck.info.ConfigSource, ck.info.Assumed
	return m, nil
}

// build constructs the modules from a weight source.
func build(cfg *Config, b nn.Backend, path string, src weightSource) (m *Model, err error) {
	m = &Model{Config: *cfg, Path: path, backend: b, ConfigSource: "given", lives: []*lifetime{newLifetime()}}
	w := &weights{b: b, path: path, src: src, digests: map[string][]byte{}}
	defer w.wait()
	defer nn.Catch(&err)
	if cfg.HasImageEncoder {
		m.enc = newEncoder(w, &m.Config)
	}
	m.pe = newPromptEncoder(w, &m.Config)
	m.dec = newMaskDecoder(w, &m.Config)
	w.wait()
	if w.err != nil {
		return nil, w.err
	}
	m.id, m.encID = identities(&m.Config, w.digests)
	return m, nil
}

// CheckpointInfo describes a checkpoint without loading its weights.
type CheckpointInfo struct {
	Path       string            `json:"path"`
	Format     checkpoint.Format `json:"format"`
	Layout     string            `json:"layout"`
	SizeBytes  int64             `json:"size_bytes"`
	Tensors    int               `json:"tensors"`
	Parameters int64             `json:"parameters"`
	DTypes     map[string]int    `json:"dtypes"`
	Config     Config            `json:"config"`
	// ConfigSource is where Config came from: "given", a config file's
	// path, or "shapes" (inferred from the tensor shapes).
	ConfigSource string `json:"config_source"`
	// Assumed lists, as "key=value", the hyper-parameters that neither a
	// config nor the tensor shapes settled and that were given the
	// official value: decoder_num_heads always (no shape shows it); for an
	// encoder without rel-pos tables also encoder_num_heads,
	// encoder_window_size and encoder_global_attn_indexes; for a
	// decoder-only checkpoint img_size and patch_size. A config file
	// settles the keys it names; a given Config settles everything.
	// (Layer-norm eps values, pixel mean/std and the mask threshold are
	// always the official constants unless a config says otherwise, and are
	// not listed.)
	Assumed []string `json:"assumed,omitempty"`
	// Ignored counts the tensors left out (IgnoredTensor: a MobileSAM
	// checkpoint's BatchNorm counters and classifier head); Tensors and
	// Parameters count the others.
	Ignored int `json:"ignored_tensors,omitempty"`
}

// Inspect reads a checkpoint's header, settles its config as Load does
// with LoadOptions{Config: cfg} (cfg nil: a config.json beside the
// checkpoint, else the shapes) and returns what it found.
func Inspect(path string, cfg *Config) (*CheckpointInfo, error) {
	return InspectWith(path, LoadOptions{Config: cfg})
}

// InspectWith is Inspect with every option of Load.
func InspectWith(path string, opts LoadOptions) (*CheckpointInfo, error) {
	ck, err := openCheckpoint(path, opts)
	if err != nil {
		return nil, err
	}
	ck.file.Close()
	return ck.info, nil
}

type openedCheckpoint struct {
	file    *checkpoint.File
	tensors map[string]*checkpoint.Tensor // by official name
	info    *CheckpointInfo
}

// openCheckpoint opens path, maps key names to the official ones and
// settles the config (see LoadOptions).
func openCheckpoint(path string, opts LoadOptions) (*openedCheckpoint, error) {
	f, err := checkpoint.Open(path)
	if err != nil {
		return nil, fmt.Errorf("load: %w", err) // checkpoint's errors name the file
	}
	fail := func(err error) (*openedCheckpoint, error) {
		f.Close()
		return nil, fmt.Errorf("load %s: %w", path, err)
	}
	tensors, layout, err := officialTensors(f)
	if err != nil {
		return fail(err)
	}
	info := &CheckpointInfo{Path: path, Format: f.Format, Layout: layout, SizeBytes: f.Size, DTypes: map[string]int{}}
	for k, t := range tensors {
		if !IgnoredTensor(k) {
			continue
		}
		if strings.HasSuffix(k, ".attention_bias_idxs") {
			v, err := t.Float32()
			if err == nil {
				err = checkBiasIdxs(t.Shape, v)
			}
			if err != nil {
				return fail(fmt.Errorf("%w: %s: %w", ErrCheckpoint, k, err))
			}
		}
		delete(tensors, k)
		info.Ignored++
	}
	info.Tensors = len(tensors)
	shapes := make(map[string][]int, len(tensors))
	for k, t := range tensors {
		shapes[k] = t.Shape
		info.Parameters += int64(t.Numel())
		info.DTypes[string(t.DType)]++
	}
	if err := settleConfig(info, path, opts, shapes); err != nil {
		return fail(err)
	}
	if err := info.Config.CheckShapes(shapes); err != nil {
		return fail(err)
	}
	for k, t := range tensors {
		switch t.DType {
		case checkpoint.F32, checkpoint.F16, checkpoint.BF16:
		default:
			return fail(fmt.Errorf("%w: tensor %q has dtype %s (want F32, F16 or BF16)", checkpoint.ErrDType, k, t.DType))
		}
	}
	return &openedCheckpoint{file: f, tensors: tensors, info: info}, nil
}

// settleConfig fills info.Config, ConfigSource and Assumed (see
// LoadOptions for the order).
func settleConfig(info *CheckpointInfo, path string, opts LoadOptions, shapes map[string][]int) error {
	if opts.Config != nil {
		info.Config, info.ConfigSource = *opts.Config, "given"
		return info.Config.Validate()
	}
	file := opts.ConfigFile
	if file == "" && !opts.NoConfigFile {
		side := filepath.Join(filepath.Dir(path), ConfigFileName)
		if _, err := os.Stat(side); err == nil {
			file = side
		}
	}
	if file == "" {
		c, assumed, err := inferConfig(shapes)
		if err != nil {
			return fmt.Errorf("%w: %w", ErrCheckpoint, err)
		}
		info.Config, info.ConfigSource, info.Assumed = c, "shapes", assumed
		return nil
	}
	b, err := os.ReadFile(file)
	if err != nil {
		return fmt.Errorf("read config: %w", err)
	}
	c, given, err := parseConfig(b)
	if err != nil {
		return fmt.Errorf("config %s: %w", file, err)
	}
	info.Config, info.ConfigSource = c, file
	for _, k := range invisibleKeys(&c) {
		if !given[k] {
			info.Assumed = append(info.Assumed, k+"="+configValue(&c, k))
		}
	}
	return nil
}

// checkBiasIdxs checks a stored attention_bias_idxs (N, N) buffer: for a
// ws×ws window (N = ws²) entry (i, j) must be |Δy|·ws + |Δx| of tokens i
// and j, the offset numbering nn.OffsetBias uses.
func checkBiasIdxs(shape []int, v []float32) error {
	if len(shape) != 2 || shape[0] != shape[1] {
		return fmt.Errorf("shape %v, want (N, N)", shape)
	}
	N := shape[0]
	ws := int(math.Round(math.Sqrt(float64(N))))
	if ws*ws != N {
		return fmt.Errorf("%d tokens: not a square window", N)
	}
	abs := func(a int) int { return max(a, -a) }
	for i := range N {
		for j := range N {
			if want := abs(i/ws-j/ws)*ws + abs(i%ws-j%ws); v[i*N+j] != float32(want) {
				return fmt.Errorf("entry (%d, %d) is %v, want |Δy|·ws + |Δx| = %d", i, j, v[i*N+j], want)
			}
		}
	}
	return nil
}

// WeightTensor is a tensor given by value: its shape and row-major float32
// data (LoadWeights).
type WeightTensor struct {
	Shape []int
	Data  []float32
}

// LoadWeights is Load on tensors held in memory under official state-dict
// names (as torch's state_dict() names them): the same steps after the
// file is read (ignored tensors, the config settled from opts or inferred
// from the shapes, the shapes checked, BatchNorm folded, TinyViT's qkv
// permuted). name stands for the path (Model.Path; a ConfigFile is read,
// a config.json beside name is not looked for). The model keeps the data
// slices (the CPU backend may use them in place): do not modify them.
func LoadWeights(name string, ts map[string]WeightTensor, b nn.Backend, opts LoadOptions) (*Model, error) {
	opts.NoConfigFile = true
	info := &CheckpointInfo{Path: name, Layout: "official", DTypes: map[string]int{}}
	src := mapSource{}
	shapes := map[string][]int{}
	for k, t := range ts {
		if IgnoredTensor(k) {
			info.Ignored++
			continue
		}
		if nn.Numel(t.Shape) != len(t.Data) {
			return nil, fmt.Errorf("load %s: %w: tensor %q has %d values for shape %v", name, ErrCheckpoint, k, len(t.Data), t.Shape)
		}
		src[k] = t
		shapes[k] = t.Shape
		info.Parameters += int64(len(t.Data))
	}
	info.Tensors = len(src)
	info.DTypes["F32"] = len(src)
	if err := settleConfig(info, name, opts, shapes); err != nil {
		return nil, fmt.Errorf("load %s: %w", name, err)
	}
	if err := info.Config.CheckShapes(shapes); err != nil {
		return nil, fmt.Errorf("load %s: %w", name, err)
	}
	cfg := info.Config
	m, err := build(&cfg, b, name, src)
	if err != nil {
		return nil, err
	}
	m.Layout, m.ConfigSource, m.Assumed = info.Layout, info.ConfigSource, info.Assumed
	return m, nil
}

// mapSource serves tensors held in memory.
type mapSource map[string]WeightTensor

func (s mapSource) shape(name string) ([]int, bool) {
	t, ok := s[name]
	return t.Shape, ok
}

func (s mapSource) values(name string) ([]float32, error) { return s[name].Data, nil }

// officialTensors returns the checkpoint's tensors under official key names.
func officialTensors(f *checkpoint.File) (map[string]*checkpoint.Tensor, string, error) {
	names := f.Names()
	out := make(map[string]*checkpoint.Tensor, len(names))
	if !IsHFLayout(names) {
		for _, n := range names {
			out[n], _ = f.Tensor(n)
		}
		return out, "official", nil
	}
	from := map[string]string{}
	for _, n := range names {
		o, ok := OfficialKey(n)
		if !ok {
			continue // HF-only buffers with no official counterpart
		}
		if prev, dup := from[o]; dup {
			return nil, "", fmt.Errorf("%w: %q and %q both map to %q", ErrCheckpoint, prev, n, o)
		}
		from[o] = n
		out[o], _ = f.Tensor(n)
	}
	return out, "huggingface", nil
}

// weightSource yields tensors by official name: a checkpoint, or random
// values for benchmarks and shape tests.
type weightSource interface {
	shape(name string) ([]int, bool)
	values(name string) ([]float32, error)
}

// checkpointSource serves a checkpoint's tensors.
type checkpointSource map[string]*checkpoint.Tensor

func (c checkpointSource) shape(name string) ([]int, bool) {
	t, ok := c[name]
	if !ok {
		return nil, false
	}
	return t.Shape, true
}

func (c checkpointSource) values(name string) ([]float32, error) { return c[name].Float32() }

// weights hands tensors to the backend during construction; the first
// error sticks and later calls return nil. It also hashes every tensor it
// hands out (for Identity), on background goroutines.
type weights struct {
	b    nn.Backend
	path string
	src  weightSource
	err  error

	hashing sync.WaitGroup
	mu      sync.Mutex
	digests map[string][]byte // tensor name → tensorDigest
}

// host returns a tensor's values as float32 (nil after the first error).
func (w *weights) host(name string) []float32 {
	if w.err != nil {
		return nil
	}
	shape, ok := w.src.shape(name)
	if !ok {
		w.err = fmt.Errorf("load %s: %w: tensor %q missing", w.path, ErrCheckpoint, name)
		return nil
	}
	v, err := w.src.values(name)
	if err != nil {
		w.err = fmt.Errorf("load %s: %w", w.path, err)
		return nil
	}
	w.hash(name, shape, v)
	return v
}

// hash digests a tensor in the background; v must not change afterwards
// (what UploadWeight promises too).
func (w *weights) hash(name string, shape []int, v []float32) {
	w.hashing.Add(1)
	hashSlots <- struct{}{}
	go func() {
		defer w.hashing.Done()
		d := tensorDigest(name, shape, v)
		<-hashSlots
		w.mu.Lock()
		w.digests[name] = d
		w.mu.Unlock()
	}()
}

// wait waits for the digests.
func (w *weights) wait() { w.hashing.Wait() }

// shapeOf returns a tensor's stored shape.
func (w *weights) shapeOf(name string) []int {
	s, _ := w.src.shape(name)
	return s
}

// get uploads a tensor with its stored shape; nil after an error.
func (w *weights) get(name string) nn.Tensor {
	v := w.host(name)
	if v == nil {
		return nil
	}
	return w.b.UploadWeight(v, w.shapeOf(name)...)
}

// view reshapes t and hands t's reference to the view (t must not be used
// afterwards): a Reshape is a new reference to the same memory, and each
// reference is released on its own.
func view(b nn.Backend, t nn.Tensor, shape ...int) nn.Tensor {
	v := b.Reshape(t, shape...)
	b.Release(t)
	return v
}

// linear is a torch nn.Linear: w (out, in), b (out).
type linear struct{ w, b nn.Tensor }

func (w *weights) linear(prefix string) linear {
	return linear{w.get(prefix + ".weight"), w.get(prefix + ".bias")}
}

func (l linear) forward(b nn.Backend, x nn.Tensor, act nn.Act) nn.Tensor {
	return b.Linear(x, l.w, l.b, act)
}

// norm is a LayerNorm (or LayerNorm2d on channels-last maps).
type norm struct {
	w, b nn.Tensor
	eps  float32
}

func (w *weights) norm(prefix string, eps float32) norm {
	return norm{w.get(prefix + ".weight"), w.get(prefix + ".bias"), eps}
}

func (n norm) forward(b nn.Backend, x nn.Tensor) nn.Tensor { return b.LayerNorm(x, n.w, n.b, n.eps) }

// addForward returns LayerNorm(x + r) (the residual sum itself is dropped).
func (n norm) addForward(b nn.Backend, x, r nn.Tensor) nn.Tensor {
	sum, out := b.AddLayerNorm(x, r, n.w, n.b, n.eps)
	b.Release(sum)
	return out
}
