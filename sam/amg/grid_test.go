package amg

import (
	"testing"

	"github.com/stretchr/testify/require"
)

func TestBuildPointGrid(t *testing.T) {
	require.Equal(t, [][2]float64{{0.5, 0.5}}, BuildPointGrid(1))
	// n = 2: linspace(0.25, 0.75, 2), x fastest.
	require.Equal(t, [][2]float64{{0.25, 0.25}, {0.75, 0.25}, {0.25, 0.75}, {0.75, 0.75}}, BuildPointGrid(2))
	// n = 4: offset 1/8, step 0.25, all exact.
	g := BuildPointGrid(4)
	require.Len(t, g, 16)
	require.Equal(t, [2]float64{0.125, 0.125}, g[0])
	require.Equal(t, [2]float64{0.375, 0.125}, g[1])
	require.Equal(t, [2]float64{0.125, 0.375}, g[4])
	require.Equal(t, [2]float64{0.875, 0.875}, g[15])
	// np.linspace: start + i·step in float64, the last value exactly stop.
	for _, n := range []int{3, 7, 16, 32, 64} {
		g := BuildPointGrid(n)
		start, stop := 1/(2*float64(n)), 1-1/(2*float64(n))
		step := (stop - start) / float64(n-1)
		for i := range n {
			want := float64(i)*step + start
			if i == n-1 {
				want = stop
			}
			require.Equal(t, want, g[i][0], "n %d x %d", n, i)
			require.Equal(t, want, g[i*n][1], "n %d y %d", n, i)
		}
	}
	// n = 3: the middle value is numpy's 1·step + start, whatever float64
	// makes of it (not 0.5 by construction).
	mid := (1-1/6.0-1/6.0)/2 + 1/6.0
	require.Equal(t, mid, BuildPointGrid(3)[1][0])
	require.Nil(t, BuildPointGrid(0))
}

func TestBuildAllLayerPointGrids(t *testing.T) {
	gs, err := BuildAllLayerPointGrids(8, 2, 2) // int(8/2^i): 8, 4, 2
	require.NoError(t, err)
	require.Len(t, gs, 3)
	require.Len(t, gs[0], 64)
	require.Len(t, gs[1], 16)
	require.Len(t, gs[2], 4)
	require.Equal(t, 5, LayerPointsPerSide(32, 1, 6)) // int(32/6)
	_, err = BuildAllLayerPointGrids(2, 2, 2)         // layer 2: int(2/4) = 0 points
	require.ErrorIs(t, err, ErrOptions)
	_, err = BuildAllLayerPointGrids(8, 1, 0)
	require.ErrorIs(t, err, ErrOptions)
}

// The expected boxes are generate_crop_boxes' output (the official Python,
// run on these sizes).
func TestGenerateCropBoxes(t *testing.T) {
	r := 512.0 / 1500
	for _, tc := range []struct {
		h, w, layers int
		ratio        float64
		boxes        [][4]int
	}{
		{119, 161, 1, r, [][4]int{{0, 0, 161, 119}, {0, 0, 101, 80}, {0, 40, 101, 119}, {61, 0, 161, 80}, {61, 40, 161, 119}}}, // tiny fixture
		{101, 263, 1, r, [][4]int{{0, 0, 263, 101}, {0, 0, 149, 68}, {0, 34, 149, 101}, {115, 0, 263, 68}, {115, 34, 263, 101}}},
		{1000, 1000, 1, 0, [][4]int{{0, 0, 1000, 1000}, {0, 0, 500, 500}, {0, 500, 500, 1000}, {500, 0, 1000, 500}, {500, 500, 1000, 1000}}},
		{1500, 2250, 2, r, [][4]int{
			{0, 0, 2250, 1500},
			{0, 0, 1381, 1006}, {0, 494, 1381, 1500}, {869, 0, 2250, 1006}, {869, 494, 2250, 1500},
			{0, 0, 755, 567}, {0, 311, 755, 878}, {0, 622, 755, 1189}, {0, 933, 755, 1500},
			{499, 0, 1254, 567}, {499, 311, 1254, 878}, {499, 622, 1254, 1189}, {499, 933, 1254, 1500},
			{998, 0, 1753, 567}, {998, 311, 1753, 878}, {998, 622, 1753, 1189}, {998, 933, 1753, 1500},
			{1497, 0, 2250, 567}, {1497, 311, 2250, 878}, {1497, 622, 2250, 1189}, {1497, 933, 2250, 1500},
		}},
		{480, 640, 2, 0.5, [][4]int{
			{0, 0, 640, 480},
			{0, 0, 440, 360}, {0, 120, 440, 480}, {200, 0, 640, 360}, {200, 120, 640, 480},
			{0, 0, 250, 210}, {0, 90, 250, 300}, {0, 180, 250, 390}, {0, 270, 250, 480},
			{130, 0, 380, 210}, {130, 90, 380, 300}, {130, 180, 380, 390}, {130, 270, 380, 480},
			{260, 0, 510, 210}, {260, 90, 510, 300}, {260, 180, 510, 390}, {260, 270, 510, 480},
			{390, 0, 640, 210}, {390, 90, 640, 300}, {390, 180, 640, 390}, {390, 270, 640, 480},
		}},
	} {
		crops := GenerateCropBoxes(tc.h, tc.w, tc.layers, tc.ratio)
		require.Len(t, crops, len(tc.boxes), "%d×%d", tc.w, tc.h)
		layer := func(i int) int {
			switch {
			case i == 0:
				return 0
			case i < 5:
				return 1
			default:
				return 2
			}
		}
		for i, c := range crops {
			require.Equal(t, tc.boxes[i], c.Box, "%d×%d crop %d", tc.w, tc.h, i)
			require.Equal(t, layer(i), c.Layer)
		}
	}
	// A tiny image with many layers gets empty crops (as in Python:
	// [6, 0, 5, 2] for a 5×7 image at layer 2).
	crops := GenerateCropBoxes(7, 5, 2, r)
	require.Equal(t, [4]int{6, 0, 5, 2}, crops[17].Box)
}
