package imgproc

import "image"

// Y'CbCr → RGB as the C libraries behind Pillow do it. Go's decoders stop at
// the Y'CbCr planes (chroma at its stored resolution), so both the chroma
// upsampling and the colour conversion are ours to match.

// libjpeg's YCC→RGB tables (jdcolor.c build_ycc_rgb_table, SCALEBITS 16):
//
//	R = Y + ((FIX(1.40200)·(Cr−128) + ONE_HALF) >> 16)
//	G = Y + ((−FIX(0.34414)·(Cb−128) + ONE_HALF − FIX(0.71414)·(Cr−128)) >> 16)
//	B = Y + ((FIX(1.77200)·(Cb−128) + ONE_HALF) >> 16)
//
// with FIX(x) = int(x·2^16 + 0.5), arithmetic shifts, and the sum clamped to
// 0..255.
var jpegCrR, jpegCbB, jpegCrG, jpegCbG [256]int32

func init() {
	const (
		scaleBits = 16
		oneHalf   = 1 << (scaleBits - 1)
	)
	fix := func(x float64) int32 { return int32(x*(1<<scaleBits) + 0.5) }
	for i := range 256 {
		x := int32(i - 128)
		jpegCrR[i] = (fix(1.40200)*x + oneHalf) >> scaleBits
		jpegCbB[i] = (fix(1.77200)*x + oneHalf) >> scaleBits
		jpegCrG[i] = -fix(0.71414) * x
		jpegCbG[i] = -fix(0.34414)*x + oneHalf
	}
}

func clamp255(v int32) uint8 {
	if uint32(v) <= 255 {
		return uint8(v)
	}
	if v < 0 {
		return 0
	}
	return 255
}

// chromaGrid describes where a YCbCr image's chroma samples sit: absolute
// pixel x maps to chroma column x/hs (Go's COffset convention), y to row y/vs.
type chromaGrid struct {
	hs, vs             int
	c0x, c1x, c0y, c1y int // first and last chroma column / row in use
}

func newChromaGrid(m *image.YCbCr) chromaGrid {
	hs, vs := 1, 1
	switch m.SubsampleRatio {
	case image.YCbCrSubsampleRatio422:
		hs = 2
	case image.YCbCrSubsampleRatio420:
		hs, vs = 2, 2
	case image.YCbCrSubsampleRatio440:
		vs = 2
	case image.YCbCrSubsampleRatio411:
		hs = 4
	case image.YCbCrSubsampleRatio410:
		hs, vs = 4, 2
	}
	r := m.Rect
	return chromaGrid{hs: hs, vs: vs,
		c0x: r.Min.X / hs, c1x: (r.Max.X - 1) / hs,
		c0y: r.Min.Y / vs, c1y: (r.Max.Y - 1) / vs}
}

// cOff is the offset of chroma sample (cx, cy) in m.Cb / m.Cr.
func (g chromaGrid) cOff(m *image.YCbCr, cx, cy int) int {
	return (cy-g.c0y)*m.CStride + (cx - g.c0x)
}

func clampInt(v, lo, hi int) int {
	return max(lo, min(v, hi))
}

// jpegYCbCrToRGB writes m into dst (same size) as libjpeg-turbo decodes to
// RGB with its defaults (do_fancy_upsampling = TRUE), which Pillow uses:
//
//   - h2v1 (4:2:2), jdsample.c h2v1_fancy_upsample: output column 2i is
//     (3·C[i] + C[i−1] + 1) >> 2, column 2i+1 is (3·C[i] + C[i+1] + 2) >> 2;
//   - h1v2 (4:4:0), h1v2_fancy_upsample: the same vertically, bias 1 for the
//     upper output row of a pair (mixed with the row above), 2 for the lower;
//   - h2v2 (4:2:0), h2v2_fancy_upsample: column sums s[i] = 3·C[r][i] +
//     C[r±1][i] (the row above for the upper output row of a pair, below for
//     the lower), then (3·s[i] + s[i−1] + 8) >> 4 and (3·s[i] + s[i+1] + 7) >> 4;
//   - 4:4:4, 4:1:1 and 4:1:0, and 4:2:2 / 4:2:0 when the chroma plane is at
//     most 2 samples wide (jinit_upsampler asks downsampled_width > 2 for
//     the fancy methods): plain replication.
//
// Neighbours beyond the image edge replicate the edge sample (libjpeg's
// context rows and its first/last column special cases).
func jpegYCbCrToRGB(m *image.YCbCr, dst *RGB) {
	g := newChromaGrid(m)
	r := m.Rect
	w := r.Dx()
	cw := g.c1x - g.c0x + 1
	// jinit_upsampler: h2v1 and h2v2 are fancy only when the chroma plane is
	// wider than 2 samples; h1v2 always is.
	fancyH := g.hs == 2 && cw > 2
	fancyV := g.vs == 2 && (g.hs == 1 || fancyH)
	sb, sr := make([]int32, cw), make([]int32, cw) // vertical stage, per chroma column
	cb, cr := make([]int32, w), make([]int32, w)   // upsampled, per pixel
	for y := r.Min.Y; y < r.Max.Y; y++ {
		cy := y / g.vs
		rowB := m.Cb[g.cOff(m, g.c0x, cy):][:cw]
		rowR := m.Cr[g.cOff(m, g.c0x, cy):][:cw]
		if fancyV {
			far := clampInt(cy-1, g.c0y, g.c1y)
			if y%2 == 1 {
				far = clampInt(cy+1, g.c0y, g.c1y)
			}
			farB := m.Cb[g.cOff(m, g.c0x, far):][:cw]
			farR := m.Cr[g.cOff(m, g.c0x, far):][:cw]
			for i := range cw {
				sb[i] = 3*int32(rowB[i]) + int32(farB[i])
				sr[i] = 3*int32(rowR[i]) + int32(farR[i])
			}
		} else {
			for i := range cw {
				sb[i], sr[i] = int32(rowB[i]), int32(rowR[i])
			}
		}
		for x := r.Min.X; x < r.Max.X; x++ {
			i := x/g.hs - g.c0x
			if !fancyH {
				if fancyV { // h1v2: scaled by 4
					bias := int32(1)
					if y%2 == 1 {
						bias = 2
					}
					cb[x-r.Min.X], cr[x-r.Min.X] = (sb[i]+bias)>>2, (sr[i]+bias)>>2
				} else {
					cb[x-r.Min.X], cr[x-r.Min.X] = sb[i], sr[i]
				}
				continue
			}
			// Even columns mix in the left neighbour, odd ones the right.
			o, bias, shift := max(i-1, 0), int32(1), 2 // h2v1
			if x%2 == 1 {
				o, bias = min(i+1, cw-1), 2
			}
			if fancyV { // h2v2: sums scaled by 16
				bias, shift = 8, 4
				if x%2 == 1 {
					bias = 7
				}
			}
			cb[x-r.Min.X] = (3*sb[i] + sb[o] + bias) >> shift
			cr[x-r.Min.X] = (3*sr[i] + sr[o] + bias) >> shift
		}
		yrow := m.Y[m.YOffset(r.Min.X, y):][:w]
		out := dst.Pix[(y-r.Min.Y)*w*3:][:w*3]
		for i, yv := range yrow {
			Y := int32(yv)
			b, c := cb[i], cr[i]
			out[3*i] = clamp255(Y + jpegCrR[c])
			out[3*i+1] = clamp255(Y + (jpegCbG[b]+jpegCrG[c])>>16)
			out[3*i+2] = clamp255(Y + jpegCbB[b])
		}
	}
}

// libwebp's YUV→RGB (src/dsp/yuv.h): BT.601 studio range in 14-bit fixed
// point, with mulhi(v, k) = (v·k) >> 8 and the result >> 6, clipped:
//
//	R = (mulhi(Y,19077) + mulhi(V,26149) − 14234) >> 6
//	G = (mulhi(Y,19077) − mulhi(U,6419) − mulhi(V,13320) + 8708) >> 6
//	B = (mulhi(Y,19077) + mulhi(U,33050) − 17685) >> 6
func webpClip8(v int32) uint8 {
	const mask = (256 << 6) - 1
	if v&^mask == 0 {
		return uint8(v >> 6)
	}
	if v < 0 {
		return 0
	}
	return 255
}

func webpYUVToRGB(y, u, v int32, out []uint8) {
	yy := (y * 19077) >> 8
	out[0] = webpClip8(yy + (v*26149)>>8 - 14234)
	out[1] = webpClip8(yy - (u*6419)>>8 - (v*13320)>>8 + 8708)
	out[2] = webpClip8(yy + (u*33050)>>8 - 17685)
}

// webpYCbCrToRGB converts a decoded VP8 frame (4:2:0) as libwebp's default
// RGB output does, with its "fancy" upsampler (src/dsp/upsampling.c,
// src/dec/io_dec.c EmitFancyRGB). Output row y mixes a near chroma row N and
// a far one F: even y: N = y/2, F = y/2 − 1; odd y: N = (y−1)/2,
// F = (y+1)/2; F clamped to the existing rows (row 0 pairs with itself, as
// does the last row of an even height). Per pixel column px, with a = N[i−1],
// b = N[i], c = F[i−1], d = F[i] and avg = a+b+c+d+8:
//
//	px = 0:                       (3·N[0] + F[0] + 2) >> 2
//	px = 2i−1 (odd, not last):   ((avg + 2(b+c)) >> 3 + a) >> 1
//	px = 2i (even, > 0):         ((avg + 2(a+d)) >> 3 + b) >> 1
//	px = W−1 odd (W even):        (3·N[px/2] + F[px/2] + 2) >> 2
//
// libwebp interpolates U and V packed in one 32-bit word; the 16-bit lanes
// never carry into each other, so this is the same per channel. Frames not
// 4:2:0 at the origin (VP8 always is) go through FromImage.
func webpYCbCrToRGB(m *image.YCbCr) *RGB {
	if m.SubsampleRatio != image.YCbCrSubsampleRatio420 || m.Rect.Min != (image.Point{}) {
		return FromImage(m)
	}
	w, h := m.Rect.Dx(), m.Rect.Dy()
	ch := (h + 1) / 2
	cw := (w + 1) / 2
	dst := NewRGB(w, h)
	us, vs := make([]int32, w), make([]int32, w)
	upsample := func(near, far []uint8, out []int32) {
		out[0] = (3*int32(near[0]) + int32(far[0]) + 2) >> 2
		for px := 1; px < w; px++ {
			i := (px + 1) / 2
			if px%2 == 1 && px == w-1 {
				i = px / 2
				out[px] = (3*int32(near[i]) + int32(far[i]) + 2) >> 2
				continue
			}
			a, b, c, d := int32(near[i-1]), int32(near[i]), int32(far[i-1]), int32(far[i])
			avg := a + b + c + d + 8
			if px%2 == 1 {
				out[px] = ((avg+2*(b+c))>>3 + a) >> 1
			} else {
				out[px] = ((avg+2*(a+d))>>3 + b) >> 1
			}
		}
	}
	for y := range h {
		n, f := y/2, y/2-1
		if y%2 == 1 {
			n, f = (y-1)/2, (y+1)/2
		}
		f = clampInt(f, 0, ch-1)
		upsample(m.Cb[n*m.CStride:][:cw], m.Cb[f*m.CStride:][:cw], us)
		upsample(m.Cr[n*m.CStride:][:cw], m.Cr[f*m.CStride:][:cw], vs)
		yrow := m.Y[y*m.YStride:][:w]
		out := dst.Pix[y*w*3:][:w*3]
		for i, yv := range yrow {
			webpYUVToRGB(int32(yv), us[i], vs[i], out[3*i:3*i+3])
		}
	}
	return dst
}
