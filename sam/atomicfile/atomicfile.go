// Package atomicfile writes files so that they appear whole or not at all:
// the data goes to a temporary file in the destination's folder, which is
// renamed over the destination once everything was written and the file
// closed without error. A full disk or a crash leaves the earlier file (or
// none), never a truncated one under the final name. Temporary names start
// with '.' and end in .tmp.
package atomicfile

import (
	"bufio"
	"fmt"
	"io"
	"os"
	"path/filepath"
)

// File is a file being written under a temporary name; W buffers the
// writes. Commit puts it in place, Abort throws it away.
type File struct {
	path string
	f    *os.File
	W    *bufio.Writer
}

// Create starts writing path.
func Create(path string) (*File, error) {
	f, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".*.tmp")
	if err != nil {
		return nil, fmt.Errorf("write %s: %w", path, err)
	}
	return &File{path: path, f: f, W: bufio.NewWriterSize(f, 1<<16)}, nil
}

// Commit flushes, closes and renames the file into place; on an error the
// temporary file is removed. A second Commit does nothing.
func (a *File) Commit() error {
	if a.f == nil {
		return nil
	}
	err := a.W.Flush()
	if cerr := a.f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(a.f.Name(), a.path)
	}
	if err != nil {
		os.Remove(a.f.Name())
		err = fmt.Errorf("write %s: %w", a.path, err)
	}
	a.f = nil
	return err
}

// Abort removes the temporary file (after Commit: nothing).
func (a *File) Abort() {
	if a.f != nil {
		a.f.Close()
		os.Remove(a.f.Name())
		a.f = nil
	}
}

// Write writes path with write, atomically.
func Write(path string, write func(io.Writer) error) error {
	a, err := Create(path)
	if err != nil {
		return err
	}
	if err := write(a.W); err != nil {
		a.Abort()
		return fmt.Errorf("write %s: %w", path, err)
	}
	return a.Commit()
}
