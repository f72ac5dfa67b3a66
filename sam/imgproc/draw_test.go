package imgproc

import (
	"bytes"
	"image"
	"image/png"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/require"
)

func square(w, h, x0, y0, x1, y1 int) Mask {
	m := make(Mask, w*h)
	for y := y0; y < y1; y++ {
		for x := x0; x < x1; x++ {
			m[y*w+x] = true
		}
	}
	return m
}

func TestOverlay(t *testing.T) {
	const w, h = 12, 10
	img := NewRGB(w, h)
	for i := range img.Pix {
		img.Pix[i] = 100
	}
	a := square(w, h, 2, 2, 7, 7)
	b := square(w, h, 6, 5, 12, 10) // touches the border, overlaps a
	out, err := Overlay(img, []Mask{a, b}, 0.5)
	require.NoError(t, err)
	require.Equal(t, [3]uint8{100, 100, 100}, px(img, 4, 4), "input untouched")

	blend := func(c [3]uint8) [3]uint8 {
		var r [3]uint8
		for i := range 3 {
			r[i] = uint8((100*128 + uint32(c[i])*128 + 128) >> 8)
		}
		return r
	}
	ca, cb := MaskColor(0), MaskColor(1)
	require.NotEqual(t, ca, cb)
	require.Equal(t, blend(ca), px(out, 4, 4), "inside a")
	require.Equal(t, [3]uint8{100, 100, 100}, px(out, 0, 0), "outside both")
	require.Equal(t, outlineColor(ca), px(out, 2, 4), "a's inner edge")
	require.Equal(t, outlineColor(ca), px(out, 1, 4), "a's outer edge")
	require.Equal(t, outlineColor(cb), px(out, 11, 9), "b's edge along the image border")
	require.Equal(t, blend(cb), px(out, 9, 7), "inside b")

	// alpha 0: only outlines; alpha 1: the colour itself.
	out0, err := Overlay(img, []Mask{a}, 0)
	require.NoError(t, err)
	require.Equal(t, [3]uint8{100, 100, 100}, px(out0, 4, 4))
	out1, err := Overlay(img, []Mask{a}, 1)
	require.NoError(t, err)
	require.Equal(t, ca, px(out1, 4, 4))

	// Deterministic.
	again, err := Overlay(img, []Mask{a, b}, 0.5)
	require.NoError(t, err)
	require.Equal(t, out.Pix, again.Pix)

	_, err = Overlay(img, []Mask{make(Mask, 5)}, 0.5)
	require.ErrorIs(t, err, ErrMaskSize)
}

func TestMaskColorsDistinct(t *testing.T) {
	seen := map[[3]uint8]bool{}
	for i := range 64 {
		c := MaskColor(i)
		require.False(t, seen[c], "colour %d repeats", i)
		seen[c] = true
		require.Equal(t, c, MaskColor(i))
	}
}

func TestMaskPNG(t *testing.T) {
	m := square(5, 3, 1, 1, 3, 2)
	var b bytes.Buffer
	require.NoError(t, MaskPNG(&b, m, 5, 3))
	img, err := png.Decode(bytes.NewReader(b.Bytes()))
	require.NoError(t, err)
	g, ok := img.(*image.Gray)
	require.True(t, ok, "8-bit grayscale, got %T", img)
	for i, v := range m {
		want := uint8(0)
		if v {
			want = 255
		}
		require.Equal(t, want, g.Pix[i])
	}
	require.ErrorIs(t, MaskPNG(&b, m, 4, 3), ErrMaskSize)

	path := filepath.Join(t.TempDir(), "m.png")
	require.NoError(t, SaveMaskPNG(path, m, 5, 3))
	back, err := Load(path)
	require.NoError(t, err)
	require.Equal(t, [3]uint8{255, 255, 255}, px(back, 1, 1))
	require.Equal(t, [3]uint8{0, 0, 0}, px(back, 0, 0))
}

func TestNormalizeErrors(t *testing.T) {
	m := NewRGB(10, 20)
	_, err := Normalize(m, 16, PixelMean, PixelStd)
	require.ErrorIs(t, err, ErrSize)
	_, err = NormalizeCHW(m, 16, PixelMean, PixelStd)
	require.ErrorIs(t, err, ErrSize)
	_, err = Normalize(NewRGB(0, 0), 16, PixelMean, PixelStd)
	require.ErrorIs(t, err, ErrSize)
	x, err := Normalize(m, 20, PixelMean, PixelStd)
	require.NoError(t, err)
	// Inside: (0 − mean)/std; padding (x ≥ 10): exactly 0.
	require.Equal(t, float32(float32(0-PixelMean[1])/PixelStd[1]), x[(5*20+3)*3+1])
	require.Equal(t, float32(0), x[(5*20+15)*3+1])
}

func BenchmarkOverlay(b *testing.B) {
	const w, h = 1024, 768
	img := randomRGB(newRand(), w, h)
	var masks []Mask
	for i := range 20 {
		masks = append(masks, square(w, h, 30*i, 20*i, 30*i+200, 20*i+150))
	}
	for b.Loop() {
		if _, err := Overlay(img, masks, 0.5); err != nil {
			b.Fatal(err)
		}
	}
}
