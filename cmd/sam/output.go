package main

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"github.com/samgo/samgo/sam/atomicfile"
)

// writeAtomic writes path through a temporary file renamed into place
// (sam/atomicfile): a full disk or a crash never leaves a truncated file
// under the final name.
func writeAtomic(path string, write func(io.Writer) error) error {
	return atomicfile.Write(path, write)
}

// createAtomic is writeAtomic for a file written over a longer stretch (a
// streamed .npy): write to W, then Commit or Abort.
func createAtomic(path string) (*atomicfile.File, error) { return atomicfile.Create(path) }

// checkWritable creates dir (and its parents) and checks that a file can
// be created in it, so that an output folder that cannot be written is
// found before the work, not after.
func checkWritable(dir string) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("output folder %s: %w", dir, unwrapPath(err))
	}
	f, err := os.CreateTemp(dir, ".sam-write-check-*")
	if err != nil {
		return fmt.Errorf("output folder %s is not writable: %w", dir, unwrapPath(err))
	}
	f.Close()
	os.Remove(f.Name())
	return nil
}

// unwrapPath drops a *PathError's repetition of the path.
func unwrapPath(err error) error {
	var pe *fs.PathError
	if errors.As(err, &pe) {
		return pe.Err
	}
	return err
}

// removeStale removes the files of dir that ours reports as this
// command's outputs and that keep does not list: what an earlier run left
// (mask_5.png after a run with 3 masks) must not pass for this run's.
// Files of other names are left alone.
func removeStale(dir string, ours func(name string) bool, keep map[string]bool) ([]string, error) {
	ents, err := os.ReadDir(dir)
	if err != nil {
		return nil, err
	}
	var removed []string
	for _, e := range ents {
		n := e.Name()
		if e.IsDir() || keep[n] || !ours(n) {
			continue
		}
		if err := os.Remove(filepath.Join(dir, n)); err != nil {
			return removed, err
		}
		removed = append(removed, n)
	}
	sort.Strings(removed)
	return removed, nil
}

// numberedName reports whether name is prefix<digits>suffix.
func numberedName(name, prefix, suffix string) bool {
	s, ok := strings.CutPrefix(name, prefix)
	if !ok {
		return false
	}
	s, ok = strings.CutSuffix(s, suffix)
	if !ok || s == "" {
		return false
	}
	for _, c := range s {
		if c < '0' || c > '9' {
			return false
		}
	}
	return true
}

// fileSHA256 is the hex SHA-256 of a file's contents.
func fileSHA256(path string) (string, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", err
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		return "", fmt.Errorf("read %s: %w", path, err)
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}
