package amg

import (
	"math/rand/v2"
	"testing"

	"github.com/stretchr/testify/require"
)

// floodLabels labels the 8-connected components of mask == fg by flood
// fill, numbering them by their first pixel in raster order.
func floodLabels(mask []bool, fg bool, w, h int) ([]int, []int) {
	lab := make([]int, w*h)
	sizes := []int{0}
	for i := range mask {
		if mask[i] != fg {
			sizes[0]++
		}
	}
	n := 0
	for start := range mask {
		if mask[start] != fg || lab[start] != 0 {
			continue
		}
		n++
		sizes = append(sizes, 0)
		stack := []int{start}
		lab[start] = n
		for len(stack) > 0 {
			p := stack[len(stack)-1]
			stack = stack[:len(stack)-1]
			sizes[n]++
			x, y := p%w, p/w
			for dy := -1; dy <= 1; dy++ {
				for dx := -1; dx <= 1; dx++ {
					nx, ny := x+dx, y+dy
					if nx < 0 || ny < 0 || nx >= w || ny >= h {
						continue
					}
					q := ny*w + nx
					if mask[q] == fg && lab[q] == 0 {
						lab[q] = n
						stack = append(stack, q)
					}
				}
			}
		}
	}
	return lab, sizes
}

// The union-find labeller finds the same components as a flood fill, with
// the same sizes, numbered in the raster order of their first 2×2 block.
func TestComponentsMatchFloodFill(t *testing.T) {
	rng := rand.New(rand.NewPCG(9, 10))
	var s regionScratch
	for it := range 300 {
		w, h := 1+rng.IntN(25), 1+rng.IntN(25)
		m := randomMask(rng, w, h, 0.2+0.6*rng.Float64())
		fg := it%2 == 0
		lab, n, sizes := s.components(m, fg, w, h)
		ref, refSizes := floodLabels(m, fg, w, h)
		require.Equal(t, len(refSizes)-1, n)
		// Same partition: a bijection between the labellings.
		fwd, bwd := map[int32]int{}, map[int]int32{}
		for i := range lab {
			if a, ok := fwd[lab[i]]; ok {
				require.Equal(t, a, ref[i])
			} else {
				fwd[lab[i]] = ref[i]
			}
			if b, ok := bwd[ref[i]]; ok {
				require.Equal(t, b, lab[i])
			} else {
				bwd[ref[i]] = lab[i]
			}
		}
		require.Equal(t, refSizes[0], sizes[0])
		for l := 1; l <= n; l++ {
			require.Equal(t, refSizes[fwd[int32(l)]], sizes[l])
		}
		// Numbering: by first 2×2 block.
		first := make([]int, n+1)
		for i := range first {
			first[i] = -1
		}
		for i, l := range lab {
			blk := (i/w/2)*((w+1)/2) + (i%w)/2
			if l != 0 && first[l] < 0 {
				first[l] = blk
			}
			if l != 0 && blk < first[l] {
				first[l] = blk
			}
		}
		for l := 2; l <= n; l++ {
			require.Less(t, first[l-1], first[l])
		}
	}
}

func TestRemoveSmallRegions(t *testing.T) {
	for _, tc := range []struct {
		name    string
		in      []string
		area    float64
		mode    RegionMode
		out     []string
		changed bool
	}{
		{"fill a small hole", []string{
			"#####",
			"#.###",
			"#####",
		}, 2, Holes, []string{
			"#####",
			"#####",
			"#####",
		}, true},
		{"hole not below threshold", []string{
			"#####",
			"#.###",
			"#####",
		}, 1, Holes, []string{
			"#####",
			"#.###",
			"#####",
		}, false},
		// The outside region is a component of the complement like any hole.
		{"small outside region is filled too", []string{
			"####.",
			"#####",
			"#####",
		}, 2, Holes, []string{
			"#####",
			"#####",
			"#####",
		}, true},
		{"large outside region stays", []string{
			".....",
			".#.#.",
			".....",
		}, 2, Holes, []string{
			".....",
			".#.#.",
			".....",
		}, false},
		{"remove a small island", []string{
			"##...",
			"##..#",
			"#....",
		}, 2, Islands, []string{
			"##...",
			"##...",
			"#....",
		}, true},
		// 8-connectivity: the diagonal pixels are one island of 3.
		{"diagonal island", []string{
			"#....",
			".#...",
			"..#..",
		}, 3, Islands, []string{
			"#....",
			".#...",
			"..#..",
		}, false},
		// Every island small: keep the largest.
		{"keep the largest", []string{
			"##..#",
			".....",
			"#....",
		}, 5, Islands, []string{
			"##...",
			".....",
			".....",
		}, true},
		// A size tie goes to the island numbered first by OpenCV's 2×2-block
		// scan: (0, 1) lies in block 0, (4, 0) in block 2, although (4, 0)
		// comes first in pixel raster order.
		{"tie goes to the first 2×2 block", []string{
			"....#",
			"#....",
		}, 5, Islands, []string{
			".....",
			"#....",
		}, true},
		{"empty mask", []string{"...", "..."}, 5, Islands, []string{"...", "..."}, false},
		{"full mask, holes", []string{"###", "###"}, 5, Holes, []string{"###", "###"}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			in, w, h := maskFrom(tc.in...)
			want, _, _ := maskFrom(tc.out...)
			got, changed := RemoveSmallRegions(in, w, h, tc.area, tc.mode)
			require.Equal(t, tc.changed, changed)
			require.Equal(t, want, got)
			if !changed {
				require.Same(t, &in[0], &got[0]) // the input itself
			}
		})
	}
}

func BenchmarkRemoveSmallRegions(b *testing.B) {
	rng := rand.New(rand.NewPCG(11, 12))
	m := randomMask(rng, 640, 480, 0.7)
	var s regionScratch
	for b.Loop() {
		m1, _ := s.remove(m, 640, 480, 100, Holes)
		s.remove(m1, 640, 480, 100, Islands)
	}
}
