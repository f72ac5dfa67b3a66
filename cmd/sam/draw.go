package main

import (
	"math"

	"github.com/samgo/samgo/sam/imgproc"
)

// painter draws the overlays one mask at a time (a mask need not be held
// after it is drawn). A mask's fill blends its colour into the original
// pixel, not into what earlier masks drew, so that a mask drawn later
// (smaller, on top) replaces the tint under it instead of compounding it;
// its outline is opaque, in a darker shade of the colour.
type painter struct {
	orig, out *imgproc.RGB
	a         uint32 // fill opacity in 1/256
}

func newPainter(img *imgproc.RGB, alpha float64) *painter {
	return &painter{
		orig: img,
		out:  &imgproc.RGB{W: img.W, H: img.H, Pix: append([]uint8(nil), img.Pix...)},
		a:    uint32(math.Round(min(max(alpha, 0), 1) * 256)),
	}
}

// mask fills (when fill) and outlines mask m (row-major W×H) in colour c;
// box is the mask's inclusive bounding box [x0, y0, x1, y1], which bounds
// the scan.
func (p *painter) mask(m []bool, c [3]uint8, fill bool, box [4]int) {
	w, h := p.out.W, p.out.H
	x0, y0 := max(box[0]-1, 0), max(box[1]-1, 0)
	x1, y1 := min(box[2]+1, w-1), min(box[3]+1, h-1)
	a := p.a
	if fill && a > 0 {
		for y := y0; y <= y1; y++ {
			for x := x0; x <= x1; x++ {
				q := y*w + x
				if !m[q] {
					continue
				}
				src, dst := p.orig.Pix[3*q:3*q+3:3*q+3], p.out.Pix[3*q:3*q+3:3*q+3]
				for ch := range 3 {
					dst[ch] = uint8((uint32(src[ch])*(256-a) + uint32(c[ch])*a + 128) >> 8)
				}
			}
		}
	}
	// The outline is 2 px wide, straddling the edge: mask pixels with a
	// 4-neighbour outside the mask (or outside the image), and pixels
	// outside with a 4-neighbour inside (as imgproc.Overlay draws it).
	oc := darker(c)
	for y := y0; y <= y1; y++ {
		for x := x0; x <= x1; x++ {
			in := m[y*w+x]
			edge := false
			for _, d := range [4][2]int{{-1, 0}, {1, 0}, {0, -1}, {0, 1}} {
				nx, ny := x+d[0], y+d[1]
				inside := nx >= 0 && nx < w && ny >= 0 && ny < h
				nin := inside && m[ny*w+nx]
				if nin != in && (in || inside) {
					edge = true
					break
				}
			}
			if edge {
				q := 3 * (y*w + x)
				p.out.Pix[q], p.out.Pix[q+1], p.out.Pix[q+2] = oc[0], oc[1], oc[2]
			}
		}
	}
}

// darker is c at 55% brightness.
func darker(c [3]uint8) [3]uint8 {
	return [3]uint8{uint8(uint32(c[0]) * 141 >> 8), uint8(uint32(c[1]) * 141 >> 8), uint8(uint32(c[2]) * 141 >> 8)}
}

func (p *painter) set(x, y int, c [3]uint8) {
	if x < 0 || y < 0 || x >= p.out.W || y >= p.out.H {
		return
	}
	q := 3 * (y*p.out.W + x)
	p.out.Pix[q], p.out.Pix[q+1], p.out.Pix[q+2] = c[0], c[1], c[2]
}

// disc draws a filled disc of radius r at (x, y) (pixel coordinates, as
// prompts give them) with a ring of colour ring around it.
func (p *painter) disc(x, y float64, r int, fill, ring [3]uint8) {
	cx, cy := int(math.Floor(x)), int(math.Floor(y))
	R := r + 1
	for dy := -R; dy <= R; dy++ {
		for dx := -R; dx <= R; dx++ {
			d2 := dx*dx + dy*dy
			switch {
			case d2 <= r*r:
				p.set(cx+dx, cy+dy, fill)
			case d2 <= R*R:
				p.set(cx+dx, cy+dy, ring)
			}
		}
	}
}

// rect draws the outline of the box [x0, x1] × [y0, y1] (pixel
// coordinates, clipped to the image) width pixels wide, inwards.
func (p *painter) rect(bx0, by0, bx1, by1 float64, c [3]uint8, width int) {
	x0, y0 := int(math.Floor(bx0)), int(math.Floor(by0))
	x1, y1 := int(math.Ceil(bx1))-1, int(math.Ceil(by1))-1
	x1, y1 = max(x1, x0), max(y1, y0)
	for k := range width {
		for x := x0; x <= x1; x++ {
			p.set(x, y0+k, c)
			p.set(x, y1-k, c)
		}
		for y := y0; y <= y1; y++ {
			p.set(x0+k, y, c)
			p.set(x1-k, y, c)
		}
	}
}

// markerSize is the radius of a prompt point and the width of a box line
// for a w×h image: visible on a large photo, not a blot on a small one.
func markerSize(w, h int) (radius, line int) {
	s := min(w, h)
	return max(3, s/120), max(2, s/400)
}

var (
	positiveColor = [3]uint8{40, 210, 40}   // foreground point
	negativeColor = [3]uint8{230, 40, 40}   // background point
	ringColor     = [3]uint8{255, 255, 255} // around points
)
