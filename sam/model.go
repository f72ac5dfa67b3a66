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

	"github.com/samgo/samgo/sam/checkpoint"
	"github.com/samgo/samgo/sam/nn"
)

// Model is a loaded SAM: weights resident on one backend. A Model is safe
// for concurrent use only if its backend is; Predictors share it.
type Model struct {
	Config  Config
	Path    string // the checkpoint it was loaded from
	Format  checkpoint.Format
	Layout  string // "official" or "huggingface" key names
	backend nn.Backend

	enc *imageEncoder // nil for decoder-only checkpoints
	pe  *promptEncoder
	dec *maskDecoder

	file *checkpoint.File // kept open: CPU weights may be views into its mapping
}

// Backend returns the backend the model runs on.
func (m *Model) Backend() nn.Backend { return m.backend }

// HasImageEncoder reports whether the model can encode images itself.
func (m *Model) HasImageEncoder() bool { return m.enc != nil }

// Close releases the weights and the checkpoint mapping.
func (m *Model) Close() error {
	if m.file == nil {
		return nil
	}
	err := m.file.Close()
	m.file = nil
	return err
}

// LoadOptions tune Load.
type LoadOptions struct {
	// Config, when set, is used instead of the one inferred from the tensor
	// shapes (needed for what shapes cannot tell, e.g. the decoder's head
	// count of a non-official model); the checkpoint must match it exactly.
	Config *Config
}

// Errors callers can branch on.
var (
	ErrCheckpoint = errors.New("bad checkpoint")
	ErrNoEncoder  = errors.New("model has no image encoder (decoder-only checkpoint): set an embedding instead")
)

// Load reads a checkpoint (.pth or .safetensors, official or Hugging Face
// key names, F32/F16/BF16) and uploads the weights to backend b.
func Load(path string, b nn.Backend, opts LoadOptions) (m *Model, err error) {
	ck, err := openCheckpoint(path, opts.Config)
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
	return m, nil
}

// build constructs the modules from a weight source.
func build(cfg *Config, b nn.Backend, path string, src weightSource) (m *Model, err error) {
	m = &Model{Config: *cfg, Path: path, backend: b}
	w := &weights{b: b, path: path, src: src}
	defer nn.Catch(&err)
	if cfg.HasImageEncoder {
		m.enc = newImageEncoder(w, &m.Config)
	}
	m.pe = newPromptEncoder(w, &m.Config)
	m.dec = newMaskDecoder(w, &m.Config)
	if w.err != nil {
		return nil, w.err
	}
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
}

// Inspect reads a checkpoint's header, infers (or checks cfg against) its
// config, and returns what it found.
func Inspect(path string, cfg *Config) (*CheckpointInfo, error) {
	ck, err := openCheckpoint(path, cfg)
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
// settles the config: cfg if given (checked against the shapes), else
// inferred from them.
func openCheckpoint(path string, cfg *Config) (*openedCheckpoint, error) {
	f, err := checkpoint.Open(path)
	if err != nil {
		return nil, fmt.Errorf("load %s: %w", path, err)
	}
	fail := func(err error) (*openedCheckpoint, error) {
		f.Close()
		return nil, fmt.Errorf("load %s: %w", path, err)
	}
	tensors, layout, err := officialTensors(f)
	if err != nil {
		return fail(err)
	}
	info := &CheckpointInfo{Path: path, Format: f.Format, Layout: layout, SizeBytes: f.Size, Tensors: len(tensors), DTypes: map[string]int{}}
	shapes := make(map[string][]int, len(tensors))
	for k, t := range tensors {
		shapes[k] = t.Shape
		info.Parameters += int64(t.Numel())
		info.DTypes[string(t.DType)]++
	}
	if cfg != nil {
		info.Config = *cfg
		if err := info.Config.Validate(); err != nil {
			return fail(err)
		}
	} else if info.Config, err = InferConfig(shapes); err != nil {
		return fail(fmt.Errorf("%w: %w", ErrCheckpoint, err))
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
// error sticks and later calls return nil.
type weights struct {
	b    nn.Backend
	path string
	src  weightSource
	err  error
}

// host returns a tensor's values as float32 (nil after the first error).
func (w *weights) host(name string) []float32 {
	if w.err != nil {
		return nil
	}
	if _, ok := w.src.shape(name); !ok {
		w.err = fmt.Errorf("load %s: %w: tensor %q missing", w.path, ErrCheckpoint, name)
		return nil
	}
	v, err := w.src.values(name)
	if err != nil {
		w.err = fmt.Errorf("load %s: %w", w.path, err)
		return nil
	}
	return v
}

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
