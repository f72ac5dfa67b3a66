// Package checkpoint reads SAM weight files: official PyTorch `.pth` files
// (a zip holding a pickled state_dict and raw tensor storages) and
// `.safetensors` files. Tensor data is memory-mapped where the platform
// allows it, so a 2.5 GB ViT-H checkpoint is never held twice: F32 tensors
// are handed out as views into the mapping, F16/BF16 are widened on request.
//
// The package knows nothing about SAM's architecture; key names are returned
// as stored (see sam for the Hugging Face → official mapping).
package checkpoint

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"os"
	"sort"
	"unsafe"

	"github.com/samgo/samgo/sam/float16"
)

// DType is a stored element type, named as safetensors names them.
type DType string

const (
	F32  DType = "F32"
	F16  DType = "F16"
	BF16 DType = "BF16"
	F64  DType = "F64"
	I64  DType = "I64"
	I32  DType = "I32"
	U8   DType = "U8"
	BOOL DType = "BOOL"
)

// Size is the element size in bytes (0 for an unknown dtype).
func (d DType) Size() int {
	switch d {
	case F64, I64:
		return 8
	case F32, I32:
		return 4
	case F16, BF16:
		return 2
	case U8, BOOL:
		return 1
	}
	return 0
}

// Sentinel errors callers can branch on (always wrapped with the file and
// tensor name).
var (
	ErrFormat      = errors.New("unrecognised or corrupt checkpoint")
	ErrDType       = errors.New("unsupported dtype")
	ErrTruncated   = errors.New("truncated file")
	ErrNotFound    = errors.New("tensor not found")
	ErrUnsafeClass = errors.New("pickle refers to a global outside the state_dict allow-list")
)

// Tensor is one stored tensor. Data is little-endian, C-contiguous.
type Tensor struct {
	Name  string
	DType DType
	Shape []int
	data  []byte
	file  string
}

// Numel is the number of elements.
func (t *Tensor) Numel() int {
	n := 1
	for _, d := range t.Shape {
		n *= d
	}
	return n
}

// Raw returns the stored bytes (a view; do not modify).
func (t *Tensor) Raw() []byte { return t.data }

// Float32 returns the values as float32. F32 data that is suitably aligned is
// returned as a view into the file mapping (do not modify it); F16, BF16 and
// F64 are converted into a new slice. U8/BOOL/integer tensors are converted
// too (fixtures store images as U8).
func (t *Tensor) Float32() ([]float32, error) {
	n := t.Numel()
	if len(t.data) != n*t.DType.Size() {
		return nil, fmt.Errorf("%s: tensor %q: %w: %d bytes for %d elements of %s", t.file, t.Name, ErrTruncated, len(t.data), n, t.DType)
	}
	switch t.DType {
	case F32:
		if n == 0 {
			return []float32{}, nil
		}
		if uintptr(unsafe.Pointer(&t.data[0]))%4 == 0 && littleEndian {
			return unsafe.Slice((*float32)(unsafe.Pointer(&t.data[0])), n), nil
		}
		out := make([]float32, n)
		for i := range out {
			out[i] = math.Float32frombits(binary.LittleEndian.Uint32(t.data[4*i:]))
		}
		return out, nil
	case BF16:
		out := make([]float32, n)
		for i := range out {
			out[i] = float16.FromBF16(binary.LittleEndian.Uint16(t.data[2*i:]))
		}
		return out, nil
	case F16:
		out := make([]float32, n)
		for i := range out {
			out[i] = float16.FromHalf(binary.LittleEndian.Uint16(t.data[2*i:]))
		}
		return out, nil
	case F64:
		out := make([]float32, n)
		for i := range out {
			out[i] = float32(math.Float64frombits(binary.LittleEndian.Uint64(t.data[8*i:])))
		}
		return out, nil
	case U8, BOOL:
		out := make([]float32, n)
		for i := range out {
			out[i] = float32(t.data[i])
		}
		return out, nil
	case I64:
		out := make([]float32, n)
		for i := range out {
			out[i] = float32(int64(binary.LittleEndian.Uint64(t.data[8*i:])))
		}
		return out, nil
	case I32:
		out := make([]float32, n)
		for i := range out {
			out[i] = float32(int32(binary.LittleEndian.Uint32(t.data[4*i:])))
		}
		return out, nil
	}
	return nil, fmt.Errorf("%s: tensor %q: %w %s", t.file, t.Name, ErrDType, t.DType)
}

var littleEndian = func() bool {
	x := uint16(1)
	return *(*byte)(unsafe.Pointer(&x)) == 1
}()

// Format names the container of a checkpoint.
type Format string

const (
	FormatPth         Format = "pth"
	FormatSafetensors Format = "safetensors"
)

// File is an opened checkpoint. Tensors stay valid until Close.
type File struct {
	Path     string
	Format   Format
	Size     int64
	Metadata map[string]string // safetensors __metadata__, if any

	tensors map[string]*Tensor
	names   []string
	mapping []byte
	unmap   func() error
}

// Names lists the tensor names in sorted order.
func (f *File) Names() []string { return f.names }

// Tensor looks a tensor up by its stored name.
func (f *File) Tensor(name string) (*Tensor, bool) {
	t, ok := f.tensors[name]
	return t, ok
}

// Len is the number of tensors.
func (f *File) Len() int { return len(f.tensors) }

// Close releases the mapping; tensors and Float32 views must not be used after.
func (f *File) Close() error {
	if f.unmap == nil {
		return nil
	}
	err := f.unmap()
	f.unmap = nil
	f.mapping = nil
	return err
}

func (f *File) add(t *Tensor) error {
	if _, dup := f.tensors[t.Name]; dup {
		return fmt.Errorf("%s: %w: tensor %q stored twice", f.Path, ErrFormat, t.Name)
	}
	t.file = f.Path
	f.tensors[t.Name] = t
	return nil
}

func (f *File) finish() {
	f.names = f.names[:0]
	for n := range f.tensors {
		f.names = append(f.names, n)
	}
	sort.Strings(f.names)
}

// Open reads a checkpoint, telling the format by its first bytes: a zip
// (PyTorch ≥ 1.6 `torch.save`) or safetensors.
func Open(path string) (*File, error) {
	data, unmap, err := mapFile(path)
	if err != nil {
		return nil, err
	}
	f, err := parse(path, data)
	if err != nil {
		unmap()
		return nil, err
	}
	f.unmap = unmap
	return f, nil
}

// Parse reads a checkpoint from memory (data must outlive the File).
func Parse(name string, data []byte) (*File, error) { return parse(name, data) }

func parse(path string, data []byte) (*File, error) {
	f := &File{Path: path, Size: int64(len(data)), tensors: map[string]*Tensor{}, mapping: data}
	var err error
	switch {
	case len(data) >= 4 && string(data[:4]) == "PK\x03\x04":
		f.Format = FormatPth
		err = parsePth(f, data)
	case len(data) >= 9 && data[8] == '{':
		f.Format = FormatSafetensors
		err = parseSafetensors(f, data)
	case len(data) < 9:
		err = fmt.Errorf("%s: %w (%d bytes)", path, ErrTruncated, len(data))
	default:
		err = fmt.Errorf("%s: %w: neither a PyTorch zip checkpoint nor safetensors", path, ErrFormat)
	}
	if err != nil {
		return nil, err
	}
	f.finish()
	return f, nil
}

// readWhole is the fallback where memory mapping is unavailable.
func readWhole(path string) ([]byte, func() error, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, nil, err
	}
	return b, func() error { return nil }, nil
}
