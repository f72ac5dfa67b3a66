package checkpoint

import (
	"bytes"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/require"
)

const testdata = "../../tests/testdata"

func TestSafetensorsFixture(t *testing.T) {
	f, err := Open(filepath.Join(testdata, "tiny", "model.safetensors"))
	require.NoError(t, err)
	defer f.Close()
	require.Equal(t, FormatSafetensors, f.Format)
	w, ok := f.Tensor("image_encoder.blocks.0.attn.qkv.weight")
	require.True(t, ok)
	require.Equal(t, []int{192, 64}, w.Shape)
	v, err := w.Float32()
	require.NoError(t, err)
	require.Len(t, v, 192*64)

	// BF16 widening (vitb_decoder's weights are bfloat16; tests/ regenerates
	// them, so a BF16 file is written here).
	var buf bytes.Buffer
	gauss := make([]float32, 2*128)
	for i := range gauss {
		gauss[i] = float32(i%9-4) / 4
	}
	require.NoError(t, WriteSafetensors(&buf, []WriteTensor{{Name: "prompt_encoder.pe_layer.positional_encoding_gaussian_matrix", DType: BF16, Shape: []int{2, 128}, F32: gauss}}, nil))
	g, err := Parse("bf16", buf.Bytes())
	require.NoError(t, err)
	defer g.Close()
	pe, ok := g.Tensor("prompt_encoder.pe_layer.positional_encoding_gaussian_matrix")
	require.True(t, ok)
	require.Equal(t, BF16, pe.DType)
	require.Equal(t, []int{2, 128}, pe.Shape)
	x, err := pe.Float32()
	require.NoError(t, err)
	require.NotZero(t, x[0])
}

func TestSafetensorsRoundTrip(t *testing.T) {
	var buf bytes.Buffer
	in := []WriteTensor{
		{Name: "a", DType: F32, Shape: []int{2, 3}, F32: []float32{1, 2, 3, 4, 5, -6.5}},
		{Name: "m", DType: U8, Shape: []int{4}, Bytes: []byte{0, 1, 255, 7}},
	}
	require.NoError(t, WriteSafetensors(&buf, in, map[string]string{"k": "v"}))
	f, err := Parse("mem", buf.Bytes())
	require.NoError(t, err)
	require.Equal(t, []string{"a", "m"}, f.Names())
	require.Equal(t, "v", f.Metadata["k"])
	a, _ := f.Tensor("a")
	av, err := a.Float32()
	require.NoError(t, err)
	require.Equal(t, in[0].F32, av)
	m, _ := f.Tensor("m")
	require.Equal(t, in[1].Bytes, m.Raw())
}

func TestWriteHalfPrecision(t *testing.T) {
	var buf bytes.Buffer
	vals := []float32{0.5, -3.25, 1000}
	require.NoError(t, WriteSafetensors(&buf, []WriteTensor{
		{Name: "h", DType: F16, Shape: []int{3}, F32: vals},
		{Name: "b", DType: BF16, Shape: []int{3}, F32: vals},
	}, nil))
	f, err := Parse("mem", buf.Bytes())
	require.NoError(t, err)
	for _, n := range []string{"h", "b"} {
		x, _ := f.Tensor(n)
		v, err := x.Float32()
		require.NoError(t, err)
		require.Equal(t, vals, v, n)
	}
}
