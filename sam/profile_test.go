package sam

import (
	"context"
	"fmt"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/samgo/samgo/sam/nn"
	"github.com/samgo/samgo/sam/nn/cpu"
)

// rangeLog is a backend that records the profiler ranges it is asked for
// (the CUDA backend turns them into NVTX ranges).
type rangeLog struct {
	nn.Backend
	log []string
}

func (r *rangeLog) StartRange(name string) func() {
	r.log = append(r.log, "+"+name)
	return func() { r.log = append(r.log, "-"+name) }
}

// TestProfilerRanges: one image and one prompt mark the image encoder
// around its blocks and neck, then the prompt encoder, the mask decoder and
// the post-processing, each range closed before the next opens.
func TestProfilerRanges(t *testing.T) {
	b := &rangeLog{Backend: cpu.New()}
	m := tinyModel(t, b)
	defer m.Close()
	p := NewPredictor(m)
	require.NoError(t, p.SetImage(context.Background(), testImages(1)[0]))
	_, err := p.Predict(context.Background(), Prompt{Points: []Point{{X: 10, Y: 10, Label: 1}}})
	require.NoError(t, err)
	want := []string{"+image encoder"}
	for i := range m.Config.EncoderDepth {
		name := fmt.Sprint("encoder block ", i)
		want = append(want, "+"+name, "-"+name)
	}
	want = append(want, "+encoder neck", "-encoder neck", "-image encoder",
		"+prompt encoder", "-prompt encoder", "+mask decoder", "-mask decoder",
		"+mask postprocessing", "-mask postprocessing")
	require.Equal(t, strings.Join(want, "\n"), strings.Join(b.log, "\n"))
}
