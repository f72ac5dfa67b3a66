package checkpoint

import (
	"archive/zip"
	"bytes"
	"errors"
	"fmt"
	"io"
	"math"
	"path"
	"strings"
)

// PyTorch zip checkpoints (torch.save since 1.6). Every entry lives under one
// folder, named after the file when it was written ("archive/",
// "sam_vit_b_01ec64/", "model/"):
//
//	<archive>/data.pkl    the pickled object (here: a state_dict); tensors refer
//	                      to storages through persistent ids
//	<archive>/data/<key>  one raw storage per key, little-endian, C order
//	<archive>/version     serialization version ("3")
//	<archive>/byteorder   "little" or "big" (torch ≥ 2.1 writes it; absent = little)
//	<archive>/.data/...   torch 2.x bookkeeping (serialization id, ...): ignored
//
// torch writes every entry uncompressed with its data 64-byte aligned, so a
// storage is a slice of the mapped file and an F32 tensor a view into it.
// Stored entries are not CRC-checked: that would read the whole 2.5 GB of a
// ViT-H checkpoint up front, which mapping is there to avoid.

// viewSlack is how far a non-contiguous tensor may exceed its storage when
// materialised. Only broadcast views (a zero stride) are larger than their
// storage; a state_dict has no reason to hold one, and a cap keeps a
// few-byte file from asking for gigabytes.
const viewSlack = 1 << 20

type pthArchive struct {
	path     string
	data     []byte
	prefix   string // "<archive>/"
	entries  map[string]*zip.File
	storages map[string]pthStorage // by key
}

type pthStorage struct {
	dtype DType
	numel int64
	data  []byte
}

func parsePth(f *File, data []byte) error {
	zr, err := zip.NewReader(bytes.NewReader(data), int64(len(data)))
	if err != nil {
		// The file starts with a zip local header, so a missing central
		// directory almost always means the download stopped early.
		sentinel := ErrFormat
		if errors.Is(err, zip.ErrFormat) {
			sentinel = ErrTruncated
		}
		return fmt.Errorf("%s: %w: PyTorch zip checkpoint without a readable zip directory: %v", f.Path, sentinel, err)
	}
	a := &pthArchive{path: f.Path, data: data, entries: map[string]*zip.File{}, storages: map[string]pthStorage{}}
	var pkls []string
	for _, zf := range zr.File {
		if _, dup := a.entries[zf.Name]; dup {
			return fmt.Errorf("%s: %w: zip entry %q appears twice", f.Path, ErrFormat, zf.Name)
		}
		a.entries[zf.Name] = zf
		dir, base := path.Split(zf.Name)
		if base == "data.pkl" && strings.Count(dir, "/") == 1 && dir != "/" {
			pkls = append(pkls, zf.Name)
		}
	}
	switch len(pkls) {
	case 0:
		return fmt.Errorf("%s: %w: zip without <archive>/data.pkl, not a torch.save checkpoint", f.Path, ErrFormat)
	case 1:
	default:
		return fmt.Errorf("%s: %w: zip holds several pickles (%s)", f.Path, ErrFormat, strings.Join(pkls, ", "))
	}
	pklName := pkls[0]
	a.prefix = strings.TrimSuffix(pklName, "data.pkl")

	if zf, ok := a.entries[a.prefix+"byteorder"]; ok {
		b, err := a.read(zf, 64)
		if err != nil {
			return fmt.Errorf("%s: %w", f.Path, err)
		}
		if len(b) > 64 {
			b = b[:64]
		}
		switch order := strings.TrimSpace(string(b)); order {
		case "little":
		case "big":
			return fmt.Errorf("%s: %w: big-endian checkpoint (%s says %q); re-save it on a little-endian machine", f.Path, ErrFormat, zf.Name, order)
		default:
			return fmt.Errorf("%s: %w: %s says %q, want \"little\"", f.Path, ErrFormat, zf.Name, order)
		}
	}

	pkl, err := a.read(a.entries[pklName], maxPickle+1)
	if err != nil {
		return fmt.Errorf("%s: %w", f.Path, err)
	}
	if len(pkl) > maxPickle {
		return fmt.Errorf("%s: %w: %s larger than %d bytes", f.Path, ErrFormat, pklName, maxPickle)
	}
	root, err := unpickle(pkl, a.persistentLoad)
	if err != nil {
		if !errors.Is(err, ErrUnsafeClass) && !errors.Is(err, ErrFormat) && !errors.Is(err, ErrTruncated) && !errors.Is(err, ErrDType) {
			err = fmt.Errorf("%w: %v", ErrFormat, err)
		}
		return fmt.Errorf("%s: %s: %w", f.Path, pklName, err)
	}

	items, err := a.stateDict(root)
	if err != nil {
		return err
	}
	for _, it := range items {
		name, ok := it.Key.(string)
		if !ok {
			return fmt.Errorf("%s: %w: state_dict key of type %s, not str", f.Path, ErrFormat, pyType(it.Key))
		}
		p, ok := it.Value.(*pendingTensor)
		if !ok {
			return fmt.Errorf("%s: %w: entry %q has type %s, not a tensor", f.Path, ErrFormat, name, pyType(it.Value))
		}
		t, err := a.tensor(name, p)
		if err != nil {
			return err
		}
		if err := f.add(t); err != nil {
			return err
		}
	}
	return nil
}

// stateDict finds the tensors: the pickled dict itself, or the dict under
// "model" / "state_dict" (training checkpoints wrap the weights like that).
func (a *pthArchive) stateDict(root any) ([]dictEntry, error) {
	items, ok := dictItems(root)
	if !ok {
		return nil, fmt.Errorf("%s: %w: data.pkl holds type %s, not a dict of tensors", a.path, ErrFormat, pyType(root))
	}
	allTensors := true
	for _, it := range items {
		if _, ok := it.Value.(*pendingTensor); !ok {
			allTensors = false
			break
		}
	}
	if allTensors {
		return items, nil
	}
	for _, wrapper := range []string{"model", "state_dict"} {
		for _, it := range items {
			if k, _ := it.Key.(string); k == wrapper {
				if inner, ok := dictItems(it.Value); ok {
					return inner, nil
				}
			}
		}
	}
	return items, nil // the caller names the first entry that is not a tensor
}

// persistentLoad resolves a persistent id ('storage', storage_type, key,
// location, numel) to a reference; the bytes are looked up when the tensor
// using it is built, so that errors can name that tensor.
func (a *pthArchive) persistentLoad(pid any) (any, error) {
	t, ok := seq(pid)
	if !ok || len(t) != 5 {
		return nil, fmt.Errorf("%w: persistent id of type %s, want ('storage', type, key, location, numel)", ErrFormat, pyType(pid))
	}
	if tag, _ := t[0].(string); tag != "storage" {
		return nil, fmt.Errorf("%w: persistent id tagged %s, want 'storage'", ErrFormat, pyType(t[0]))
	}
	cls, ok := t[1].(storageClass)
	if !ok {
		return nil, fmt.Errorf("%w: persistent id names type %s as storage type", ErrFormat, pyType(t[1]))
	}
	key, ok := t[2].(string)
	if !ok {
		return nil, fmt.Errorf("%w: persistent id key of type %s", ErrFormat, pyType(t[2]))
	}
	numel, ok := nonNegInt(t[4])
	if !ok {
		return nil, fmt.Errorf("%w: storage %q: element count is not a non-negative int", ErrFormat, key)
	}
	// t[3] is the device the storage was saved from ("cpu", "cuda:0"); the
	// bytes are the same either way.
	return &storageRef{class: &cls, key: key, numel: numel}, nil
}

// storage returns the bytes of a referenced storage.
func (a *pthArchive) storage(name string, ref *storageRef) (pthStorage, error) {
	dt := ref.class.dtype
	if dt == "" {
		return pthStorage{}, fmt.Errorf("%s: tensor %q: %w: storage type %s", a.path, name, ErrDType, ref.class.name)
	}
	if s, ok := a.storages[ref.key]; ok {
		if s.dtype != dt || s.numel != ref.numel {
			return pthStorage{}, fmt.Errorf("%s: tensor %q: %w: storage %q used as %d×%s and %d×%s", a.path, name, ErrFormat, ref.key, s.numel, s.dtype, ref.numel, dt)
		}
		return s, nil
	}
	entry := a.prefix + "data/" + ref.key
	zf, ok := a.entries[entry]
	if !ok {
		return pthStorage{}, fmt.Errorf("%s: tensor %q: %w: storage entry %s missing", a.path, name, ErrFormat, entry)
	}
	es := int64(dt.Size())
	if ref.numel > math.MaxInt64/es {
		return pthStorage{}, fmt.Errorf("%s: tensor %q: %w: storage of %d elements", a.path, name, ErrFormat, ref.numel)
	}
	need := ref.numel * es
	b, err := a.read(zf, need)
	if err != nil {
		return pthStorage{}, fmt.Errorf("%s: tensor %q: %w", a.path, name, err)
	}
	if int64(len(b)) < need {
		return pthStorage{}, fmt.Errorf("%s: tensor %q: %w: %s holds %d bytes, %d elements of %s need %d", a.path, name, ErrTruncated, entry, len(b), ref.numel, dt, need)
	}
	s := pthStorage{dtype: dt, numel: ref.numel, data: b[:need:need]}
	a.storages[ref.key] = s
	return s, nil
}

// tensor applies _rebuild_tensor_v2's (storage, storage_offset, size,
// stride, requires_grad, backward_hooks[, metadata]) to the storage bytes.
func (a *pthArchive) tensor(name string, p *pendingTensor) (*Tensor, error) {
	bad := func(format string, args ...any) error {
		return fmt.Errorf("%s: tensor %q: %w: "+format, append([]any{a.path, name, ErrFormat}, args...)...)
	}
	args := p.args
	ref, ok := args[0].(*storageRef)
	if !ok {
		return nil, bad("storage argument of type %s", pyType(args[0]))
	}
	offset, ok := nonNegInt(args[1])
	if !ok {
		return nil, bad("storage_offset is not a non-negative int")
	}
	sizes, ok1 := seq(args[2])
	strides, ok2 := seq(args[3])
	if !ok1 || !ok2 || len(sizes) != len(strides) || len(sizes) > 64 {
		return nil, bad("size and stride are not two tuples of equal length")
	}
	if len(args) == 7 && args[6] != nil {
		// torch adds a metadata dict only when a flag is set (conjugate or
		// negative bit, ...); each would change what the bytes mean.
		meta, ok := dictItems(args[6])
		if !ok {
			return nil, bad("tensor metadata of type %s", pyType(args[6]))
		}
		for _, m := range meta {
			if v, ok := m.Value.(bool); !ok || v {
				k, _ := m.Key.(string)
				return nil, bad("tensor metadata %q is not supported", k)
			}
		}
	}
	st, err := a.storage(name, ref)
	if err != nil {
		return nil, err
	}

	ndim := len(sizes)
	shape := make([]int, ndim)
	stride := make([]int64, ndim)
	numel := int64(1)
	for i := range ndim {
		s, ok1 := nonNegInt(sizes[i])
		d, ok2 := nonNegInt(strides[i])
		if !ok1 || !ok2 {
			return nil, bad("size or stride %d is not a non-negative int", i)
		}
		if s != 0 && numel > math.MaxInt32*int64(64)/s { // the bound safetensors.go uses
			return nil, bad("shape too large")
		}
		numel *= s
		shape[i], stride[i] = int(s), d
	}
	t := &Tensor{Name: name, DType: st.dtype, Shape: shape}
	es := int64(st.dtype.Size())
	if numel == 0 {
		t.data = []byte{}
		return t, nil
	}
	// Index of the last element the view touches.
	last := offset
	for i := range ndim {
		span := int64(shape[i] - 1)
		if stride[i] != 0 && span > (math.MaxInt64-last)/stride[i] {
			return nil, bad("strides overflow")
		}
		last += span * stride[i]
	}
	if last >= st.numel {
		return nil, bad("view (offset %d, size %v, stride %v) reaches element %d of a %d-element storage", offset, shape, stride, last, st.numel)
	}
	if contiguous(shape, stride) {
		t.data = st.data[offset*es : (offset+numel)*es : (offset+numel)*es]
		return t, nil
	}
	if limit := max(int64(len(st.data)), viewSlack); numel > limit/es {
		return nil, bad("non-contiguous view of %d elements over a %d-element storage", numel, st.numel)
	}
	t.data = gather(st.data, es, offset, shape, stride, numel)
	return t, nil
}

// contiguous reports C order; strides of size-1 dimensions do not matter
// (torch does not normalise them).
func contiguous(shape []int, stride []int64) bool {
	want := int64(1)
	for i := len(shape) - 1; i >= 0; i-- {
		if shape[i] != 1 && stride[i] != want {
			return false
		}
		want *= int64(shape[i])
	}
	return true
}

// gather copies a strided view into a new C-contiguous buffer. The caller has
// checked that every index stays inside src.
func gather(src []byte, es, offset int64, shape []int, stride []int64, numel int64) []byte {
	out := make([]byte, numel*es)
	idx := make([]int, len(shape))
	at := offset
	for k := int64(0); k < numel; k++ {
		copy(out[k*es:(k+1)*es], src[at*es:(at+1)*es])
		for d := len(shape) - 1; d >= 0; d-- { // odometer, last axis fastest
			idx[d]++
			at += stride[d]
			if idx[d] < shape[d] {
				break
			}
			at -= stride[d] * int64(shape[d])
			idx[d] = 0
		}
	}
	return out
}

// read returns an entry's bytes (errors name the entry, not the file): a view into the file for a stored entry,
// otherwise up to limit inflated bytes (one more is read so that the zip
// reader reaches the end and checks the CRC when the entry is that long).
func (a *pthArchive) read(zf *zip.File, limit int64) ([]byte, error) {
	if zf.Method == zip.Store {
		off, err := zf.DataOffset()
		if err != nil {
			return nil, fmt.Errorf("%w: zip entry %s: %v", ErrTruncated, zf.Name, err)
		}
		size := zf.UncompressedSize64
		if zf.CompressedSize64 != size {
			return nil, fmt.Errorf("%w: stored zip entry %s claims %d bytes stored for %d", ErrFormat, zf.Name, zf.CompressedSize64, size)
		}
		n := uint64(len(a.data))
		if off < 0 || uint64(off) > n || size > n-uint64(off) {
			return nil, fmt.Errorf("%w: zip entry %s: %d bytes at offset %d, file has %d", ErrTruncated, zf.Name, size, off, n)
		}
		end := off + int64(size)
		return a.data[off:end:end], nil
	}
	rc, err := zf.Open()
	if err != nil {
		return nil, fmt.Errorf("%w: zip entry %s: %v", ErrFormat, zf.Name, err)
	}
	defer rc.Close()
	if limit < math.MaxInt64 {
		limit++
	}
	b, err := io.ReadAll(io.LimitReader(rc, limit))
	if err != nil {
		sentinel := ErrFormat
		if errors.Is(err, io.ErrUnexpectedEOF) {
			sentinel = ErrTruncated
		}
		return nil, fmt.Errorf("%w: zip entry %s: %v", sentinel, zf.Name, err)
	}
	return b, nil
}
