package nn_test

import (
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/samgo/samgo/sam/nn"
	"github.com/samgo/samgo/sam/nn/cpu"
)

// marking records the ranges a backend is asked for.
type marking struct {
	nn.Backend
	log []string
}

func (m *marking) StartRange(name string) func() {
	m.log = append(m.log, "start "+name)
	return func() { m.log = append(m.log, "end "+name) }
}

func TestRange(t *testing.T) {
	m := &marking{Backend: cpu.New()}
	end := nn.Range(m, "outer")
	nn.Range(m, "inner")()
	end()
	require.Equal(t, []string{"start outer", "start inner", "end inner", "end outer"}, m.log)
	require.NotPanics(t, func() { nn.Range(cpu.New(), "no marker")() }) // the CPU backend marks nothing
}
