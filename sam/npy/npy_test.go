package npy

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"codeberg.org/sbinet/npyio/npy"
	"github.com/stretchr/testify/require"
)

func TestWriteReadsBackThroughNpyio(t *testing.T) {
	for _, shape := range [][]int{{5}, {2, 3}, {1, 4, 3, 2}, {0}, {3, 1, 7}} {
		n := 1
		for _, d := range shape {
			n *= d
		}
		data := make([]float32, n)
		for i := range data {
			data[i] = float32(i)*0.5 - 3
		}
		var buf bytes.Buffer
		require.NoError(t, Write(&buf, data, shape...))
		require.Zero(t, (buf.Len()-4*n)%64, "header must be 64-byte aligned")

		rd, err := npy.NewReader(bytes.NewReader(buf.Bytes()))
		require.NoError(t, err)
		require.Equal(t, shape, rd.Header.Descr.Shape)
		require.Contains(t, rd.Header.Descr.Type, "<f4")
		var got []float32
		require.NoError(t, rd.Read(&got))
		require.Equal(t, data, append([]float32{}, got...))

		back, bshape, err := Read(bytes.NewReader(buf.Bytes()))
		require.NoError(t, err)
		require.Equal(t, shape, bshape)
		require.Equal(t, data, append([]float32{}, back...))
	}
}

func TestWriteShapeMismatch(t *testing.T) {
	require.Error(t, Write(&bytes.Buffer{}, []float32{1, 2}, 3))
}

func TestReadFortranAndFloat64(t *testing.T) {
	// A (2,3) float64 array written by npyio: values v[i][j] = 10i + j.
	var buf bytes.Buffer
	require.NoError(t, npy.Write(&buf, [][]float64{{0, 1, 2}, {10, 11, 12}}))
	got, shape, err := ReadConvert(bytes.NewReader(buf.Bytes()))
	require.NoError(t, err)
	require.Equal(t, []int{2, 3}, shape)
	require.Equal(t, []float32{0, 1, 2, 10, 11, 12}, got)

	// The same values stored column-major.
	c := fortranToC([]float32{0, 10, 1, 11, 2, 12}, []int{2, 3})
	require.Equal(t, []float32{0, 1, 2, 10, 11, 12}, c)
}

func TestReadGarbage(t *testing.T) {
	_, _, err := Read(bytes.NewReader([]byte("not a numpy file")))
	require.Error(t, err)
}

// Read takes float32 only: a uint8, bool or float64 array where logits are
// expected is refused, not converted.
func TestReadRefusesOtherDTypes(t *testing.T) {
	for _, v := range []any{
		[]uint8{0, 255, 1},
		[]bool{true, false},
		[]float64{0.5, -1},
		[]int64{3},
	} {
		var buf bytes.Buffer
		require.NoError(t, npy.Write(&buf, v))
		_, _, err := Read(bytes.NewReader(buf.Bytes()))
		require.ErrorIs(t, err, ErrDType, "%T", v)
		require.Contains(t, err.Error(), "astype")
		_, _, err = ReadConvert(bytes.NewReader(buf.Bytes()))
		require.NoError(t, err, "%T", v)
	}
	var buf bytes.Buffer
	require.NoError(t, npy.Write(&buf, []float32{1, 2}))
	got, _, err := Read(bytes.NewReader(buf.Bytes()))
	require.NoError(t, err)
	require.Equal(t, []float32{1, 2}, got)
}

// Errors carry one "npy: " prefix, not two.
func TestReadErrorPrefix(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "garbage") // (a name ending in .npy would read "g.npy: npy:")
	require.NoError(t, os.WriteFile(p, []byte("garbage"), 0o644))
	_, _, err := ReadFile(p)
	require.Error(t, err)
	require.NotContains(t, err.Error(), "npy: npy:")
	require.Equal(t, 1, strings.Count(err.Error(), "npy: "), err.Error())
}

// The streaming writer writes what Write writes, and checks the count.
func TestStreamWriter(t *testing.T) {
	data := []float32{1, 2, 3, 4, 5, 6}
	var a, b bytes.Buffer
	require.NoError(t, Write(&a, data, 2, 3))
	w, err := NewWriter(&b, 2, 3)
	require.NoError(t, err)
	require.NoError(t, w.Write(data[:2]))
	require.NoError(t, w.Write(data[2:]))
	require.NoError(t, w.Close())
	require.Equal(t, a.Bytes(), b.Bytes())

	w, err = NewWriter(&b, 2, 3)
	require.NoError(t, err)
	require.NoError(t, w.Write(data[:2]))
	require.Error(t, w.Close(), "short")
	w, err = NewWriter(&b, 2)
	require.NoError(t, err)
	require.Error(t, w.Write(data[:3]), "long")
}

// WriteFile leaves no partial file behind: on an error the old file stays.
func TestWriteFileKeepsOldOnError(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "a.npy")
	require.NoError(t, WriteFile(p, []float32{1}, 1))
	require.Error(t, WriteFile(p, []float32{1, 2}, 3))
	got, _, err := ReadFile(p)
	require.NoError(t, err)
	require.Equal(t, []float32{1}, got)
	ents, err := os.ReadDir(dir)
	require.NoError(t, err)
	require.Len(t, ents, 1, "no temporary file left")
}
