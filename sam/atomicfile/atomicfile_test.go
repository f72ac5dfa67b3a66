package atomicfile

import (
	"bytes"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

// TestWriteKeepsTheOldFileOnError: a write that fails half way (a full
// disk) leaves the earlier file as it was and no temporary file behind.
func TestWriteKeepsTheOldFileOnError(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "result.json")
	require.NoError(t, Write(p, func(w io.Writer) error { _, err := w.Write([]byte("old")); return err }))
	err := Write(p, func(w io.Writer) error {
		w.Write(bytes.Repeat([]byte("x"), 1<<17))
		return errors.New("no space left on device")
	})
	require.ErrorContains(t, err, "no space left")
	got, err := os.ReadFile(p)
	require.NoError(t, err)
	require.Equal(t, "old", string(got))
	ents, err := os.ReadDir(dir)
	require.NoError(t, err)
	require.Len(t, ents, 1)
	require.False(t, strings.HasSuffix(ents[0].Name(), ".tmp"))
}

func TestCreateCommitAbort(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "a.npy")
	a, err := Create(p)
	require.NoError(t, err)
	a.W.WriteString("data")
	_, err = os.Stat(p)
	require.ErrorIs(t, err, os.ErrNotExist, "not in place before Commit")
	require.NoError(t, a.Commit())
	require.NoError(t, a.Commit(), "a second Commit does nothing")
	got, err := os.ReadFile(p)
	require.NoError(t, err)
	require.Equal(t, "data", string(got))

	b, err := Create(filepath.Join(dir, "b.npy"))
	require.NoError(t, err)
	b.W.WriteString("half")
	b.Abort()
	ents, err := os.ReadDir(dir)
	require.NoError(t, err)
	require.Len(t, ents, 1, "Abort leaves nothing")
}
