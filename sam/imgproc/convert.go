package imgproc

import (
	"image"
	"image/color"
)

// FromImage converts img to RGB as Pillow's Image.convert("RGB") converts the
// image Pillow opens from the same file (Pillow 9.4.0, the version behind the
// reference fixtures; every rule below was checked against it). Alpha is
// dropped, never composited onto a background and never multiplied in.
//
//	Go type          decoders that return it                   rule
//	*image.Gray      PNG gray 1-8 bit, JPEG gray, TIFF          R = G = B = Y (Pillow "L"; 1/2/4-bit PNG
//	                                                            gray is scaled to 0..255 by both)
//	*image.Gray16    PNG 16-bit gray, TIFF 16-bit gray          R = G = B = min(Y, 255): Pillow opens these as
//	                                                            "I" / "I;16" and convert clips, it does not scale
//	*image.RGBA      PNG 8-bit RGB, BMP 24-bit, TIFF RGB or     opaque: unchanged. a < 255: un-premultiplied as
//	                 RGB+associated alpha, JPEG Adobe RGB       Pillow's "RGBa" unpacker does: min(c·255/a, 255)
//	                                                            (integer division), 0 where a = 0
//	*image.NRGBA     PNG RGBA / gray+alpha / with tRNS, BMP     alpha dropped (Pillow "RGBA", "LA" → RGB)
//	                 32-bit, TIFF unassociated alpha, WebP
//	                 lossless
//	*image.RGBA64    PNG 16-bit RGB, TIFF 16-bit RGB            high byte (Pillow unpacks "RGB;16B" keeping the
//	                                                            most significant byte); a < 0xffff:
//	                                                            un-premultiplied first, min(c·0xffff/a, 0xffff)
//	*image.NRGBA64   PNG 16-bit RGBA / gray+alpha / with tRNS,  high byte, alpha dropped (Pillow "RGBA;16B",
//	                 TIFF 16-bit unassociated alpha             "LA;16B")
//	*image.Paletted  PNG palette, GIF, BMP ≤ 8-bit, TIFF        the palette colour, transparency ignored (Pillow
//	                 palette                                    "P"): an NRGBA entry gives its R, G, B; other
//	                                                            entries go through color.NRGBAModel
//	*image.YCbCr     JPEG (and WebP lossy, see Decode)          as libjpeg-turbo (Pillow's JPEG library) outputs
//	                                                            RGB: "fancy" triangle-filter chroma upsampling
//	                                                            for 4:2:2, 4:2:0 (chroma wider than 2 samples)
//	                                                            and 4:4:0, replication otherwise, then libjpeg's
//	                                                            fixed-point tables (jdcolor.c, 16 fraction bits);
//	                                                            see jpegYCbCrToRGB
//	*image.NYCbCrA   WebP lossy with alpha (see Decode)         as *image.YCbCr, alpha dropped
//	*image.CMYK      JPEG CMYK / YCCK with an Adobe marker      Pillow's cmyk2rgb: nk = 255 − K,
//	                                                            R = nk − MULDIV255(C, nk) (same for G, B) where
//	                                                            MULDIV255(a,b) = (t + t>>8) >> 8, t = a·b+128.
//	                                                            (Adobe files store inverted CMYK; Go's decoder
//	                                                            and Pillow's "CMYK;I" rawmode both undo that.)
//	anything else                                               color.NRGBAModel, high bytes
//
// JPEG: Go's IDCT is not libjpeg's "islow" one, so decoded samples, and
// hence RGB, can differ from Pillow's by a few levels (at most 3, mean
// about 0.05, over the files in testdata/pillow); everything after the IDCT
// is reproduced. Converting Go's *image.YCbCr with Go's own color model
// instead (nearest-neighbour chroma, other rounding) differs by up to ~90
// levels at colour edges, mean ~9, on the same files. Go's decoder refuses
// 4-component JPEGs without an Adobe marker, which Pillow reads.
//
// The result always has len(Pix) == W·H·3, W and H being img.Bounds()' size.
func FromImage(img image.Image) *RGB {
	b := img.Bounds()
	w, h := b.Dx(), b.Dy()
	if w <= 0 || h <= 0 {
		return NewRGB(0, 0)
	}
	dst := NewRGB(w, h)
	switch m := img.(type) {
	case *image.Gray:
		for y := 0; y < h; y++ {
			row := m.Pix[m.PixOffset(b.Min.X, b.Min.Y+y):][:w]
			out := dst.Pix[y*w*3:][:w*3]
			for x, v := range row {
				out[3*x], out[3*x+1], out[3*x+2] = v, v, v
			}
		}
	case *image.Gray16:
		for y := 0; y < h; y++ {
			row := m.Pix[m.PixOffset(b.Min.X, b.Min.Y+y):][:2*w]
			out := dst.Pix[y*w*3:][:w*3]
			for x := 0; x < w; x++ {
				v := clip16to8(uint16(row[2*x])<<8 | uint16(row[2*x+1]))
				out[3*x], out[3*x+1], out[3*x+2] = v, v, v
			}
		}
	case *image.RGBA:
		for y := 0; y < h; y++ {
			row := m.Pix[m.PixOffset(b.Min.X, b.Min.Y+y):][:4*w]
			out := dst.Pix[y*w*3:][:w*3]
			for x := 0; x < w; x++ {
				p := row[4*x : 4*x+4 : 4*x+4]
				out[3*x], out[3*x+1], out[3*x+2] = unpremul8(p[0], p[3]), unpremul8(p[1], p[3]), unpremul8(p[2], p[3])
			}
		}
	case *image.NRGBA:
		for y := 0; y < h; y++ {
			row := m.Pix[m.PixOffset(b.Min.X, b.Min.Y+y):][:4*w]
			out := dst.Pix[y*w*3:][:w*3]
			for x := 0; x < w; x++ {
				out[3*x], out[3*x+1], out[3*x+2] = row[4*x], row[4*x+1], row[4*x+2]
			}
		}
	case *image.RGBA64:
		for y := 0; y < h; y++ {
			row := m.Pix[m.PixOffset(b.Min.X, b.Min.Y+y):][:8*w]
			out := dst.Pix[y*w*3:][:w*3]
			for x := 0; x < w; x++ {
				p := row[8*x : 8*x+8 : 8*x+8]
				a := uint32(p[6])<<8 | uint32(p[7])
				for c := 0; c < 3; c++ {
					out[3*x+c] = unpremul16(uint32(p[2*c])<<8|uint32(p[2*c+1]), a)
				}
			}
		}
	case *image.NRGBA64:
		for y := 0; y < h; y++ {
			row := m.Pix[m.PixOffset(b.Min.X, b.Min.Y+y):][:8*w]
			out := dst.Pix[y*w*3:][:w*3]
			for x := 0; x < w; x++ {
				out[3*x], out[3*x+1], out[3*x+2] = row[8*x], row[8*x+2], row[8*x+4]
			}
		}
	case *image.Paletted:
		return fromPaletted(m, nil)
	case *image.YCbCr:
		jpegYCbCrToRGB(m, dst)
	case *image.NYCbCrA:
		jpegYCbCrToRGB(&m.YCbCr, dst)
	case *image.CMYK:
		for y := 0; y < h; y++ {
			row := m.Pix[m.PixOffset(b.Min.X, b.Min.Y+y):][:4*w]
			out := dst.Pix[y*w*3:][:w*3]
			for x := 0; x < w; x++ {
				p := row[4*x : 4*x+4 : 4*x+4]
				nk := 255 - uint32(p[3])
				out[3*x] = uint8(nk - muldiv255(uint32(p[0]), nk))
				out[3*x+1] = uint8(nk - muldiv255(uint32(p[1]), nk))
				out[3*x+2] = uint8(nk - muldiv255(uint32(p[2]), nk))
			}
		}
	default:
		i := 0
		for y := b.Min.Y; y < b.Max.Y; y++ {
			for x := b.Min.X; x < b.Max.X; x++ {
				c := color.NRGBAModel.Convert(img.At(x, y)).(color.NRGBA)
				dst.Pix[i], dst.Pix[i+1], dst.Pix[i+2] = c.R, c.G, c.B
				i += 3
			}
		}
	}
	return dst
}

// clip16to8 is Pillow's "I" / "I;16" → "RGB" conversion of one value.
func clip16to8(v uint16) uint8 {
	if v > 255 {
		return 255
	}
	return uint8(v)
}

// unpremul8 un-premultiplies an associated-alpha sample as Pillow's
// unpackRGBa (Unpack.c) does: 0 for a = 0, c for a = 255, else
// CLIP8(c·255/a) with truncating division.
func unpremul8(c, a uint8) uint8 {
	switch a {
	case 255:
		return c
	case 0:
		return 0
	}
	v := uint32(c) * 255 / uint32(a)
	if v > 255 {
		return 255
	}
	return uint8(v)
}

// unpremul16 un-premultiplies a 16-bit sample (as color.NRGBA64Model, but
// clipped) and keeps its high byte.
func unpremul16(c, a uint32) uint8 {
	switch a {
	case 0xffff:
		return uint8(c >> 8)
	case 0:
		return 0
	}
	v := c * 0xffff / a
	if v > 0xffff {
		return 255
	}
	return uint8(v >> 8)
}

// muldiv255 is Pillow's MULDIV255 macro: a·b/255 rounded, in integers.
func muldiv255(a, b uint32) uint32 {
	t := a*b + 128
	return (t>>8 + t) >> 8
}

// paletteLUT maps all 256 indices to RGB. Entries at or beyond len(p) take
// fill(i) when fill is non-nil, else black.
func paletteLUT(p color.Palette, fill func(i int) [3]uint8) *[256][3]uint8 {
	var lut [256][3]uint8
	for i := range lut {
		switch {
		case i < len(p):
			switch c := p[i].(type) {
			case color.NRGBA:
				lut[i] = [3]uint8{c.R, c.G, c.B}
			case nil:
			default:
				n := color.NRGBAModel.Convert(c).(color.NRGBA)
				lut[i] = [3]uint8{n.R, n.G, n.B}
			}
		case fill != nil:
			lut[i] = fill(i)
		}
	}
	return &lut
}
