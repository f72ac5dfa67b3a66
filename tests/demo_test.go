package tests

import (
	"context"
	"math"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/samgo/samgo/sam"
	"github.com/samgo/samgo/sam/imgproc"
	"github.com/samgo/samgo/tests/demoscene"
)

// TestDemoModelSegmentsScenes runs the bundled demo model (a small SAM
// trained on synthetic shapes, testdata/demo/README.md) on its three
// scenes with the prompts its reference used, and checks that we segment
// every object as the official implementation does: the same predicted
// IoUs, the same IoU with the ground-truth object, and the same mean IoU
// (the figure its README reports for these scenes).
func TestDemoModelSegmentsScenes(t *testing.T) {
	m, err := sam.Load(fixturePath("demo", "model.safetensors"), newBackend(t), sam.LoadOptions{Config: demoConfig(t)})
	require.NoError(t, err)
	defer m.Close()
	var ref demoscene.Reference
	readJSON(t, fixturePath("demo", "reference.json"), &ref)

	var sumOurs, sumRef, sumBoxOurs, sumBoxRef float64
	var n int
	for k := range 3 {
		name, img, labels := demoScene(t, k)
		sc := ref.Scenes[name]
		require.Equal(t, [2]int{sc.Width, sc.Height}, [2]int{img.W, img.H})

		p := sam.NewPredictor(m)
		require.NoError(t, p.SetImage(context.Background(), img))
		require.Equal(t, sc.InputSize, [2]int{p.Embedding().InputH, p.Embedding().InputW})

		for _, obj := range sc.Objects {
			gt := demoscene.ObjectMask(labels, obj.ID)
			pt, err := p.Predict(context.Background(), sam.Prompt{
				Points: []sam.Point{{X: obj.Point[0], Y: obj.Point[1], Label: 1}}})
			require.NoError(t, err)
			for j := range 3 {
				require.InDelta(t, obj.MultiIoUPred[j], float64(pt.IoU[j]), 1e-4, "%s object %d mask %d predicted IoU", name, obj.ID, j)
				iou := demoscene.MaskIoU(pt.Masks[j].Pix, gt)
				require.InDelta(t, obj.MultiMaskIoU[j], iou, 2e-3, "%s object %d mask %d IoU with ground truth", name, obj.ID, j)
				area := pt.Masks[j].Area()
				require.InDelta(t, obj.MultiArea[j], area, math.Max(3, 1e-3*float64(obj.MultiArea[j])), "%s object %d mask %d area", name, obj.ID, j)
			}
			best := pt.Best()
			sumOurs += demoscene.MaskIoU(pt.Masks[best].Pix, gt)
			refBest := 0
			for j := range 3 {
				if obj.MultiIoUPred[j] > obj.MultiIoUPred[refBest] {
					refBest = j
				}
			}
			sumRef += obj.MultiMaskIoU[refBest]

			b := obj.BoxXYXY
			bx, err := p.Predict(context.Background(), sam.Prompt{Box: &sam.Box{X0: b[0], Y0: b[1], X1: b[2], Y1: b[3]}, SingleMask: true})
			require.NoError(t, err)
			require.InDelta(t, obj.BoxIoUPred, float64(bx.IoU[0]), 1e-4, "%s object %d box predicted IoU", name, obj.ID)
			boxIoU := demoscene.MaskIoU(bx.Masks[0].Pix, gt)
			require.InDelta(t, obj.BoxMaskIoU, boxIoU, 2e-3, "%s object %d box mask IoU", name, obj.ID)
			sumBoxOurs += boxIoU
			sumBoxRef += obj.BoxMaskIoU
			n++
		}
	}
	t.Logf("demo scenes: %d objects; mean IoU, 1 point (best of 3 by score): ours %.4f, reference %.4f; box: ours %.4f, reference %.4f",
		n, sumOurs/float64(n), sumRef/float64(n), sumBoxOurs/float64(n), sumBoxRef/float64(n))
	require.InDelta(t, sumRef/float64(n), sumOurs/float64(n), 1e-3)
	require.InDelta(t, sumBoxRef/float64(n), sumBoxOurs/float64(n), 1e-3)
}

// demoScene loads scene k of the demo model: its name, image and label
// image (pixel value = object id).
func demoScene(t testing.TB, k int) (name string, img, labels *imgproc.RGB) {
	t.Helper()
	name = demoscene.Name(k)
	img, err := imgproc.Load(fixturePath("demo", name+".png"))
	require.NoError(t, err)
	labels, err = demoscene.Labels(k)
	require.NoError(t, err)
	return name, img, labels
}

func demoConfig(t testing.TB) *sam.Config {
	cfg, err := sam.ReadConfig(fixturePath("demo", "config.json"))
	require.NoError(t, err)
	return &cfg
}
