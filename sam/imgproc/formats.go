package imgproc

import (
	"encoding/binary"
	"errors"
	"image"
)

// pngInfo is what fromPNG needs from a PNG's chunks: IHDR's bit depth and
// colour type, and the number of PLTE entries.
type pngInfo struct {
	depth, colorType byte
	paletteLen       int
}

// parsePNG walks the chunks up to the first IDAT. The data has already been
// accepted by image.DecodeConfig, but every read is bounds-checked anyway.
func parsePNG(data []byte) pngInfo {
	var info pngInfo
	const sigLen = 8
	for off := sigLen; off+8 <= len(data); {
		n := int(binary.BigEndian.Uint32(data[off:]))
		typ := string(data[off+4 : off+8])
		body := off + 8
		if n < 0 || n > len(data)-body {
			break
		}
		switch typ {
		case "IHDR":
			if n >= 10 {
				info.depth, info.colorType = data[body+8], data[body+9]
			}
		case "PLTE":
			info.paletteLen = n / 3
		case "IDAT":
			return info
		}
		off = body + n + 4 // + CRC
	}
	return info
}

// fromPNG converts a decoded PNG with the PNG rules of decodeBytes.
func fromPNG(src image.Image, data []byte) *RGB {
	info := parsePNG(data)
	switch m := src.(type) {
	case *image.NRGBA64:
		if info.colorType == 0 && info.depth == 16 {
			// 16-bit gray with tRNS: Pillow mode "I", clipped.
			b := m.Bounds()
			w, h := b.Dx(), b.Dy()
			dst := NewRGB(w, h)
			for y := 0; y < h; y++ {
				row := m.Pix[m.PixOffset(b.Min.X, b.Min.Y+y):][:8*w]
				out := dst.Pix[y*w*3:][:w*3]
				for x := 0; x < w; x++ {
					v := clip16to8(uint16(row[8*x])<<8 | uint16(row[8*x+1]))
					out[3*x], out[3*x+1], out[3*x+2] = v, v, v
				}
			}
			return dst
		}
	case *image.Paletted:
		if info.paletteLen < len(m.Palette) {
			// Out-of-range indices: Pillow's palette starts as a grey ramp.
			p := m.Palette[:info.paletteLen]
			q := *m
			q.Palette = p
			return fromPaletted(&q, func(i int) [3]uint8 { return [3]uint8{uint8(i), uint8(i), uint8(i)} })
		}
	}
	return FromImage(src)
}

// fromPaletted is FromImage for *image.Paletted with a fill for indices
// beyond the palette.
func fromPaletted(m *image.Paletted, fill func(int) [3]uint8) *RGB {
	b := m.Bounds()
	w, h := b.Dx(), b.Dy()
	dst := NewRGB(w, h)
	lut := paletteLUT(m.Palette, fill)
	for y := 0; y < h; y++ {
		row := m.Pix[m.PixOffset(b.Min.X, b.Min.Y+y):][:w]
		out := dst.Pix[y*w*3:][:w*3]
		for x, i := range row {
			c := lut[i]
			out[3*x], out[3*x+1], out[3*x+2] = c[0], c[1], c[2]
		}
	}
	return dst
}

// gifFirstFrame is what Pillow uses of a GIF that Go's decoder does not
// return: the palette of the first frame as stored, its transparent index
// and its rectangle on the logical screen.
type gifFirstFrame struct {
	palette     [][3]uint8 // local colour table if any, else the global one
	transparent int        // -1 if none
	rect        image.Rectangle
}

var errGIF = errors.New("gif: malformed header")

// parseGIF reads the header, colour tables and extensions up to the first
// image descriptor (GIF89a, sections 17-23).
func parseGIF(data []byte) (*gifFirstFrame, error) {
	if len(data) < 13 {
		return nil, errGIF
	}
	g := &gifFirstFrame{transparent: -1}
	flags := data[10]
	off := 13
	var global [][3]uint8
	if flags&0x80 != 0 {
		n := 1 << (flags&7 + 1)
		if off+3*n > len(data) {
			return nil, errGIF
		}
		global = readColorTable(data[off : off+3*n])
		off += 3 * n
	}
	for off < len(data) {
		switch data[off] {
		case 0x21: // extension
			if off+2 > len(data) {
				return nil, errGIF
			}
			label := data[off+1]
			off += 2
			// Sub-blocks until a zero-length one.
			first := true
			for {
				if off >= len(data) {
					return nil, errGIF
				}
				n := int(data[off])
				if off+1+n > len(data) {
					return nil, errGIF
				}
				if label == 0xf9 && first && n >= 4 { // graphic control
					if data[off+1]&1 != 0 {
						g.transparent = int(data[off+4])
					} else {
						g.transparent = -1
					}
				}
				first = false
				off += 1 + n
				if n == 0 {
					break
				}
			}
		case 0x2c: // image descriptor
			if off+10 > len(data) {
				return nil, errGIF
			}
			d := data[off+1 : off+10]
			x0, y0 := int(binary.LittleEndian.Uint16(d[0:])), int(binary.LittleEndian.Uint16(d[2:]))
			w, h := int(binary.LittleEndian.Uint16(d[4:])), int(binary.LittleEndian.Uint16(d[6:]))
			g.rect = image.Rect(x0, y0, x0+w, y0+h)
			g.palette = global
			if f := d[8]; f&0x80 != 0 {
				n := 1 << (f&7 + 1)
				start := off + 10
				if start+3*n > len(data) {
					return nil, errGIF
				}
				g.palette = readColorTable(data[start : start+3*n])
			}
			return g, nil
		default: // trailer or garbage: let the decoder report it
			return g, nil
		}
	}
	return g, nil
}

func readColorTable(b []byte) [][3]uint8 {
	t := make([][3]uint8, len(b)/3)
	for i := range t {
		t[i] = [3]uint8{b[3*i], b[3*i+1], b[3*i+2]}
	}
	return t
}

// compose places the first frame on the logical screen as Pillow 9.4 loads
// frame 0: the screen is filled with the transparent index if there is one
// (else index 0), the frame's pixels are drawn in its rectangle (clipped to
// the screen), and indices map through the stored palette, transparent
// entry included. Indices beyond the palette are black.
func (g *gifFirstFrame) compose(p *image.Paletted, w, h int) *RGB {
	if g == nil || len(g.palette) == 0 {
		return FromImage(p)
	}
	var lut [256][3]uint8
	copy(lut[:], g.palette)
	fill := 0
	if g.transparent >= 0 {
		fill = g.transparent
	}
	dst := NewRGB(w, h)
	fc := lut[fill]
	for i := 0; i < len(dst.Pix); i += 3 {
		dst.Pix[i], dst.Pix[i+1], dst.Pix[i+2] = fc[0], fc[1], fc[2]
	}
	r := p.Bounds().Intersect(image.Rect(0, 0, w, h))
	for y := r.Min.Y; y < r.Max.Y; y++ {
		row := p.Pix[p.PixOffset(r.Min.X, y):][:r.Dx()]
		out := dst.Pix[(y*w+r.Min.X)*3:][:r.Dx()*3]
		for x, i := range row {
			c := lut[i]
			out[3*x], out[3*x+1], out[3*x+2] = c[0], c[1], c[2]
		}
	}
	return dst
}
