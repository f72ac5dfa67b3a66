package imgproc

import (
	"bytes"
	"image"
	"image/color"
	"image/gif"
	"image/png"
	"testing"

	"github.com/stretchr/testify/require"
	"golang.org/x/image/bmp"
	"golang.org/x/image/tiff"
)

func px(m *RGB, x, y int) [3]uint8 {
	r, g, b := m.At(x, y)
	return [3]uint8{r, g, b}
}

// roundTrip encodes img with enc, decodes it with Decode and returns it.
func roundTrip(t *testing.T, img image.Image, enc func(*bytes.Buffer, image.Image) error) *RGB {
	t.Helper()
	var buf bytes.Buffer
	require.NoError(t, enc(&buf, img))
	out, err := Decode(&buf)
	require.NoError(t, err)
	return out
}

func encPNG(b *bytes.Buffer, m image.Image) error  { return png.Encode(b, m) }
func encBMP(b *bytes.Buffer, m image.Image) error  { return bmp.Encode(b, m) }
func encTIFF(b *bytes.Buffer, m image.Image) error { return tiff.Encode(b, m, nil) }
func encGIF(b *bytes.Buffer, m image.Image) error  { return gif.Encode(b, m, nil) }

func TestFromImageGray(t *testing.T) {
	m := image.NewGray(image.Rect(0, 0, 3, 2))
	copy(m.Pix, []uint8{0, 1, 127, 128, 254, 255})
	for name, got := range map[string]*RGB{
		"direct": FromImage(m),
		"png":    roundTrip(t, m, encPNG),
		"bmp":    roundTrip(t, m, encBMP),
		"tiff":   roundTrip(t, m, encTIFF),
	} {
		for i, v := range m.Pix {
			require.Equal(t, [3]uint8{v, v, v}, px(got, i%3, i/3), name)
		}
	}
}

func TestFromImageGray16Clips(t *testing.T) {
	// Pillow opens 16-bit gray as "I" / "I;16": convert("RGB") clips, it does not scale.
	m := image.NewGray16(image.Rect(0, 0, 5, 1))
	vals := []uint16{0, 200, 255, 256, 65535}
	want := []uint8{0, 200, 255, 255, 255}
	for i, v := range vals {
		m.SetGray16(i, 0, color.Gray16{Y: v})
	}
	for name, got := range map[string]*RGB{
		"direct": FromImage(m),
		"png":    roundTrip(t, m, encPNG),
		"tiff":   roundTrip(t, m, encTIFF),
	} {
		for i, v := range want {
			require.Equal(t, [3]uint8{v, v, v}, px(got, i, 0), "%s value %d", name, vals[i])
		}
	}
}

func TestFromImageRGBA(t *testing.T) {
	m := image.NewRGBA(image.Rect(0, 0, 5, 1))
	copy(m.Pix, []uint8{
		10, 20, 30, 255, // opaque: unchanged
		100, 50, 0, 128, // premultiplied: floor(c·255/a)
		0, 0, 0, 0, // transparent: 0
		253, 10, 0, 254,
		130, 3, 1, 129, // not validly premultiplied (c > a): clipped
	})
	got := FromImage(m)
	require.Equal(t, [3]uint8{10, 20, 30}, px(got, 0, 0))
	require.Equal(t, [3]uint8{199, 99, 0}, px(got, 1, 0))
	require.Equal(t, [3]uint8{0, 0, 0}, px(got, 2, 0))
	require.Equal(t, [3]uint8{253, 10, 0}, px(got, 3, 0)) // color.NRGBAModel would give 254
	require.Equal(t, [3]uint8{255, 5, 1}, px(got, 4, 0))

	// Opaque RGBA through BMP (24-bit) and TIFF.
	o := image.NewRGBA(image.Rect(0, 0, 2, 2))
	copy(o.Pix, []uint8{1, 2, 3, 255, 4, 5, 6, 255, 7, 8, 9, 255, 250, 251, 252, 255})
	for name, got := range map[string]*RGB{"bmp": roundTrip(t, o, encBMP), "tiff": roundTrip(t, o, encTIFF), "png": roundTrip(t, o, encPNG)} {
		require.Equal(t, []uint8{1, 2, 3, 4, 5, 6, 7, 8, 9, 250, 251, 252}, got.Pix, name)
	}
}

func TestFromImageNRGBA(t *testing.T) {
	m := image.NewNRGBA(image.Rect(0, 0, 3, 1))
	copy(m.Pix, []uint8{10, 20, 30, 0, 40, 50, 60, 128, 70, 80, 90, 255})
	want := []uint8{10, 20, 30, 40, 50, 60, 70, 80, 90} // alpha dropped, no compositing
	require.Equal(t, want, FromImage(m).Pix)
	require.Equal(t, want, roundTrip(t, m, encPNG).Pix)
	require.Equal(t, want, roundTrip(t, m, encTIFF).Pix)
}

func TestFromImage16Bit(t *testing.T) {
	n := image.NewNRGBA64(image.Rect(0, 0, 2, 1))
	n.SetNRGBA64(0, 0, color.NRGBA64{R: 0x12ff, G: 0x3480, B: 0xfe7f, A: 0})
	n.SetNRGBA64(1, 0, color.NRGBA64{R: 0x00ff, G: 0xff00, B: 0x8080, A: 0x8000})
	want := []uint8{0x12, 0x34, 0xfe, 0x00, 0xff, 0x80} // most significant byte
	require.Equal(t, want, FromImage(n).Pix)
	require.Equal(t, want, roundTrip(t, n, encPNG).Pix)

	r := image.NewRGBA64(image.Rect(0, 0, 3, 1))
	r.SetRGBA64(0, 0, color.RGBA64{R: 0x12ff, G: 0x3480, B: 0xfe7f, A: 0xffff})
	r.SetRGBA64(1, 0, color.RGBA64{R: 0x4000, G: 0x8000, B: 0, A: 0x8000})
	r.SetRGBA64(2, 0, color.RGBA64{})
	got := FromImage(r)
	require.Equal(t, []uint8{0x12, 0x34, 0xfe, 0x7f, 0xff, 0, 0, 0, 0}, got.Pix)
	o := image.NewRGBA64(image.Rect(0, 0, 1, 1))
	o.SetRGBA64(0, 0, color.RGBA64{R: 0x12ff, G: 0x3480, B: 0xfe7f, A: 0xffff})
	require.Equal(t, []uint8{0x12, 0x34, 0xfe}, roundTrip(t, o, encPNG).Pix) // 16-bit RGB PNG
}

func TestFromImagePaletted(t *testing.T) {
	pal := color.Palette{
		color.RGBA{10, 20, 30, 255},
		color.NRGBA{40, 50, 60, 0}, // transparent entry keeps its colour
		color.RGBA{70, 80, 90, 255},
	}
	m := image.NewPaletted(image.Rect(0, 0, 3, 1), pal)
	copy(m.Pix, []uint8{0, 1, 2})
	want := []uint8{10, 20, 30, 40, 50, 60, 70, 80, 90}
	require.Equal(t, want, FromImage(m).Pix)
	require.Equal(t, want, roundTrip(t, m, encPNG).Pix) // PLTE + tRNS

	op := image.NewPaletted(image.Rect(0, 0, 3, 1), color.Palette{pal[0], color.RGBA{40, 50, 60, 255}, pal[2]})
	copy(op.Pix, []uint8{2, 1, 0})
	wantOp := []uint8{70, 80, 90, 40, 50, 60, 10, 20, 30}
	require.Equal(t, wantOp, roundTrip(t, op, encGIF).Pix)
	require.Equal(t, wantOp, roundTrip(t, op, encBMP).Pix)
	require.Equal(t, wantOp, roundTrip(t, op, encTIFF).Pix)

	// Out-of-range index: black (Go's convention; Decode applies Pillow's
	// grey ramp for PNG, see the Pillow reference tests).
	m.Pix[0] = 200
	require.Equal(t, [3]uint8{0, 0, 0}, px(FromImage(m), 0, 0))
}

// libjpeg's YCbCr → RGB for one sample, restated from jdcolor.c's formulas.
func libjpegRGB(y, cb, cr int) [3]uint8 {
	fix := func(x float64) int { return int(x*65536 + 0.5) }
	c := func(v int) uint8 { return uint8(max(0, min(255, v))) }
	b, r := cb-128, cr-128
	return [3]uint8{
		c(y + (fix(1.402)*r+32768)>>16),
		c(y + (-fix(0.34414)*b+32768-fix(0.71414)*r)>>16),
		c(y + (fix(1.772)*b+32768)>>16),
	}
}

func TestFromImageYCbCr(t *testing.T) {
	m := image.NewYCbCr(image.Rect(0, 0, 4, 1), image.YCbCrSubsampleRatio444)
	copy(m.Y, []uint8{100, 128, 0, 255})
	copy(m.Cb, []uint8{50, 128, 255, 0})
	copy(m.Cr, []uint8{200, 128, 0, 255})
	got := FromImage(m)
	require.Equal(t, [3]uint8{201, 75, 0}, px(got, 0, 0)) // worked by hand from jdcolor.c
	for x := range 4 {
		require.Equal(t, libjpegRGB(int(m.Y[x]), int(m.Cb[x]), int(m.Cr[x])), px(got, x, 0))
	}

	// 4:2:2, 6 wide (3 chroma samples > 2: fancy): chroma [0 100 200]
	// upsamples to 0, 25, 75, 125, 175, 200 (3:1 triangle, biases 1 and 2).
	h := image.NewYCbCr(image.Rect(0, 0, 6, 1), image.YCbCrSubsampleRatio422)
	for i := range h.Y {
		h.Y[i] = 128
	}
	copy(h.Cb, []uint8{0, 100, 200})
	copy(h.Cr, []uint8{128, 128, 128})
	got = FromImage(h)
	for x, cb := range []int{0, 25, 75, 125, 175, 200} {
		require.Equal(t, libjpegRGB(128, cb, 128), px(got, x, 0), "x=%d", x)
	}
	// 4 wide (2 chroma samples): libjpeg replicates instead.
	h2 := image.NewYCbCr(image.Rect(0, 0, 4, 1), image.YCbCrSubsampleRatio422)
	copy(h2.Y, []uint8{128, 128, 128, 128})
	copy(h2.Cb, []uint8{0, 200})
	copy(h2.Cr, []uint8{128, 128})
	got = FromImage(h2)
	for x, cb := range []int{0, 0, 200, 200} {
		require.Equal(t, libjpegRGB(128, cb, 128), px(got, x, 0), "x=%d", x)
	}

	// NYCbCrA: alpha dropped.
	a := &image.NYCbCrA{YCbCr: *m, A: []uint8{0, 0, 0, 0}, AStride: 4}
	require.Equal(t, FromImage(m).Pix, FromImage(a).Pix)
}

func TestFromImageCMYK(t *testing.T) {
	// Expected values from Pillow 9.4.0: Image CMYK → convert("RGB").
	cases := []struct {
		cmyk [4]uint8
		rgb  [3]uint8
	}{
		{[4]uint8{0, 0, 0, 0}, [3]uint8{255, 255, 255}},
		{[4]uint8{255, 0, 0, 0}, [3]uint8{0, 255, 255}},
		{[4]uint8{100, 50, 200, 30}, [3]uint8{137, 181, 49}},
		{[4]uint8{10, 20, 30, 250}, [3]uint8{5, 5, 4}},
		{[4]uint8{128, 128, 128, 128}, [3]uint8{63, 63, 63}},
		{[4]uint8{200, 100, 50, 100}, [3]uint8{33, 94, 125}},
	}
	m := image.NewCMYK(image.Rect(0, 0, len(cases), 1))
	for i, c := range cases {
		copy(m.Pix[4*i:], c.cmyk[:])
	}
	got := FromImage(m)
	for i, c := range cases {
		require.Equal(t, c.rgb, px(got, i, 0), "cmyk %v", c.cmyk)
	}
}

func TestFromImageSubImagesAndFallback(t *testing.T) {
	// Every fast path must honour a non-zero Bounds().Min.
	full := image.NewNRGBA(image.Rect(0, 0, 7, 5))
	for i := range full.Pix {
		full.Pix[i] = uint8(i * 7)
	}
	opaque := func(m *image.NRGBA) *image.NRGBA {
		c := image.NewNRGBA(m.Rect)
		copy(c.Pix, m.Pix)
		for i := 3; i < len(c.Pix); i += 4 {
			c.Pix[i] = 255
		}
		return c
	}(full)
	r := image.Rect(2, 1, 6, 4)
	want := NewRGB(r.Dx(), r.Dy())
	for y := r.Min.Y; y < r.Max.Y; y++ {
		for x := r.Min.X; x < r.Max.X; x++ {
			c := opaque.NRGBAAt(x, y)
			i := ((y-r.Min.Y)*r.Dx() + (x - r.Min.X)) * 3
			want.Pix[i], want.Pix[i+1], want.Pix[i+2] = c.R, c.G, c.B
		}
	}
	conv := map[string]image.Image{}
	conv["NRGBA"] = opaque.SubImage(r)
	rgba := image.NewRGBA(opaque.Rect)
	rgba64 := image.NewRGBA64(opaque.Rect)
	nrgba64 := image.NewNRGBA64(opaque.Rect)
	cmyk := image.NewCMYK(opaque.Rect)
	for y := 0; y < 5; y++ {
		for x := 0; x < 7; x++ {
			c := opaque.NRGBAAt(x, y)
			rgba.SetRGBA(x, y, color.RGBA{c.R, c.G, c.B, 255})
			rgba64.SetRGBA64(x, y, color.RGBA64{uint16(c.R) * 0x101, uint16(c.G) * 0x101, uint16(c.B) * 0x101, 0xffff})
			nrgba64.SetNRGBA64(x, y, color.NRGBA64{uint16(c.R)<<8 | 0x7f, uint16(c.G) << 8, uint16(c.B)<<8 | 0xff, 0})
		}
	}
	conv["RGBA"] = rgba.SubImage(r)
	conv["RGBA64"] = rgba64.SubImage(r)
	conv["NRGBA64"] = nrgba64.SubImage(r)
	// The generic path: a type FromImage has no fast path for.
	conv["generic"] = struct{ image.Image }{opaque.SubImage(r)}
	for name, img := range conv {
		require.Equal(t, want.Pix, FromImage(img).Pix, name)
	}
	// Gray, Gray16, Paletted, CMYK, YCbCr sub-images against their own At.
	gray := image.NewGray(opaque.Rect)
	gray16 := image.NewGray16(opaque.Rect)
	pal := image.NewPaletted(opaque.Rect, color.Palette{color.RGBA{1, 2, 3, 255}, color.RGBA{4, 5, 6, 255}})
	for i := range gray.Pix {
		gray.Pix[i] = uint8(i * 11)
		gray16.Pix[2*i+1] = uint8(i * 11)
		pal.Pix[i] = uint8(i % 2)
	}
	for i := range cmyk.Pix {
		cmyk.Pix[i] = 0
	}
	for name, img := range map[string]image.Image{"Gray": gray.SubImage(r), "Gray16": gray16.SubImage(r), "Paletted": pal.SubImage(r), "CMYK": cmyk.SubImage(r)} {
		got := FromImage(img)
		b := img.Bounds()
		for y := b.Min.Y; y < b.Max.Y; y++ {
			for x := b.Min.X; x < b.Max.X; x++ {
				c := color.NRGBAModel.Convert(img.At(x, y)).(color.NRGBA)
				if g, ok := img.At(x, y).(color.Gray16); ok { // clipped, not scaled
					v := uint8(min(g.Y, 255))
					c = color.NRGBA{v, v, v, 255}
				}
				require.Equal(t, [3]uint8{c.R, c.G, c.B}, px(got, x-b.Min.X, y-b.Min.Y), "%s (%d,%d)", name, x, y)
			}
		}
	}
	ycc := image.NewYCbCr(image.Rect(0, 0, 8, 6), image.YCbCrSubsampleRatio420)
	for i := range ycc.Y {
		ycc.Y[i] = uint8(i * 5)
	}
	for i := range ycc.Cb {
		ycc.Cb[i], ycc.Cr[i] = 128, 128 // grey: upsampling cannot matter
	}
	sub := ycc.SubImage(image.Rect(2, 2, 7, 5)).(*image.YCbCr)
	got := FromImage(sub)
	for y := 2; y < 5; y++ {
		for x := 2; x < 7; x++ {
			v := ycc.Y[ycc.YOffset(x, y)]
			require.Equal(t, [3]uint8{v, v, v}, px(got, x-2, y-2))
		}
	}

	// Empty image: empty result.
	e := FromImage(image.NewRGBA(image.Rect(0, 0, 0, 3)))
	require.Equal(t, 0, len(e.Pix))
}
