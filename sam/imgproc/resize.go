package imgproc

import (
	"fmt"
	"math"
	"runtime"
	"sync"
)

// PreprocessShape is ResizeLongestSide.get_preprocess_shape: the (h, w) an
// H×W image is resized to so that its longer side is longSide:
//
//	scale = longSide / max(H, W);  nh = int(H·scale + 0.5);  nw = int(W·scale + 0.5)
//
// in float64, as Python evaluates it. One deviation: a side that would round
// to 0 (an image over 2·longSide times longer than wide) is 1 here; the
// reference produces an empty image there and fails later.
func PreprocessShape(h, w, longSide int) (nh, nw int) {
	scale := float64(longSide) * 1.0 / float64(max(h, w))
	nh = int(float64(h)*scale + 0.5)
	nw = int(float64(w)*scale + 0.5)
	return max(nh, 1), max(nw, 1)
}

// ResizeLongestSide is ResizeLongestSide(longSide).apply_image: src resized
// to PreprocessShape(src.H, src.W, longSide) with Resize. When the size
// already matches, the result is a copy of src (Pillow's resize returns a
// copy then). Like Resize, it panics on an empty src.
func ResizeLongestSide(src *RGB, longSide int) *RGB {
	nh, nw := PreprocessShape(src.H, src.W, longSide)
	return Resize(src, nw, nh)
}

// Resize is Pillow's Image.resize((w, h), Image.BILINEAR) for an RGB image,
// bit for bit (Pillow ≥ 7, libImaging/Resample.c). It is a separable
// convolution done in two passes, horizontal first, with an 8-bit
// intermediate image; a pass whose dimension does not change is skipped.
// Per pass and per output index i (in = input size, out = output size):
//
//	scale = in/out;  fs = max(scale, 1)  (filter stretched when shrinking: antialiasing)
//	support = 1·fs;  center = (i + 0.5)·scale
//	xmin = max(int(center − support + 0.5), 0);  xmax = min(int(center + support + 0.5), in)
//	w_x = max(0, 1 − |(x − center + 0.5)/fs|)  for x in [xmin, xmax), then divided by Σ w_x
//	k_x = int(w_x·2^22 + 0.5)  (round half away from zero; weights are ≥ 0)
//	out = clip((2^21 + Σ k_x·in_x) >> 22, 0, 255)
//
// int() truncates toward zero as C's cast does. The weights are computed
// once per pass; the inner loops are integer only. Rows are split over
// GOMAXPROCS goroutines. Resize panics if w or h is below 1 or src is empty.
func Resize(src *RGB, w, h int) *RGB {
	if w < 1 || h < 1 {
		panic(fmt.Sprintf("imgproc: Resize to %dx%d", w, h))
	}
	if src.W < 1 || src.H < 1 || len(src.Pix) != src.W*src.H*3 {
		panic(fmt.Sprintf("imgproc: Resize of a %dx%d image with %d bytes", src.W, src.H, len(src.Pix)))
	}
	if w == src.W && h == src.H {
		return &RGB{W: w, H: h, Pix: append([]uint8(nil), src.Pix...)}
	}
	cur := src
	if w != src.W {
		cur = resizeHorizontal(cur, w)
	}
	if h != src.H {
		cur = resizeVertical(cur, h)
	}
	return cur
}

const (
	precisionBits = 32 - 8 - 2 // Pillow's PRECISION_BITS for 8-bit images
	roundHalf     = 1 << (precisionBits - 1)
)

// coeffs are one pass's fixed-point filter weights: output index i reads
// input indices start[i] .. start[i]+len(k[i])−1.
type coeffs struct {
	start []int
	k     [][]int32
}

// bilinearCoeffs is Pillow's precompute_coeffs + normalize_coeffs_8bpc for
// the bilinear (triangle) filter, support 1.
func bilinearCoeffs(in, out int) coeffs {
	scale := float64(in) / float64(out)
	fs := max(scale, 1.0)
	support := 1.0 * fs
	ss := 1.0 / fs
	c := coeffs{start: make([]int, out), k: make([][]int32, out)}
	ksize := int(math.Ceil(support))*2 + 1
	flat := make([]int32, out*ksize)
	w := make([]float64, ksize)
	for i := range out {
		center := (float64(i) + 0.5) * scale
		xmin := max(int(center-support+0.5), 0)
		xmax := min(int(center+support+0.5), in)
		n := max(xmax-xmin, 0)
		var sum float64
		for x := range n {
			t := math.Abs((float64(x+xmin) - center + 0.5) * ss)
			v := 0.0
			if t < 1 {
				v = 1 - t
			}
			w[x] = v
			sum += v
		}
		k := flat[i*ksize : i*ksize+n : i*ksize+n]
		for x := range n {
			v := w[x]
			if sum != 0 {
				v /= sum
			}
			if v < 0 {
				k[x] = int32(-0.5 + v*(1<<precisionBits))
			} else {
				k[x] = int32(0.5 + v*(1<<precisionBits))
			}
		}
		c.start[i], c.k[i] = xmin, k
	}
	return c
}

func clip8(ss int32) uint8 {
	v := ss >> precisionBits
	if v < 0 {
		return 0
	}
	if v > 255 {
		return 255
	}
	return uint8(v)
}

// parallelRows runs f over [0, n) in contiguous chunks, one per CPU.
func parallelRows(n, workPerRow int, f func(lo, hi int)) {
	p := runtime.GOMAXPROCS(0)
	if p < 2 || n < 2 || n*workPerRow < 1<<16 {
		f(0, n)
		return
	}
	p = min(p, n)
	var wg sync.WaitGroup
	for t := range p {
		lo, hi := n*t/p, n*(t+1)/p
		wg.Add(1)
		go func() {
			defer wg.Done()
			f(lo, hi)
		}()
	}
	wg.Wait()
}

// resizeHorizontal resamples every row of src to width w.
func resizeHorizontal(src *RGB, w int) *RGB {
	c := bilinearCoeffs(src.W, w)
	dst := NewRGB(w, src.H)
	parallelRows(src.H, w*3*len(c.k[0]), func(lo, hi int) {
		for y := lo; y < hi; y++ {
			in := src.Pix[y*src.W*3:][:src.W*3]
			out := dst.Pix[y*w*3:][:w*3]
			for i, k := range c.k {
				p := in[c.start[i]*3:][:len(k)*3]
				r, g, b := int32(roundHalf), int32(roundHalf), int32(roundHalf)
				// Shrinking slices instead of indices: no bounds checks inside.
				for len(p) >= 3 && len(k) > 0 {
					kx := k[0]
					r += int32(p[0]) * kx
					g += int32(p[1]) * kx
					b += int32(p[2]) * kx
					p, k = p[3:], k[1:]
				}
				o := out[3*i : 3*i+3 : 3*i+3]
				o[0], o[1], o[2] = clip8(r), clip8(g), clip8(b)
			}
		}
	})
	return dst
}

// resizeVertical resamples every column of src to height h, a row at a
// time: output row i accumulates k_y · (input row start+y) into an int32 row.
func resizeVertical(src *RGB, h int) *RGB {
	c := bilinearCoeffs(src.H, h)
	dst := NewRGB(src.W, h)
	rowLen := src.W * 3
	parallelRows(h, rowLen*len(c.k[0]), func(lo, hi int) {
		acc := make([]int32, rowLen)
		for i := lo; i < hi; i++ {
			for j := range acc {
				acc[j] = roundHalf
			}
			for y, ky := range c.k[i] {
				in := src.Pix[(c.start[i]+y)*rowLen:][:rowLen]
				acc := acc[:len(in)]
				for j, v := range in {
					acc[j] += int32(v) * ky
				}
			}
			out := dst.Pix[i*rowLen:][:rowLen]
			for j, v := range acc {
				out[j] = clip8(v)
			}
		}
	})
	return dst
}
