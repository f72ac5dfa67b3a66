// Package npy reads and writes NumPy .npy arrays of float32.
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
	"fmt"
	"io"
	"math"
	"os"
	"strconv"
	"strings"

	"codeberg.org/sbinet/npyio/npy"
)

// Write writes data with the given shape as a little-endian float32 array.
func Write(w io.Writer, data []float32, shape ...int) error {
	n := 1
	for _, d := range shape {
		n *= d
	}
	if n != len(data) {
		return fmt.Errorf("npy: %d values for shape %v", len(data), shape)
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
		return fmt.Errorf("npy: header too long for shape %v", shape)
	}
	bw := bufio.NewWriterSize(w, 1<<16)
	bw.WriteString("\x93NUMPY\x01\x00")
	binary.Write(bw, binary.LittleEndian, uint16(len(hdr)))
	bw.WriteString(hdr)
	var buf [4]byte
	for _, v := range data {
		binary.LittleEndian.PutUint32(buf[:], math.Float32bits(v))
		bw.Write(buf[:])
	}
	return bw.Flush()
}

// WriteFile is Write to a new file at path.
func WriteFile(path string, data []float32, shape ...int) error {
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	if err := Write(f, data, shape...); err != nil {
		f.Close()
		return fmt.Errorf("write %s: %w", path, err)
	}
	return f.Close()
}

// Read reads an array of any real dtype, converted to float32, in C order,
// with its shape.
func Read(r io.Reader) ([]float32, []int, error) {
	rd, err := npy.NewReader(r)
	if err != nil {
		return nil, nil, fmt.Errorf("npy: %w", err)
	}
	shape := append([]int(nil), rd.Header.Descr.Shape...)
	data, err := readAs32(rd)
	if err != nil {
		return nil, nil, fmt.Errorf("npy: %w", err)
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

// ReadFile is Read from a file.
func ReadFile(path string) ([]float32, []int, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, nil, err
	}
	defer f.Close()
	d, s, err := Read(bufio.NewReader(f))
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
