package nn

// Scope frees a piece of graph code's intermediates together, so that the
// code reads like the paper's figure instead of a Release after every op
// (ggml allocates a graph's intermediates from one arena; PyTorch frees a
// tensor with its last reference). A Scope is a Backend: every tensor its
// ops return is remembered, and Close releases all of them except those
// passed to Keep.
//
//	func (blk *block) forward(b nn.Backend, x nn.Tensor) nn.Tensor {
//		s := nn.NewScope(b)
//		defer s.Close()
//		h := s.LayerNorm(x, blk.w, blk.b, 1e-6) // freed by Close
//		...
//		return s.Keep(out) // survives Close
//	}
//
// Scopes nest: a scope made from a scope runs its ops on the same root
// backend, and what it keeps passes to the enclosing scope, which frees it
// at its own Close unless it keeps it too. Tensors a scope did not create
// (its inputs, weights) are never released by it. Release through a scope
// frees at once and forgets the tensor. A Scope is for one goroutine.
type Scope struct {
	root   Backend
	parent *Scope
	owned  []Tensor
}

// NewScope opens a scope on b (a backend or an enclosing scope).
func NewScope(b Backend) *Scope {
	if p, ok := b.(*Scope); ok {
		return &Scope{root: p.root, parent: p}
	}
	return &Scope{root: b}
}

// Keep hands t (a result of this scope's ops) to the enclosing scope, or to
// the caller when there is none, and returns it. A tensor the scope did not
// create (an input returned as it is) stays whoever's it was.
func (s *Scope) Keep(t Tensor) Tensor {
	if s.forget(t) && s.parent != nil {
		s.parent.own(t)
	}
	return t
}

// Close releases every tensor the scope's ops returned and that was not
// kept. Closing twice releases nothing more.
func (s *Scope) Close() {
	if len(s.owned) > 0 {
		s.root.Release(s.owned...)
	}
	s.owned = nil
}

// Done releases, now, those of ts that this scope's ops returned and that
// it still holds (their last use: freeing them before the scope ends keeps
// a graph's peak memory where it was); the scope's inputs and what it
// kept or released already are left alone, so a loop can hand its
// previous value to Done whether that is the input or an intermediate.
func (s *Scope) Done(ts ...Tensor) {
	for _, t := range ts {
		if s.forget(t) {
			s.root.Release(t)
		}
	}
}

// Root is the backend the scope's ops run on.
func (s *Scope) Root() Backend { return s.root }

func (s *Scope) own(t Tensor) Tensor {
	if t != nil {
		s.owned = append(s.owned, t)
	}
	return t
}

// forget drops t from the scope's tensors, reporting whether it was one.
func (s *Scope) forget(t Tensor) bool {
	for i, o := range s.owned {
		if o == t {
			s.owned = append(s.owned[:i], s.owned[i+1:]...)
			return true
		}
	}
	return false
}

// StartRange forwards a profiler range to the root backend (Marker).
func (s *Scope) StartRange(name string) func() { return Range(s.root, name) }

// The Backend methods: each runs on the root and remembers its results.

func (s *Scope) Name() string { return s.root.Name() }
func (s *Scope) Upload(data []float32, shape ...int) Tensor {
	return s.own(s.root.Upload(data, shape...))
}
func (s *Scope) UploadWeight(data []float32, shape ...int) Tensor {
	return s.own(s.root.UploadWeight(data, shape...))
}
func (s *Scope) Download(t Tensor) []float32 { return s.root.Download(t) }
func (s *Scope) Reshape(t Tensor, shape ...int) Tensor {
	return s.own(s.root.Reshape(t, shape...))
}
func (s *Scope) Release(ts ...Tensor) {
	for _, t := range ts {
		s.forget(t)
	}
	s.root.Release(ts...)
}
func (s *Scope) Linear(x, w, b Tensor, act Act) Tensor { return s.own(s.root.Linear(x, w, b, act)) }
func (s *Scope) MatMulT(a, b Tensor) Tensor            { return s.own(s.root.MatMulT(a, b)) }
func (s *Scope) Conv2D(x, w, b Tensor, stride, pad int) Tensor {
	return s.own(s.root.Conv2D(x, w, b, stride, pad))
}
func (s *Scope) ConvAct(x, w, b Tensor, p Conv) Tensor { return s.own(s.root.ConvAct(x, w, b, p)) }
func (s *Scope) ConvTranspose2D(x, w, b Tensor, k int) Tensor {
	return s.own(s.root.ConvTranspose2D(x, w, b, k))
}
func (s *Scope) LayerNorm(x, w, b Tensor, eps float32) Tensor {
	return s.own(s.root.LayerNorm(x, w, b, eps))
}
func (s *Scope) AddLayerNorm(x, r, w, b Tensor, eps float32) (sum, norm Tensor) {
	sum, norm = s.root.AddLayerNorm(x, r, w, b, eps)
	return s.own(sum), s.own(norm)
}
func (s *Scope) Attention(q, k, v Tensor, heads int, rel *RelPos) Tensor {
	return s.own(s.root.Attention(q, k, v, heads, rel))
}
func (s *Scope) AttentionQKV(qkv Tensor, heads int, rel *RelPos) Tensor {
	return s.own(s.root.AttentionQKV(qkv, heads, rel))
}
func (s *Scope) AttentionQKVBias(qkv Tensor, heads int, bias *OffsetBias) Tensor {
	return s.own(s.root.AttentionQKVBias(qkv, heads, bias))
}
func (s *Scope) WindowPartition(x Tensor, win int) Tensor {
	return s.own(s.root.WindowPartition(x, win))
}
func (s *Scope) WindowUnpartition(x Tensor, win, h, w int) Tensor {
	return s.own(s.root.WindowUnpartition(x, win, h, w))
}
func (s *Scope) Add(a, b Tensor) Tensor               { return s.own(s.root.Add(a, b)) }
func (s *Scope) Activation(x Tensor, act Act) Tensor  { return s.own(s.root.Activation(x, act)) }
func (s *Scope) Concat(axis int, ts ...Tensor) Tensor { return s.own(s.root.Concat(axis, ts...)) }
func (s *Scope) Slice(x Tensor, axis, start, end int) Tensor {
	return s.own(s.root.Slice(x, axis, start, end))
}
func (s *Scope) Repeat(x Tensor, n int) Tensor { return s.own(s.root.Repeat(x, n)) }
func (s *Scope) Transpose(x Tensor) Tensor     { return s.own(s.root.Transpose(x)) }
func (s *Scope) MaskDownsample(masks Tensor, p *MaskDownsampler) Tensor {
	return s.own(s.root.MaskDownsample(masks, p))
}
func (s *Scope) UpscaleMasks(logits Tensor, p MaskUpscale) Tensor {
	return s.own(s.root.UpscaleMasks(logits, p))
}

var (
	_ Backend = (*Scope)(nil)
	_ Marker  = (*Scope)(nil)
)
