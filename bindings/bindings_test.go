//go:build cuda

package bindings

import (
	"errors"
	"testing"

	"github.com/stretchr/testify/require"
)

// These need no GPU: the status strings and the version are host code.

func TestStatusIsAnError(t *testing.T) {
	for _, s := range []Status{OK, ErrInvalidArg, ErrUnsupported, ErrCUDA, ErrCUBLAS, ErrWorkspace, ErrOutOfMemory} {
		require.NotEmpty(t, s.String(), "status %d", int32(s))
	}
	var err error = &Error{Op: "samk_attention", Status: ErrUnsupported, Detail: "samk_attention: head_dim 96 unsupported"}
	require.True(t, errors.Is(err, ErrUnsupported))
	require.False(t, errors.Is(err, ErrCUDA))
	require.Contains(t, err.Error(), "head_dim 96")
	require.Contains(t, err.Error(), ErrUnsupported.String())
}

func TestOutOfMemoryStatus(t *testing.T) {
	require.Equal(t, "out of memory", ErrOutOfMemory.String())
}

func TestVersion(t *testing.T) {
	v := Version()
	require.NotEmpty(t, v)
	t.Log(v)
}

func TestArgumentOverflow(t *testing.T) {
	err := Transpose(F32, nil, nil, 1<<40, 1, 1, nil)
	require.ErrorIs(t, err, ErrInvalidArg)
	require.Contains(t, err.Error(), "batch")
}

func TestDTypeSizes(t *testing.T) {
	require.Equal(t, int64(4), F32.Size())
	require.Equal(t, int64(2), BF16.Size())
}
