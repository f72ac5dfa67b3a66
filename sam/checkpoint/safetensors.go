package checkpoint

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"sort"

	"github.com/samgo/samgo/sam/float16"
)

// safetensors layout: u64 little-endian header length N, N bytes of JSON
// {name: {"dtype", "shape", "data_offsets": [begin, end]}, "__metadata__": {..}},
// then the data block; offsets are relative to its start.

const maxHeader = 100 << 20 // the reference implementation's limit

type stEntry struct {
	DType   string  `json:"dtype"`
	Shape   []int   `json:"shape"`
	Offsets []int64 `json:"data_offsets"`
}

func parseSafetensors(f *File, data []byte) error {
	n := binary.LittleEndian.Uint64(data[:8])
	if n > maxHeader || n > uint64(len(data)-8) {
		return fmt.Errorf("%s: %w: safetensors header of %d bytes in a %d-byte file", f.Path, ErrTruncated, n, len(data))
	}
	hdr := data[8 : 8+n]
	body := data[8+n:]
	var raw map[string]json.RawMessage
	if err := json.Unmarshal(hdr, &raw); err != nil {
		return fmt.Errorf("%s: %w: safetensors header: %v", f.Path, ErrFormat, err)
	}
	type span struct {
		name       string
		begin, end int64
	}
	var spans []span
	for name, msg := range raw {
		if name == "__metadata__" {
			if err := json.Unmarshal(msg, &f.Metadata); err != nil {
				return fmt.Errorf("%s: %w: __metadata__: %v", f.Path, ErrFormat, err)
			}
			continue
		}
		var e stEntry
		if err := json.Unmarshal(msg, &e); err != nil {
			return fmt.Errorf("%s: tensor %q: %w: %v", f.Path, name, ErrFormat, err)
		}
		dt := DType(e.DType)
		if dt.Size() == 0 {
			return fmt.Errorf("%s: tensor %q: %w %q", f.Path, name, ErrDType, e.DType)
		}
		numel := int64(1)
		for _, d := range e.Shape {
			if d < 0 || (d > 0 && numel > math.MaxInt32*int64(64)/int64(d)) {
				return fmt.Errorf("%s: tensor %q: %w: bad shape %v", f.Path, name, ErrFormat, e.Shape)
			}
			numel *= int64(d)
		}
		if len(e.Offsets) != 2 || e.Offsets[0] < 0 || e.Offsets[1] < e.Offsets[0] {
			return fmt.Errorf("%s: tensor %q: %w: bad data_offsets %v", f.Path, name, ErrFormat, e.Offsets)
		}
		if e.Offsets[1] > int64(len(body)) {
			return fmt.Errorf("%s: tensor %q: %w: data ends at %d, file has %d data bytes", f.Path, name, ErrTruncated, e.Offsets[1], len(body))
		}
		if e.Offsets[1]-e.Offsets[0] != numel*int64(dt.Size()) {
			return fmt.Errorf("%s: tensor %q: %w: %d bytes for shape %v of %s", f.Path, name, ErrFormat, e.Offsets[1]-e.Offsets[0], e.Shape, dt)
		}
		shape := e.Shape
		if shape == nil {
			shape = []int{}
		}
		if err := f.add(&Tensor{Name: name, DType: dt, Shape: shape, data: body[e.Offsets[0]:e.Offsets[1]:e.Offsets[1]]}); err != nil {
			return err
		}
		spans = append(spans, span{name, e.Offsets[0], e.Offsets[1]})
	}
	// Tensors must not overlap (the format forbids it; overlapping views would
	// alias each other's memory).
	sort.Slice(spans, func(i, j int) bool { return spans[i].begin < spans[j].begin })
	for i := 1; i < len(spans); i++ {
		if spans[i].begin < spans[i-1].end {
			return fmt.Errorf("%s: %w: tensors %q and %q overlap", f.Path, ErrFormat, spans[i-1].name, spans[i].name)
		}
	}
	return nil
}

// WriteTensor is one tensor to write with WriteSafetensors.
type WriteTensor struct {
	Name  string
	DType DType // F32, F16, BF16 (from F32, rounded to nearest even), U8/BOOL (from Bytes)
	Shape []int
	F32   []float32
	Bytes []byte
}

// WriteSafetensors writes tensors (in the given order) and optional metadata.
func WriteSafetensors(w io.Writer, tensors []WriteTensor, metadata map[string]string) error {
	hdr := map[string]any{}
	if len(metadata) > 0 {
		hdr["__metadata__"] = metadata
	}
	var off int64
	for _, t := range tensors {
		n := int64(1)
		for _, d := range t.Shape {
			n *= int64(d)
		}
		var size int64
		switch t.DType {
		case F32, F16, BF16:
			if int64(len(t.F32)) != n {
				return fmt.Errorf("write safetensors: tensor %q: %d values for shape %v", t.Name, len(t.F32), t.Shape)
			}
			size = int64(t.DType.Size()) * n
		case U8, BOOL:
			if int64(len(t.Bytes)) != n {
				return fmt.Errorf("write safetensors: tensor %q: %d bytes for shape %v", t.Name, len(t.Bytes), t.Shape)
			}
			size = n
		default:
			return fmt.Errorf("write safetensors: tensor %q: %w %s", t.Name, ErrDType, t.DType)
		}
		shape := t.Shape
		if shape == nil {
			shape = []int{}
		}
		hdr[t.Name] = stEntry{DType: string(t.DType), Shape: shape, Offsets: []int64{off, off + size}}
		off += size
	}
	js, err := json.Marshal(hdr)
	if err != nil {
		return err
	}
	for len(js)%8 != 0 {
		js = append(js, ' ')
	}
	var buf bytes.Buffer
	binary.Write(&buf, binary.LittleEndian, uint64(len(js)))
	buf.Write(js)
	if _, err := w.Write(buf.Bytes()); err != nil {
		return err
	}
	for _, t := range tensors {
		var b []byte
		switch t.DType {
		case F32:
			b = make([]byte, 4*len(t.F32))
			for i, v := range t.F32 {
				binary.LittleEndian.PutUint32(b[4*i:], math.Float32bits(v))
			}
		case F16:
			b = make([]byte, 2*len(t.F32))
			for i, v := range t.F32 {
				binary.LittleEndian.PutUint16(b[2*i:], float16.ToHalf(v))
			}
		case BF16:
			b = make([]byte, 2*len(t.F32))
			for i, v := range t.F32 {
				binary.LittleEndian.PutUint16(b[2*i:], float16.ToBF16(v))
			}
		default:
			b = t.Bytes
		}
		if _, err := w.Write(b); err != nil {
			return err
		}
	}
	return nil
}
