package npy

import (
	"bytes"
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
	got, shape, err := Read(bytes.NewReader(buf.Bytes()))
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
