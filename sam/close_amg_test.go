package sam_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/samgo/samgo/sam"
	"github.com/samgo/samgo/sam/amg"
	"github.com/samgo/samgo/sam/imgproc"
	"github.com/samgo/samgo/sam/nn/cpu"
)

// TestCloseWhileGenerating: the automatic mask generator works through a
// Predictor, so closing its model mid-run ends the run with ErrClosed (or
// lets it finish), without a crash; a later run returns ErrClosed.
func TestCloseWhileGenerating(t *testing.T) {
	m, err := sam.Load(demoModel, cpu.New(), sam.LoadOptions{})
	require.NoError(t, err)
	img, err := imgproc.Load(demoScene)
	require.NoError(t, err)
	opts := amg.DefaultOptions()
	opts.PointsPerSide = 16
	opts.PointsPerBatch = 16
	started := make(chan struct{}, 1)
	opts.Progress = func(amg.Progress) {
		select {
		case started <- struct{}{}:
		default:
		}
	}
	g, err := amg.New(m, opts)
	require.NoError(t, err)
	done := make(chan error)
	go func() {
		_, err := g.Generate(context.Background(), img)
		done <- err
	}()
	select {
	case <-started:
	case <-time.After(time.Minute):
		t.Fatal("no progress")
	}
	require.NoError(t, m.Close())
	if err := <-done; err != nil && !errors.Is(err, sam.ErrClosed) {
		t.Fatalf("Generate after Close: %v, want ErrClosed or nil", err)
	}
	_, err = g.Generate(context.Background(), img)
	require.ErrorIs(t, err, sam.ErrClosed)
}
