package amg

import "sort"

// RegionMode selects what RemoveSmallRegions removes.
type RegionMode int

const (
	// Holes fills the small connected components of the mask's complement
	// (holes, and the outside region too if it is small).
	Holes RegionMode = iota
	// Islands removes the small connected components of the mask (if every
	// component is small, the largest one stays).
	Islands
)

func (m RegionMode) String() string {
	if m == Holes {
		return "holes"
	}
	return "islands"
}

// regionScratch holds the labeller's buffers for reuse across masks.
type regionScratch struct {
	lab    []int32
	parent []int32
	root   []int32
	first  []int
}

// components labels the 8-connected components of the pixels where
// mask[i] == fg in a row-major w×h image, as cv2.connectedComponentsWithStats
// (connectivity 8) does: label 0 is every pixel where mask[i] != fg (the
// "background"), components are 1..n. It returns the labels (len w·h, valid
// until the next call) and per label its pixel count (sizes[0] =
// background).
//
// The numbering follows OpenCV's default 8-connectivity labeller
// (Spaghetti, a 2×2-block scan): components are numbered in the raster
// order of the first 2×2 block they touch (every set pixel of a block
// belongs to one component under 8-connectivity, so that order is total).
// Only RemoveSmallRegions' "keep the largest" tie-break depends on it.
//
// It is a two-pass union-find labeller over pixels: the first pass gives
// each pixel the smallest provisional label of its already-visited
// neighbours (W, NW, N, NE) and merges the others; the second pass
// resolves labels to roots and renumbers them.
func (s *regionScratch) components(mask []bool, fg bool, w, h int) (lab []int32, n int, sizes []int) {
	if cap(s.lab) < w*h {
		s.lab = make([]int32, w*h)
	}
	lab = s.lab[:w*h]
	parent := append(s.parent[:0], 0) // provisional label 0: background
	find := func(a int32) int32 {
		for parent[a] != a {
			parent[a] = parent[parent[a]]
			a = parent[a]
		}
		return a
	}
	union := func(a, b int32) int32 {
		ra, rb := find(a), find(b)
		if ra < rb {
			parent[rb] = ra
			return ra
		}
		parent[ra] = rb
		return rb
	}
	for y := range h {
		row := lab[y*w : y*w+w]
		var up []int32
		if y > 0 {
			up = lab[(y-1)*w : y*w]
		}
		mrow := mask[y*w : y*w+w]
		for x := range w {
			if mrow[x] != fg {
				row[x] = 0
				continue
			}
			var l int32
			if x > 0 {
				l = row[x-1]
			}
			if up != nil {
				for k := max(x-1, 0); k <= min(x+1, w-1); k++ {
					if m := up[k]; m != 0 {
						if l == 0 {
							l = m
						} else if m != l {
							l = union(l, m)
						}
					}
				}
			}
			if l == 0 {
				l = int32(len(parent))
				parent = append(parent, l)
			}
			row[x] = l
		}
	}
	s.parent = parent
	// Resolve every provisional label to its root, find each root's first
	// 2×2 block, and number the roots in block order.
	np := len(parent)
	if cap(s.root) < np {
		s.root = make([]int32, np)
		s.first = make([]int, np)
	}
	root, first := s.root[:np], s.first[:np]
	for l := range np {
		root[l] = find(int32(l))
		first[l] = -1
	}
	bw := (w + 1) / 2
	for y := range h {
		for x, l := range lab[y*w : y*w+w] {
			if l == 0 {
				continue
			}
			r := root[l]
			if blk := (y/2)*bw + x/2; first[r] < 0 || blk < first[r] {
				first[r] = blk
			}
		}
	}
	var roots []int32
	for l := 1; l < np; l++ {
		if root[l] == int32(l) {
			roots = append(roots, int32(l))
		}
	}
	sort.Slice(roots, func(a, b int) bool { return first[roots[a]] < first[roots[b]] })
	final := make([]int32, np)
	for k, r := range roots {
		final[r] = int32(k + 1)
	}
	n = len(roots)
	sizes = make([]int, n+1)
	for i, l := range lab {
		l = final[root[l]]
		lab[i] = l
		sizes[l]++
	}
	return lab, n, sizes
}

// RemoveSmallRegions is remove_small_regions: in Holes mode it fills the
// connected components (8-connectivity) of the complement with fewer than
// areaThresh pixels; in Islands mode it keeps only the components of the
// mask with at least areaThresh pixels (or, if there are none, the largest
// one, the first in OpenCV's numbering on a tie). It returns the new mask
// (row-major w×h) and whether anything changed; when nothing changed the
// input slice itself is returned.
func RemoveSmallRegions(mask []bool, w, h int, areaThresh float64, mode RegionMode) ([]bool, bool) {
	var s regionScratch
	return s.remove(mask, w, h, areaThresh, mode)
}

func (s *regionScratch) remove(mask []bool, w, h int, areaThresh float64, mode RegionMode) ([]bool, bool) {
	if len(mask) != w*h {
		panic("amg: RemoveSmallRegions: mask size")
	}
	holes := mode == Holes
	// The working mask is holes XOR mask: for holes, the components of
	// the complement.
	lab, n, sizes := s.components(mask, !holes, w, h)
	small := make([]bool, n+1)
	nSmall := 0
	for l := 1; l <= n; l++ {
		if float64(sizes[l]) < areaThresh {
			small[l] = true
			nSmall++
		}
	}
	if nSmall == 0 {
		return mask, false
	}
	fill := make([]bool, n+1) // the labels that make up the new mask
	if holes {
		fill[0] = true // label 0 = the mask itself
		copy(fill[1:], small[1:])
	} else {
		kept := false
		for l := 1; l <= n; l++ {
			fill[l] = !small[l]
			kept = kept || fill[l]
		}
		if !kept { // every island is small: keep the largest (np.argmax: the first)
			best := 1
			for l := 2; l <= n; l++ {
				if sizes[l] > sizes[best] {
					best = l
				}
			}
			fill[best] = true
		}
	}
	out := make([]bool, w*h)
	for i, l := range lab {
		out[i] = fill[l]
	}
	return out, true
}
