// Package npy reads and writes NumPy .npy arrays of float32 (Read refuses
// other dtypes; ReadConvert converts them).
//
// Reading goes through codeberg.org/sbinet/npyio, which understands every
// header version, dtype spelling and Fortran order. Writing is done here:
// npyio writes n-dimensional arrays only from nested Go slices, element by
// element through reflection (measured: 1.15 s for a 3×1365×1024 float32
// array on the 2-core dev machine), while a mask's logits are written many
// times per second. The format is a fixed header and raw little-endian
// data (numpy.lib.format, version 1.0), and the tests read every file
// written here back through npyio.
package npy

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"slices"
	"strconv"
	"strings"

	"codeberg.org/sbinet/npyio/npy"

	"github.com/samgo/samgo/sam/atomicfile"
)

// Write writes data with the given shape as a little-endian float32 array.
func Write(w io.Writer, data []float32, shape ...int) error {
	sw, err := NewWriter(w, shape...)
	if err != nil {
		return err
	}
	if err := sw.Write(data); err != nil {
		return err
	}
	return sw.Close()
}

// Writer writes one float32 array in pieces, so that an array larger than
// what a program wants to hold can be streamed to a file: NewWriter writes
// the header, Write appends values in C order, Close checks that the shape
// is full and flushes.
type Writer struct {
	bw          *bufio.Writer
	want, wrote int
	shape       []int
	err         error
}

// NewWriter writes the header of a little-endian float32 array of the
// given shape to w.
func NewWriter(w io.Writer, shape ...int) (*Writer, error) {
	n := 1
	for _, d := range shape {
		if d < 0 {
			return nil, fmt.Errorf("npy: negative dimension in shape %v", shape)
		}
		n *= d
	}
	dims := make([]string, len(shape))
	for i, d := range shape {
		dims[i] = strconv.Itoa(d)
	}
	tuple := strings.Join(dims, ", ")
	if len(shape) == 1 {
		tuple += ","
	}
	hdr := fmt.Sprintf("{'descr': '<f4', 'fortran_order': False, 'shape': (%s), }", tuple)
	// Magic (6) + version (2) + header length (2) + header + '\n' is padded
	// with spaces to a multiple of 64 bytes.
	pad := 64 - (10+len(hdr)+1)%64
	if pad == 64 {
		pad = 0
	}
	hdr += strings.Repeat(" ", pad) + "\n"
	if len(hdr) > math.MaxUint16 {
		return nil, fmt.Errorf("npy: header too long for shape %v", shape)
	}
	sw := &Writer{bw: bufio.NewWriterSize(w, 1<<16), want: n, shape: slices.Clone(shape)}
	sw.bw.WriteString("\x93NUMPY\x01\x00")
	binary.Write(sw.bw, binary.LittleEndian, uint16(len(hdr)))
	sw.bw.WriteString(hdr)
	return sw, nil
}

// Write appends values; more than the shape holds is an error.
func (sw *Writer) Write(data []float32) error {
	if sw.err != nil {
		return sw.err
	}
	if sw.wrote+len(data) > sw.want {
		sw.err = fmt.Errorf("npy: %d values for shape %v", sw.wrote+len(data), sw.shape)
		return sw.err
	}
	var buf [4]byte
	for _, v := range data {
		binary.LittleEndian.PutUint32(buf[:], math.Float32bits(v))
		sw.bw.Write(buf[:])
	}
	sw.wrote += len(data)
	return nil
}

// Close flushes; fewer values than the shape holds is an error.
func (sw *Writer) Close() error {
	if sw.err != nil {
		return sw.err
	}
	if sw.wrote != sw.want {
		return fmt.Errorf("npy: %d values for shape %v", sw.wrote, sw.shape)
	}
	return sw.bw.Flush()
}

// WriteFile is Write to a file at path. It writes a temporary file beside
// path and renames it, so that path never holds a partial array (a full
// disk leaves the old file, or none).
func WriteFile(path string, data []float32, shape ...int) error {
	return atomicfile.Write(path, func(w io.Writer) error { return Write(w, data, shape...) })
}

// ErrDType marks an array that is not float32 where float32 is required.
var ErrDType = errors.New("not a float32 array")

// Read reads a float32 array (either byte order, C or Fortran order) in C
// order, with its shape. Any other dtype is refused with ErrDType rather
// than converted: a uint8 or bool mask where float32 logits are expected
// reads as plausible numbers and gives a silently wrong answer. ReadConvert
// converts instead.
func Read(r io.Reader) ([]float32, []int, error) { return read(r, false) }

// ReadConvert reads an array of any real dtype (float32/64, int8/32/64,
// uint8, bool), converted to float32, in C order, with its shape.
func ReadConvert(r io.Reader) ([]float32, []int, error) { return read(r, true) }

func read(r io.Reader, convert bool) ([]float32, []int, error) {
	rd, err := npy.NewReader(r)
	if err != nil {
		return nil, nil, prefixed(err)
	}
	shape := append([]int(nil), rd.Header.Descr.Shape...)
	if typ := strings.Trim(rd.Header.Descr.Type, "'\""); !convert && strings.TrimLeft(typ, "<>|=") != "f4" {
		return nil, nil, fmt.Errorf("npy: %w: dtype %s (save it with arr.astype(numpy.float32))", ErrDType, typ)
	}
	data, err := readAs32(rd)
	if err != nil {
		return nil, nil, prefixed(err)
	}
	if rd.Header.Descr.Fortran && len(shape) > 1 {
		data = fortranToC(data, shape)
	}
	n := 1
	for _, d := range shape {
		n *= d
	}
	if n != len(data) {
		return nil, nil, fmt.Errorf("npy: %d values for shape %v", len(data), shape)
	}
	return data, shape, nil
}

// prefixed returns err with a single "npy: " prefix (npyio's errors carry
// one already).
func prefixed(err error) error {
	if strings.HasPrefix(err.Error(), "npy: ") {
		return err
	}
	return fmt.Errorf("npy: %w", err)
}

// ReadFile is Read from a file.
func ReadFile(path string) ([]float32, []int, error) { return readFile(path, Read) }

// ReadFileConvert is ReadConvert from a file.
func ReadFileConvert(path string) ([]float32, []int, error) { return readFile(path, ReadConvert) }

func readFile(path string, read func(io.Reader) ([]float32, []int, error)) ([]float32, []int, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, nil, err
	}
	defer f.Close()
	d, s, err := read(bufio.NewReader(f))
	if err != nil {
		return nil, nil, fmt.Errorf("read %s: %w", path, err)
	}
	return d, s, nil
}

// readAs32 reads the array's values in their stored dtype and widens or
// narrows them to float32.
func readAs32(rd *npy.Reader) ([]float32, error) {
	typ := strings.Trim(rd.Header.Descr.Type, "'\"")
	kind := strings.TrimLeft(typ, "<>|=")
	conv := func(ptr any, n func() int, at func(int) float32) ([]float32, error) {
		if err := rd.Read(ptr); err != nil {
			return nil, err
		}
		out := make([]float32, n())
		for i := range out {
			out[i] = at(i)
		}
		return out, nil
	}
	switch kind {
	case "f4":
		var d []float32
		err := rd.Read(&d)
		return d, err
	case "f8":
		var d []float64
		return conv(&d, func() int { return len(d) }, func(i int) float32 { return float32(d[i]) })
	case "i1":
		var d []int8
		return conv(&d, func() int { return len(d) }, func(i int) float32 { return float32(d[i]) })
	case "u1":
		var d []uint8
		return conv(&d, func() int { return len(d) }, func(i int) float32 { return float32(d[i]) })
	case "b1":
		var d []bool
		return conv(&d, func() int { return len(d) }, func(i int) float32 {
			if d[i] {
				return 1
			}
			return 0
		})
	case "i4":
		var d []int32
		return conv(&d, func() int { return len(d) }, func(i int) float32 { return float32(d[i]) })
	case "i8":
		var d []int64
		return conv(&d, func() int { return len(d) }, func(i int) float32 { return float32(d[i]) })
	}
	return nil, fmt.Errorf("unsupported dtype %s (want a real number type)", typ)
}

// fortranToC reorders column-major data to row-major.
func fortranToC(data []float32, shape []int) []float32 {
	out := make([]float32, len(data))
	idx := make([]int, len(shape))
	for f := range data {
		// f is the Fortran offset of idx; compute the C offset.
		c := 0
		for k := range shape {
			c = c*shape[k] + idx[k]
		}
		out[c] = data[f]
		for k := 0; k < len(shape); k++ { // first index varies fastest
			idx[k]++
			if idx[k] < shape[k] {
				break
			}
			idx[k] = 0
		}
	}
	return out
}
