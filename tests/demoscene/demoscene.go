// Package demoscene reads the bundled demo fixture (tests/testdata/demo):
// the demo model's scenes, their label images (pixel value = object id)
// and the official predictor's results on them (reference.json). The
// parity tests (package tests) and the server's tests (sam/serve) check
// masks against it.
package demoscene

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"runtime"

	"github.com/samgo/samgo/sam/imgproc"
)

// Dir is the fixture folder, found from this file's place in the
// repository so that any package's tests can use it.
var Dir = func() string {
	_, file, _, _ := runtime.Caller(0)
	return filepath.Join(filepath.Dir(file), "..", "testdata", "demo")
}()

// Reference is reference.json.
type Reference struct {
	Scenes map[string]Scene `json:"scenes"`
}

// Scene is one scene's entry of reference.json.
type Scene struct {
	Width     int      `json:"width"`
	Height    int      `json:"height"`
	InputSize [2]int   `json:"input_size"`
	Objects   []Object `json:"objects"`
}

// Object is one object of a scene with the official predictor's results
// for its point prompt (3 masks) and its box prompt.
type Object struct {
	ID           int        `json:"id"`
	Point        [2]float64 `json:"point"`
	MultiIoUPred [3]float64 `json:"multimask_iou_predictions"`
	MultiMaskIoU [3]float64 `json:"multimask_mask_iou"`
	MultiArea    [3]int     `json:"multimask_mask_area"`
	BoxXYXY      [4]float64 `json:"box_xyxy"`
	BoxIoUPred   float64    `json:"box_iou_prediction"`
	BoxMaskIoU   float64    `json:"box_mask_iou"`
}

// ReadReference reads reference.json.
func ReadReference() (*Reference, error) {
	b, err := os.ReadFile(filepath.Join(Dir, "reference.json"))
	if err != nil {
		return nil, err
	}
	var ref Reference
	if err := json.Unmarshal(b, &ref); err != nil {
		return nil, fmt.Errorf("%s: %w", filepath.Join(Dir, "reference.json"), err)
	}
	return &ref, nil
}

// Name is scene k's name ("scene_k"); its image is Name(k)+".png" in Dir,
// its label image Name(k)+"_objects.png".
func Name(k int) string { return fmt.Sprintf("scene_%d", k) }

// Labels loads scene k's label image.
func Labels(k int) (*imgproc.RGB, error) {
	return imgproc.Load(filepath.Join(Dir, Name(k)+"_objects.png"))
}

// ObjectMask is the ground-truth mask of object id in a label image.
func ObjectMask(labels *imgproc.RGB, id int) []bool {
	gt := make([]bool, labels.W*labels.H)
	for i := range gt {
		gt[i] = int(labels.Pix[3*i]) == id
	}
	return gt
}

// MaskIoU is |a ∧ b| / |a ∨ b| (0 for two empty masks).
func MaskIoU(a, b []bool) float64 {
	var inter, union int
	for i := range a {
		if a[i] && b[i] {
			inter++
		}
		if a[i] || b[i] {
			union++
		}
	}
	if union == 0 {
		return 0
	}
	return float64(inter) / float64(union)
}
